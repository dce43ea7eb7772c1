"""IVF neighbour search of the frozen-bank predictor: nprobe = nlist is the exact search, recall on a
clustered bank, batch invariance, file round trips, argument errors and the `export --search ivf` flag."""
import sys
from pathlib import Path

import pytest
import torch

from tg_cnn2gnn.distill.checkpoint import save_checkpoint
from tg_cnn2gnn.inference import export_predictor, load_exported, load_predictor, save_predictor
from tg_cnn2gnn.inference import ivf
from tg_cnn2gnn.inference.bank_predictor import BankPredictor
from tg_cnn2gnn.nn import FixedGraphGNN, GraphStudent

from inference_helpers import briefly_trained

BANK = 400


@pytest.fixture(scope="module")
def models(digits):
    x, y, _, _ = digits
    return {form: briefly_trained(x, y, form, s=6) for form in ("anchor", "embedding")}


def _sorted(nbr):
    return nbr.sort(1).values


def _dense(nbr, w, nb):
    """Eq. 3 weights as ``[T, nb]`` rows (order-free: near-tied neighbours may swap places)."""
    return torch.zeros(nbr.size(0), nb).scatter_(1, nbr, w)


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_probing_every_list_gives_the_exact_neighbours_and_logits(digits, models, form):
    x, _, xt, _ = digits
    model = models[form]
    exact = model.bank_predictor(x, bank_size=BANK, seed=2)
    probe = model.bank_predictor(x, bank_size=BANK, seed=2, search="ivf")
    nlist = probe.spec["ivf"]["nlist"]
    assert probe.search == "ivf" and 1 < probe.nprobe < nlist
    probe.nprobe = nlist
    with torch.no_grad():
        code = exact.encode(xt)
        n0, w0 = exact.neighbours(code)
        n1, w1 = probe.neighbours(code)
        got = probe(xt)
    assert torch.equal(_sorted(n0), _sorted(n1))
    # same neighbours; weights to float tolerance (gemm vs per-query gemv rounding of the distances)
    torch.testing.assert_close(_dense(n1, w1, BANK), _dense(n0, w0, BANK), rtol=0, atol=1e-4)
    torch.testing.assert_close(got, exact(xt), rtol=1e-4, atol=5e-5)
    ref = model.predict(xt, mechanism="bank", train_x=x, bank_size=BANK, seed=2)
    torch.testing.assert_close(got, ref, rtol=1e-4, atol=1e-4)
    probe.search = "exact"                                     # the same predictor searches exactly too
    with torch.no_grad():
        assert torch.equal(probe(xt), exact(xt))


def test_min_nprobe_counts_the_smallest_non_empty_lists():
    assert ivf.min_nprobe(torch.tensor([0, 0, 5, 2, 9, 3]), 7) == 3        # 2 + 3 + 5 (empty lists never first)
    assert ivf.min_nprobe(torch.tensor([0, 4, 8]), 4) == 1


