"""The training-graph settings of a run (graph, pool_size, pool_refresh, graph_nca,
warm_start_anchors, relation_tau): validation, wiring into the distiller, the run's
graph class-consistency diagnostic, and the relation term over pool nodes."""
import json
from pathlib import Path

import pytest
import torch

from tg_cnn2gnn.distill import Trainer, build_distiller, relation_loss
from tg_cnn2gnn.distill.distillers.base import TrainBatch
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead
from tg_cnn2gnn.nn.pool_graph import BatchGraph, TrainingPool
from tg_cnn2gnn.run.config import RESUME_SAFE, Settings, SettingsError, validate
from tg_cnn2gnn.run.factories import build_graph_builder

from run_helpers import TINY, cli

GRAPH_SETTINGS = ("graph", "pool_size", "pool_refresh", "graph_nca", "nca_memory", "warm_start_anchors",
                  "relation_tau")


# ------------------------------------------------------------------------------------- settings
def test_defaults_keep_todays_training_graph():
    s = validate(Settings(dataset="digits", s=10))
    assert (s.graph, s.pool_size, s.pool_refresh, s.graph_nca, s.warm_start_anchors, s.relation_tau) == \
        ("batch", None, 1, 0.0, False, 1.0)
    assert build_graph_builder(s) is None            # the distiller's own batch graph, as before
    assert not set(GRAPH_SETTINGS) & RESUME_SAFE      # they alter the loss: a resume must keep them


@pytest.mark.parametrize("changes, flag, words", [
    ({"graph": "tree"}, "--graph=tree", "valid values: batch, pool"),
    ({"pool_refresh": 0}, "--pool-refresh=0", "positive integer"),
    ({"graph_nca": -1.0}, "--graph-nca=-1.0", ">= 0"),
    ({"relation_tau": 0.0}, "--relation-tau=0.0", "> 0"),
    ({"pool_size": 500}, "--pool-size=500", "only applies with --graph pool"),
    ({"graph": "pool", "pool_size": 11}, "--pool-size=11", "s + 2 = 12"),
    ({"warm_start_anchors": True, "head_form": "embedding"}, "--warm-start-anchors=True", "anchor head"),
    ({"graph": "pool", "method": "kd", "student": "mlp"}, "--graph=pool", "--method kd --student mlp"),
    ({"graph_nca": 1.0, "method": "dkd"}, "--graph-nca=1.0", "--method dkd"),
    ({"nca_memory": -5, "graph_nca": 1.0}, "--nca-memory=-5", "integer >= 0"),
    ({"nca_memory": 500}, "--nca-memory=500", "--graph-nca > 0"),
    ({"nca_memory": 500, "graph": "pool", "graph_nca": 1.0}, "--nca-memory=500", "--graph pool"),
])
def test_bad_graph_settings_are_refused_in_one_line(changes, flag, words):
    with pytest.raises(SettingsError) as e:
        validate(Settings(dataset="digits", s=10, **changes))
    msg = str(e.value)
    assert msg.startswith(flag) and words in msg and "\n" not in msg


def test_graph_settings_from_a_config_mapping():
    s = Settings.from_dict({"graph": "pool", "pool-size": "null", "pool_refresh": "2", "graph_nca": "3",
                            "warm_start_anchors": "yes", "relation_tau": 2})
    assert (s.graph, s.pool_size, s.pool_refresh, s.graph_nca, s.warm_start_anchors, s.relation_tau) == \
        ("pool", None, 2, 3.0, True, 2.0)
    with pytest.raises(SettingsError, match="graph_nca"):
        Settings.from_dict({"graph_nca": "lots"})


def test_builder_follows_the_settings():
    b = build_graph_builder(validate(Settings(dataset="digits", s=10, graph_nca=2.0)))
    assert isinstance(b, BatchGraph) and b.nca_weight == 2.0 and b.nca_memory == 0
    b = build_graph_builder(validate(Settings(dataset="digits", s=10, graph_nca=2.0, nca_memory=300)))
    assert isinstance(b, BatchGraph) and b.nca_memory == 300
    p = build_graph_builder(validate(Settings(dataset="digits", s=10, graph="pool", pool_size=200, pool_refresh=3,
                                              graph_nca=1.5, seed=4)))
    assert isinstance(p, TrainingPool)
    assert (p.pool_size, p.refresh_every, p.nca_weight, p.seed) == (200, 3, 1.5, 4)
    assert build_graph_builder(validate(Settings(dataset="digits", s=10, method="kd", student="mlp"))) is None


# ------------------------------------------------------------------------------------- bit-identity
N, F, C = 90, 10, 3