def test_index_layout_partitions_the_bank_and_centroids_are_list_means():
    torch.manual_seed(0)
    col = torch.randn(9, 500)
    spec, t = ivf.build_ivf(col, "sqeuclidean", 7, nlist=20, seed=0, balance=1.5)
    ids, blocks = t["ivf_ids"], t["ivf_blocks"].transpose(1, 2)               # [nlist, L, K + 1]
    assert spec["nlist"] == 20 and ids.shape == (20, spec["list_len"]) and blocks.shape == (*ids.shape, 9)
    assert torch.equal(ids[ids >= 0].sort().values, torch.arange(500))         # each sample in one list
    assert int(ivf.list_sizes(ids).max()) <= 38                                 # ceil(1.5 * 500 / 20)
    assert torch.equal(blocks[ids >= 0], col.t()[ids[ids >= 0]])                # block rows = columns
    pad = blocks[ids < 0]
    assert torch.isinf(pad[:, -1]).all() and not pad[:, :-1].any()             # padding scores +inf
    for j in range(20):
        members = ids[j][ids[j] >= 0]
        if members.numel():
            torch.testing.assert_close(t["ivf_centroids"][:, j], col[:, members].mean(1))
        else:
            assert torch.isinf(t["ivf_centroids"][-1, j])


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_recall_of_the_s_nearest_on_a_clustered_bank_is_high_at_the_default_nprobe(metric):
    g = torch.Generator().manual_seed(0)
    centres = 4 * torch.randn(40, 16, generator=g)
    def draw(n):
        return centres[torch.randint(0, 40, (n,), generator=g)] + torch.randn(n, 16, generator=g)
    train_x, queries = draw(4000), draw(300)
    model = FixedGraphGNN(GraphStudent(16, 8, 3), s=10, metric=metric).eval()
    exact = model.bank_predictor(train_x, bank_size=4000)
    approx = model.bank_predictor(train_x, bank_size=4000, search="ivf")
    assert approx.spec["ivf"]["nlist"] == 253 and approx.nprobe == 16           # defaults: 4 sqrt(|B|), sqrt(nlist)
    with torch.no_grad():
        n0, _ = exact.neighbours(exact.encode(queries))
        n1, _ = approx.neighbours(approx.encode(queries))
        approx.nprobe = ivf.min_nprobe(ivf.list_sizes(approx.ivf_ids), 11)
        assert approx.nprobe < 16
        n2, _ = approx.neighbours(approx.encode(queries))
    recall = (n0.unsqueeze(2) == n1.unsqueeze(1)).any(2).float().mean().item()
    low = (n0.unsqueeze(2) == n2.unsqueeze(1)).any(2).float().mean().item()
    assert recall >= 0.95 and low < recall                  # and fewer probed lists find fewer of them


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_deterministic_ivf_is_bit_identical_under_any_batching(digits, models, form):
    x, _, xt, _ = digits
    pred = models[form].bank_predictor(x, bank_size=BANK, search="ivf", deterministic=True)
    with torch.no_grad():
        whole = pred(xt)
        ones = torch.cat([pred(xt[i:i + 1]) for i in range(xt.size(0))])
        sevens = torch.cat([pred(c) for c in xt.split(7)])
        perm = torch.randperm(xt.size(0), generator=torch.Generator().manual_seed(0))
        shuffled = torch.empty_like(whole)
        shuffled[perm] = pred(xt[perm])
    assert torch.equal(whole, ones) and torch.equal(whole, sevens) and torch.equal(whole, shuffled)


def test_save_load_and_export_round_trips_keep_the_index(digits, models, tmp_path):
    x, _, xt, _ = digits
    pred = models["embedding"].bank_predictor(x, bank_size=BANK, search="ivf", nlist=12)
    pred.nprobe = 3
    back, _ = load_predictor(save_predictor(pred, tmp_path / "p.pt"))
    assert back.spec == pred.spec and back.search == "ivf" and back.nprobe == 3
    with torch.no_grad():
        ref = pred(xt)
        assert torch.equal(back(xt), ref)
        pred.nprobe = pred.spec["ivf"]["nlist"]
        assert not torch.equal(pred(xt), ref)                  # nprobe=3 was approximate here
        pred.nprobe = 3
    module, _ = load_exported(export_predictor(pred, tmp_path / "p.pt2", xt[:4]))
    with torch.no_grad():
        torch.testing.assert_close(module(xt), ref, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(module(xt[:1]), ref[:1], rtol=1e-5, atol=1e-5)


def test_version_1_specs_still_load_as_exact_search(digits, models, tmp_path):
    x, _, xt, _ = digits
    pred = models["anchor"].bank_predictor(x, bank_size=BANK)
    spec = {k: v for k, v in pred.spec.items() if k != "search"}
    spec["version"] = 1
    path = tmp_path / "v1.pt"
    save_checkpoint({"spec": spec, "tensors": dict(pred.named_buffers()), "meta": {}}, path,
                    kind="bank-predictor")
    back, _ = load_predictor(path)
    assert back.search == "exact" and back.nprobe is None
    with torch.no_grad():
        assert torch.equal(back(xt), pred(xt))


def test_bad_search_settings_name_the_argument(digits, models):
    x, _, _, _ = digits
    model = models["anchor"]
    with pytest.raises(ValueError, match=r"nlist=400 is out of range.*bank of 400 samples has 1 to 399 lists"):
        model.bank_predictor(x, bank_size=BANK, search="ivf", nlist=400)
    with pytest.raises(ValueError, match="nlist=0 is out of range"):
        model.bank_predictor(x, bank_size=BANK, search="ivf", nlist=0)
    with pytest.raises(TypeError, match=r"nlist must be an int, got float"):
        model.bank_predictor(x, bank_size=BANK, search="ivf", nlist=8.0)
    with pytest.raises(ValueError, match=r"nprobe=9 is out of range: the index has nlist=8 lists"):
        model.bank_predictor(x, bank_size=BANK, search="ivf", nlist=8, nprobe=9)
    with pytest.raises(ValueError, match=r"nprobe=1 is too small.*s \+ 1 = 7 bank samples.*use nprobe >= \d+"):
        model.bank_predictor(x, bank_size=BANK, search="ivf", nlist=100, nprobe=1)
    with pytest.raises(ValueError, match="are IVF settings: pass search='ivf'"):
        model.bank_predictor(x, bank_size=BANK, nprobe=4)
    with pytest.raises(ValueError, match=r"search='faiss' is not a neighbour search; allowed: 'exact', 'ivf'"):
        model.bank_predictor(x, bank_size=BANK, search="faiss")
    exact = model.bank_predictor(x, bank_size=BANK)
    with pytest.raises(ValueError, match="search='ivf' needs an IVF index"):
        exact.search = "ivf"
    with pytest.raises(ValueError, match="nprobe needs an IVF index"):
        exact.nprobe = 4
    approx = model.bank_predictor(x, bank_size=BANK, search="ivf", nlist=8)
    with pytest.raises(ValueError, match="nprobe=0 is out of range"):
        approx.nprobe = 0
    assert approx.nprobe == ivf.default_nprobe(8, ivf.list_sizes(approx.ivf_ids), 7)   # unchanged
    spec = dict(approx.spec, ivf=None)
    with pytest.raises(ValueError, match="an 'ivf' spec needs"):
        BankPredictor(spec, dict(approx.named_buffers()))


def test_small_bank_defaults_keep_lists_at_least_s_plus_one_on_average(digits, models):
    x, _, xt, _ = digits
    pred = models["embedding"].bank_predictor(x, bank_size=20, search="ivf")   # s = 6
    assert pred.spec["ivf"]["nlist"] == 2 and pred.nprobe >= ivf.min_nprobe(
        ivf.list_sizes(pred.ivf_ids), 7)
    with torch.no_grad():
        assert torch.isfinite(pred(xt)).all()


def test_cli_export_with_search_ivf_and_label_vote(tmp_path):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "run"))
    try:
        from run_helpers import TINY, cli
    finally:
        sys.path.pop(0)
    run_dir = tmp_path / "run"
    assert cli(["train-teacher", *TINY[:TINY.index("--epochs")], "--threads", "1", "--no-measure",
                "--out", run_dir])[0] == 0
    code, _, err = cli(["distill", *TINY, "--bank-size", "300", "--teacher-checkpoint",
                        run_dir / "teacher" / "teacher.pt", "--out", run_dir])
    assert code == 0, err
    out = tmp_path / "p.pt"
    code, stdout, err = cli(["export", run_dir, "--out", out, "--search", "ivf", "--nlist", "10", "--nprobe", "10"])
    assert code == 0, err
    pred, meta = load_predictor(out)
    assert pred.search == "ivf" and pred.spec["ivf"]["nlist"] == 10 and meta["nprobe"] == 10
    exact, _ = load_predictor(out)
    exact.search = "exact"
    xt = torch.randn(30, 64)
    with torch.no_grad():
        torch.testing.assert_close(pred(xt), exact(xt), rtol=1e-5, atol=1e-5)      # nprobe = nlist
    code, _, err = cli(["export", run_dir, "--out", out, "--nprobe", "3"])
    assert code == 2 and "--nprobe=3: only with --search ivf" in err
    code, _, err = cli(["export", run_dir, "--out", out, "--search", "ivf", "--nlist", "10", "--nprobe", "11"])
    assert code == 2 and "nprobe=11 is out of range" in err
    code, _, err = cli(["export", run_dir, "--out", tmp_path / "v.pt", "--label-vote", "1.5"])
    assert code == 0, err
    voted, meta = load_predictor(tmp_path / "v.pt")
    assert voted.label_vote == 1.5 and meta["label_vote"] == 1.5 and voted.vote_labels.numel() == 300
    code, _, err = cli(["export", run_dir, "--out", out, "--label-vote", "-1"])
    assert code == 2 and "--label-vote=-1.0: must be a finite number >= 0" in err