def _toy(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(N, 1, 2, 5, generator=g)
    y = torch.randint(0, C, (N,), generator=g)
    return x, y


class _Teacher(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.lin = torch.nn.Linear(F, C)

    def forward(self, x):
        return self.lin(x.flatten(1))


def _model(form="embedding", seed=0):
    torch.manual_seed(seed)
    head = LearnedGraphHead(F, num_train=N, s=3, hidden_channels=(8,), form=form, embedding_channels=4,
                            sparse_grad=True)
    return CNN2GNN(head, GraphStudent(F, 8, C, dropout=0.0))


@pytest.mark.parametrize("form", ["anchor", "embedding"])
@pytest.mark.parametrize("relation_weight", [0.0, 2.0])
def test_batch_graph_without_nca_trains_bit_identically_to_no_builder(form, relation_weight):
    x, y = _toy()
    states = []
    for builder in (None, BatchGraph()):
        model = _model(form)
        d = build_distiller("cnn2gnn", _Teacher(), model, relation_weight=relation_weight, graph_builder=builder)
        Trainer(d, epochs=2, batch_size=30, lr=0.01, device="cpu", distributed=False, progress=False,
                tensorboard=False, cache_teacher_logits=True, seed=0).fit((x, y))
        states.append(model.state_dict())
    assert all(torch.equal(states[0][k], states[1][k]) for k in states[0])


# ------------------------------------------------------------------------------------- relation over pool nodes
@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_relation_term_over_pool_nodes_is_the_reference_with_a_finite_gradient(form):
    x, y = _toy()
    teacher = _Teacher()
    cache = teacher(x).detach()
    model = _model(form)
    pool = TrainingPool()
    d = build_distiller("cnn2gnn", teacher, model, alpha=0.0, relation_weight=1.0, relation_tau=2.0,
                        graph_builder=pool)
    d.set_teacher_cache(cache)
    d.on_epoch_start(0, x.flatten(1), y)
    idx = torch.arange(0, N, 3)
    batch = TrainBatch(x[idx], y[idx], idx, None, cache[idx])
    torch.manual_seed(5)
    _, terms = d.forward_train(batch, 0)
    torch.manual_seed(5)
    g = pool(model, x[idx].flatten(1), y[idx], idx)
    assert g.x.size(0) > idx.numel()                 # the graph holds pool nodes beyond the batch
    ref = relation_loss(g.edge_index, g.edge_weight, cache[g.node_index], 2.0)
    assert torch.allclose(terms["relation"], ref, atol=1e-6)
    terms["relation"].backward()
    grads = [p.grad for p in model.head.parameters() if p.grad is not None]
    grads = [gr.to_dense() if gr.is_sparse else gr for gr in grads]
    assert grads and all(torch.isfinite(gr).all() for gr in grads)
    assert any(gr.abs().sum() > 0 for gr in grads)


def test_relation_term_without_a_cache_uses_logits_already_seen():
    """Without the trainer's cache, a pool node's edges count once its own batch has run."""
    x, y = _toy()
    teacher = _Teacher()
    t = teacher(x).detach()
    model = _model("anchor")
    d = build_distiller("cnn2gnn", teacher, model, alpha=0.0, relation_weight=1.0, graph_builder=TrainingPool())
    d.on_epoch_start(0, x.flatten(1), y)
    idx = torch.arange(0, 30)
    g = d.graph_builder(model, x[idx].flatten(1), y[idx], idx)
    ei, ew, nl = d._relation_graph(g, 30, idx, t[idx])
    inside = (g.edge_index < 30).all(0)
    assert torch.equal(ew != 0, (g.edge_weight != 0) & inside)      # only batch nodes known so far
    assert torch.allclose(relation_loss(ei, ew, nl), relation_loss(g.edge_index, g.edge_weight * inside,
                                                                   torch.cat([t[idx], torch.zeros_like(t)[g.node_index[30:]]])))
    d._relation_graph(g, 30, torch.arange(30, N), t[30:])            # every other sample seen
    _, ew2, nl2 = d._relation_graph(g, 30, idx, t[idx])
    assert torch.equal(ew2, g.edge_weight) and torch.allclose(nl2, t[g.node_index])


# ------------------------------------------------------------------------------------- through the CLI
def test_pool_graph_run_on_digits_reports_graph_consistency(teacher_run, tmp_path):
    cfg = tmp_path / "pool.yaml"
    cfg.write_text("graph: pool\ngraph_nca: 1.0\npool_refresh: 1\nwarm_start_anchors: true\n"
                   "relation_weight: 1.0\nrelation_tau: 2.0\n")
    run_dir = tmp_path / "run"
    code, out, err = cli(["distill", *TINY, "--config", cfg, "--teacher-checkpoint",
                          teacher_run / "teacher" / "teacher.pt", "--out", run_dir])
    assert code == 0, err
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["settings"]["graph"] == "pool" and summary["settings"]["graph_nca"] == 1.0
    gc = summary["graph_consistency"]
    for k in ("learned", "learned_weighted", "raw", "raw_weighted", "chance"):
        assert 0.0 <= gc[k] <= 1.0, k
    assert gc["num_queries"] == summary["n_test"] and gc["bank_size"] == min(1000, summary["n_train"])
    assert "class-consistency" in (run_dir / "table.md").read_text() and "class-consistency" in out
    assert out.count("graph class-consistency (validation") == 2                 # one line per epoch
    assert "training graph pool (anchor head, pool of all training samples, NCA 1, relation 1, warm-started" in out
    rows = (run_dir / "metrics.csv").read_text().splitlines()
    assert "nca" in rows[0] and "relation" in rows[0]
    # the training graph alters the loss: a --resume without it is refused, naming every change
    code, out, err = cli(["distill", *TINY, "--resume", "--teacher-checkpoint", teacher_run / "teacher" / "teacher.pt",
                          "--out", run_dir])
    assert code == 2 and "--resume refused" in err and "graph: pool -> batch" in err and "graph_nca: 1.0 -> 0.0" in err


def test_pool_graph_runs_repeat_bit_for_bit_on_two_threads(teacher_run, tmp_path):
    """Pool training gathers pool rows with repeated indices; on more than one thread the
    default accumulation order varied between runs (the main job's paper-preset row did)."""
    paper = Path(__file__).resolve().parents[2] / "configs" / "digits" / "paper.yaml"   # pool, NCA 3, 512-256, s 50
    weights = []
    for k in range(2):
        run_dir = tmp_path / f"run{k}"
        code, _, err = cli(["distill", "--config", paper, "--epochs", "2", "--threads", "2", "--no-measure",
                            "--no-progress", "--mechanisms", "bank", "--teacher-width", "4", "--teacher-checkpoint",
                            teacher_run / "teacher" / "teacher.pt", "--out", run_dir])
        assert code == 0, err
        weights.append(torch.load(run_dir / "checkpoint.pt", weights_only=True)["model"])
    assert weights[0].keys() == weights[1].keys()
    assert all(torch.equal(weights[0][k], weights[1][k]) for k in weights[0])
    assert not torch.are_deterministic_algorithms_enabled()        # the setting is restored after the fit


def test_mlp_run_has_no_graph_consistency(teacher_run, tmp_path):
    code, out, err = cli(["distill", *TINY, "--method", "kd", "--student", "mlp", "--teacher-checkpoint",
                          teacher_run / "teacher" / "teacher.pt", "--out", tmp_path / "mlp"])
    assert code == 0, err
    assert json.loads((tmp_path / "mlp" / "summary.json").read_text())["graph_consistency"] is None
    assert "class-consistency" not in out
    # settings at their defaults stay out of the resume fingerprint: older run directories still resume
    config = torch.load(tmp_path / "mlp" / "checkpoint.pt", weights_only=True)["config"]
    assert not {f"settings.{k}" for k in GRAPH_SETTINGS} & set(config) and "settings.relation_weight" in config


# ------------------------------------------------------------------------------------- side by side
def test_run_compare_shares_one_teacher_and_prints_one_table(tmp_path):
    from tg_cnn2gnn.run.commands import main_job_entries, run_compare
    from tg_cnn2gnn.run.configfile import settings_from_file
    from pathlib import Path
    tiny = dict(subset=400, test_subset=100, teacher_width=4, teacher_epochs=1, epochs=1, batch_size=40,
                head_hidden=(16,), hidden=16, bank_size=20, eval_batch_size=20, threads=1, measure=False)
    configs = Path(__file__).resolve().parents[2] / "configs" / "digits"
    rec = validate(settings_from_file(configs / "main.yaml", "example", **tiny, s=3, graph_nca=1.0,
                                      relation_weight=1.0, head_form="embedding", code_scale=2.0,
                                      label_vote=2.0))
    paper = settings_from_file(configs / "paper.yaml", "example", head_hidden=(16,), hidden=16, s=3)
    entries, notes = main_job_entries(rec, paper, paper_epochs=1, paper_subset=300)
    assert [n for n, _ in entries] == ["recommended", "paper-preset", "kd-mlp", "kd-mlp-paper-budget"]
    p = dict(entries)["paper-preset"]
    assert (p.graph, p.graph_nca, p.head_form, p.subset, p.epochs, p.teacher, p.teacher_width) == \
        ("pool", 3.0, "anchor", 300, 1, "simple-cnn", 4)
    assert (dict(entries)["kd-mlp"].method, dict(entries)["kd-mlp"].student) == ("kd", "mlp")
    assert dict(entries)["kd-mlp"].code_scale == 0.0 and rec.code_scale == 2.0     # MLPs have no codes
    assert dict(entries)["kd-mlp"].label_vote == 0.0 and p.label_vote == 0.0       # nor a graph to vote with
    kp = dict(entries)["kd-mlp-paper-budget"]           # the paper row's widths and budget, as a KD-MLP
    assert (kp.method, kp.student, kp.subset, kp.epochs, kp.hidden, kp.lr) == \
        ("kd", "mlp", p.subset, p.epochs, p.hidden, p.lr)
    logs = []
    result = run_compare(entries, out=tmp_path, notes=notes, log=logs.append)
    sources = [r["summary"]["teacher"]["source"] for r in result["rows"]]
    assert sources == ["trained", "checkpoint", "checkpoint", "checkpoint"]
    paths = {r["summary"]["teacher"]["path"] for r in result["rows"][1:]}
    assert paths == {str(tmp_path / "recommended" / "teacher" / "teacher.pt")}
    table = result["table"]
    assert table.count("\n| ") == 6 and "| teacher: simple-cnn |" in table      # teacher + 4 rows + the vote
    vote = result["rows"][0]["summary"]["student"]["label_vote"]
    assert vote["beta"] == 2.0 and vote["bank_size"] == result["rows"][0]["summary"]["n_train"]
    assert 0 < vote["test_acc"] <= 1 and 0 < vote["student_alone_test_acc"] <= 1
    assert "| recommended + label vote (beta 2, bank = all" in table
    assert all(r["summary"]["student"]["label_vote"] is None for r in result["rows"][1:])
    assert "1 epochs on a 300-image training subset (the paper-preset row's budget" in table
    assert "reduced: 1 of 200 epochs on a 300-image training subset" in table and "– (no graph)" in table
    assert (tmp_path / "compare.md").read_text() == table
    with pytest.raises(SettingsError, match="unique folder names"):
        run_compare([("a", rec), ("a", rec)], out=tmp_path)
    with pytest.raises(SettingsError, match="row 'bad': --epochs=0"):     # refused before any training
        run_compare([("good", rec), ("bad", rec.replace(epochs=0))], out=tmp_path / "refused")
    assert not (tmp_path / "refused").exists()


def test_code_scale_setting_reaches_the_head_and_is_checked():
    from tg_cnn2gnn.run.factories import build_student_model
    s = validate(Settings(dataset="digits", head_form="embedding", code_scale=2.0))
    model = build_student_model(s, 100, 64, 10)
    assert model.head.code_scale == 2.0
    for bad, match in (({"code_scale": -1.0}, "code-scale.*finite number >= 0"),
                       ({"code_scale": 2.0, "head_form": "anchor"}, "code-scale.*--head-form embedding"),
                       ({"code_scale": 2.0, "head_form": "embedding", "student": "mlp", "method": "kd"},
                        "code-scale.*--student gnn")):
        with pytest.raises(SettingsError, match=match):
            validate(Settings(dataset="digits", **{"head_form": "embedding", **bad}))
    code, _, err = cli(["distill", "--dataset", "digits", "--code-scale", "-2", "--out", "/nonexistent/x"])
    assert code == 2 and "--code-scale" in err


def test_label_vote_setting_is_checked():
    assert validate(Settings(dataset="digits", head_form="embedding", label_vote=1.5)).label_vote == 1.5
    for bad, match in (({"label_vote": -1.0}, "label-vote.*finite number >= 0"),
                       ({"label_vote": 2.0, "student": "mlp", "method": "kd"}, "label-vote.*MLP student")):
        with pytest.raises(SettingsError, match=match):
            validate(Settings(dataset="digits", **bad))
    code, _, err = cli(["distill", "--dataset", "digits", "--label-vote", "-2", "--out", "/nonexistent/x"])
    assert code == 2 and "--label-vote" in err and ">= 0" in err
    code, _, err = cli(["distill", "--dataset", "digits", "--label-vote", "nan", "--out", "/nonexistent/x"])
    assert code == 2 and "label_vote" in err and "finite" in err


def test_kd_mlp_row_drops_every_graph_setting_and_keeps_the_budget():
    from tg_cnn2gnn.run.commands import as_kd_mlp
    s = validate(Settings(dataset="digits", s=10, head_form="embedding", code_scale=3.0, graph_nca=2.0,
                          nca_memory=300, relation_weight=1.0, label_vote=1.0, balanced_batches=True, epochs=7))
    kd = validate(as_kd_mlp(s))                      # valid: nothing graph-only is left over
    assert (kd.method, kd.student, kd.graph_nca, kd.nca_memory, kd.code_scale, kd.label_vote) == \
        ("kd", "mlp", 0.0, 0, 0.0, 0.0)
    assert kd.balanced_batches and kd.epochs == 7 and kd.batch_size == s.batch_size
