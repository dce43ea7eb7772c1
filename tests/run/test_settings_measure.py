"""Settings validation, data preparation, cost measures and the teacher-vs-student table
(moved from tests/test_pipeline.py with the code it tests)."""
import csv

import pytest
import torch

from tg_cnn2gnn.data import DATASETS
from tg_cnn2gnn.run.config import Settings, SettingsError, coerce, validate
from tg_cnn2gnn.run.data import load_data
from tg_cnn2gnn.run.factories import build_student_model, build_teacher_model
from tg_cnn2gnn.run.measure import count_flops, measure_student, measure_teacher
from tg_cnn2gnn.run.teacher_cache import teacher_fingerprint
from tg_cnn2gnn.report import fmt_acc, fmt_count, fmt_ms, make_table, plot_curves
from tg_cnn2gnn.teachers import TEACHERS


# ----------------------------------------------------------------------------- settings
def test_defaults_are_the_papers_and_valid():
    s = validate(Settings())
    assert (s.s, s.alpha, s.batch_size, s.epochs, s.lr, s.head_hidden, s.num_layers, s.conv) == \
        (50, 1.0, 100, 200, 0.01, (512, 256), 2, "gcn")
    assert s.mechanisms == ("bank", "batch") and s.dataset == "fashion-mnist"


def test_names_are_canonicalised():
    s = validate(Settings(dataset="Fashion_MNIST", teacher="ResNet18", conv="GCN"))
    assert (s.dataset, s.teacher, s.conv) == ("fashion-mnist", "resnet18", "gcn")
    assert validate(Settings(dataset="CIFAR-10", teacher="wrn_40_2")).teacher == "wrn-40-2"


def test_unknown_names_list_the_valid_ones():
    with pytest.raises(SettingsError, match=f"unknown dataset 'imagenet'; valid datasets: {', '.join(DATASETS)}$"):
        validate(Settings(dataset="imagenet"))
    with pytest.raises(SettingsError, match=f"unknown teacher 'vit'; valid teachers: {', '.join(TEACHERS)}$"):
        validate(Settings(teacher="vit"))
    with pytest.raises(SettingsError, match="unknown conv 'transformer'; valid convs: .*gcn"):
        validate(Settings(conv="transformer"))
    with pytest.raises(SettingsError, match="unknown mechanism 'fast'; valid mechanisms: bank, batch, one_by_one, "
                                            "direct"):
        validate(Settings(mechanisms=("bank", "fast")))


@pytest.mark.parametrize("changes, message", [
    ({"epochs": 0}, r"--epochs=0: must be a positive integer"),
    ({"teacher_epochs": -2}, r"--teacher-epochs=-2: must be a positive integer"),
    ({"batch_size": 2, "s": 1}, r"--batch-size=2: must be at least 3"),
    ({"s": 0}, r"--s=0: must be a positive integer"),
    ({"s": 99}, r"--s=99: must be smaller than the batch size minus 1 .* use --s 98 or less"),
    ({"bank_size": 2}, r"--bank-size=2: must be at least 3"),
    ({"eval_batch_size": 2}, r"--eval-batch-size=2: Mechanism 2 \(batch\) needs test batches of at least 3"),
    ({"alpha": -0.1}, r"--alpha=-0.1: must be >= 0"),
    ({"tau": 0.0}, r"--tau=0.0: must be > 0"),
    ({"teacher_lr": 0.0}, r"--teacher-lr=0.0: must be > 0"),
    ({"weight_decay": -1.0}, r"--weight-decay=-1.0: must be >= 0"),
    ({"dropout": 1.0}, r"--dropout=1.0: must be in \[0, 1\)"),
    ({"val_fraction": 1.0}, r"--val-fraction=1.0: must be in \[0, 1\)"),
    ({"subset": 0}, r"--subset=0: must be a positive integer \(or left out\)"),
    ({"seed": -1}, r"--seed=-1: must be an integer in \[0, 2\*\*32\)"),
    ({"head_hidden": ()}, r"--head-hidden=: must be one or more positive integers"),
    ({"optimizer": "rmsprop"}, r"--optimizer=rmsprop: unknown value; valid values: adam, adamw, sgd"),
    ({"scheduler": "onecycle"}, r"--scheduler=onecycle: unknown value; valid values: cosine, step, none"),
    ({"augment": "yes"}, r"--augment=yes: unknown value; valid values: none, teacher, all"),
    ({"mechanisms": ()}, r"--mechanisms=: give at least one mechanism"),
    ({"mechanisms": ("direct",)}, r"--mechanisms=direct: mechanism 'direct' needs test-test distances"),
    ({"val_mechanism": "direct"}, r"--val-mechanism=direct: mechanism 'direct' needs"),
    ({"teacher": "vgg8", "teacher_width": 4}, r"--teacher-width=4: only applies to the simple-cnn teacher"),
    ({"device": "gpu"}, r"--device=gpu: not a torch device"),
    ({"teacher_checkpoint": "/nonexistent/t.pt"}, r"--teacher-checkpoint=/nonexistent/t.pt: no such file"),
    ({"epochs": "ten"}, r"epochs \(in settings\) must be an integer, got 'ten'"),
    ({"lr": float("nan")}, r"lr \(in settings\) must be a finite number"),
])
def test_bad_values_name_option_value_and_rule(changes, message):
    with pytest.raises(SettingsError, match=message):
        validate(Settings(**changes))


def test_embedding_head_allows_direct_and_augment_disables_cache():
    s = validate(Settings(head_form="embedding", mechanisms=("bank", "direct")))
    assert s.mechanisms == ("bank", "direct")
    assert validate(Settings(augment="all")).cache_teacher_logits is False
    assert validate(Settings(augment="teacher")).cache_teacher_logits is True


def test_coerce_and_from_dict():
    assert coerce("epochs", "3") == 3 and coerce("epochs", 4.0) == 4
    assert coerce("head_hidden", "512, 256") == (512, 256) and coerce("head_hidden", [64]) == (64,)
    assert coerce("mechanisms", "bank batch") == ("bank", "batch")
    assert coerce("measure", "no") is False and coerce("progress", True) is True
    assert coerce("subset", "none") is None and coerce("lr", "1e-3") == 1e-3
    for name, value in (("epochs", 2.5), ("epochs", True), ("measure", "maybe"), ("dataset", 3),
                        ("head_hidden", [1.5])):
        with pytest.raises(SettingsError, match=f"^{name} \\(in settings\\) must be"):
            coerce(name, value)
    with pytest.raises(SettingsError, match="^epochs \\(in settings\\) must not be empty"):
        coerce("epochs", None)
    s = Settings.from_dict({"head-hidden": [8], "epochs": "2"})
    assert s.head_hidden == (8,) and s.epochs == 2
    with pytest.raises(SettingsError, match="unknown setting 'epoch' in x.json; valid settings: dataset, root"):
        Settings.from_dict({"epoch": 3}, source="x.json")
    assert Settings.from_dict(Settings(epochs=3).to_dict()) == Settings(epochs=3)


def test_teacher_fingerprint_ignores_student_settings():
    a = teacher_fingerprint(Settings(epochs=3, lr=0.1, s=5))
    assert a == teacher_fingerprint(Settings())
    assert a != teacher_fingerprint(Settings(teacher_epochs=2))
    assert a != teacher_fingerprint(Settings(subset=100))


# ----------------------------------------------------------------------------- data
def test_load_data_subset_and_validation_split():
    data = load_data(validate(Settings(dataset="digits", subset=500, test_subset=100, val_fraction=0.2)))
    assert data.x.shape[1:] == (1, 8, 8) and abs(data.y.numel() - 500) <= 10
    assert abs(data.y_test.numel() - 100) <= 10
    assert data.train_idx.numel() + data.val_idx.numel() == data.y.numel()
    assert set(data.train_idx.tolist()).isdisjoint(data.val_idx.tolist())
    assert abs(data.val_idx.numel() - 0.2 * data.y.numel()) <= 10
    assert torch.bincount(data.y[data.val_idx], minlength=10).min() > 0  # stratified
    with pytest.raises(SettingsError, match="--bank-size=5000 exceeds the"):
        load_data(validate(Settings(dataset="digits", bank_size=5000)))


# ----------------------------------------------------------------------------- measures
def test_measure_teacher_counts_flops_and_latency():
    info = type("Info", (), {"num_classes": 10, "channels": 1, "image_size": 8})()
    teacher = build_teacher_model(validate(Settings(dataset="digits", teacher_width=4)), info).eval()
    x = torch.randn(20, 1, 8, 8)
    out = measure_teacher(teacher, x, repeats=2)
    assert out["params"] == sum(p.numel() for p in teacher.parameters())
    assert out["flops_per_sample"] == count_flops(lambda: teacher(x[:1])) > 0
    assert out["latency_ms_batch1"] > 0 and out["latency_ms_batched"] > 0
    assert "latency_ms_batch1" not in measure_teacher(teacher, x, latency=False)


def test_measure_student_flops_per_mechanism():
    torch.manual_seed(0)
    F, H, C, n = 64, 16, 10, 60
    s = validate(Settings(dataset="digits", s=3, head_hidden=(32,), hidden=H, bank_size=20, eval_batch_size=10))
    model = build_student_model(s, n, F, C)
    out = measure_student(model, torch.randn(n, F), torch.randn(30, F), mechanisms=("bank", "batch"), bank_size=20,
                          eval_batch_size=10, repeats=2)
    assert out["params_total"] == out["params_student"] + out["params_head"]
    gcn = 2 * (F * H + H * C)  # the two GCN layers' linear maps of one node, 2 FLOPs per multiply-add
    bank, batch = out["flops"]["bank"], out["flops"]["batch"]
    # bank: the frozen-bank predictor does only a sample's own work, about the marginal cost
    # F(2) - F(1) of a full predict call, which also pays the bank's part once per call
    from tg_cnn2gnn.run.measure import count_flops as flops
    xt, tx = torch.randn(2, F), torch.randn(n, F)
    one = flops(lambda: model.predict(xt[:1], mechanism="bank", train_x=tx, bank_size=20, chunk_size=2))
    two = flops(lambda: model.predict(xt[:2], mechanism="bank", train_x=tx, bank_size=20, chunk_size=2))
    assert bank["fixed_part"] is None and bank["predictor_build_s"] > 0
    assert gcn <= bank["per_sample"] < one
    assert abs(bank["per_sample"] - (two - one)) <= 0.1 * (two - one)
    assert batch["per_sample"] >= gcn and batch["batch"] == 10
    assert out["latency_ms"]["bank"]["batch1"] > 0 and out["latency_ms"]["batch"]["batched"] > 0
    assert "batch1" not in out["latency_ms"]["batch"]  # Mechanism 2 needs >= 3 samples
    assert out["latency_ms"]["bank"]["batched_n"] == 30


# ----------------------------------------------------------------------------- table and plots
def _summary():
    return {
        "dataset": "fashion-mnist", "n_train": 54000, "n_val": 6000, "n_test": 10000, "device": "cpu",
        "wall_time_s": 754.0,
        "teacher": {"name": "simple-cnn", "test_acc": 0.9123, "source": "trained", "train_time_s": 300.0,
                    "params": 98442, "flops_per_sample": 12_345_678, "latency_ms_batch1": 0.52,
                    "latency_ms_batched": 0.061, "latency_batch_size": 256},
        "student": {"head_form": "anchor", "conv": "gcn", "num_layers": 2, "s": 10, "best_epoch": 14,
                    "best_val_acc": 0.871, "train_time_s": 400.0,
                    "test_acc": {"last": {"bank": 0.8612, "batch": 0.8421},
                                 "best_val": {"bank": 0.8634, "batch": None}},
                    "params_total": 14_400_000, "params_student": 203_000, "params_head": 14_197_000,
                    "flops": {"bank": {"per_sample": 1_234_000, "fixed_part": 150_000_000},
                              "batch": {"per_sample": 2_500_000}},
                    "latency_ms": {"bank": {"batch1": 1.5, "batched": 0.02},
                                   "batch": {"batched": 0.004}}},
        "hardware": {"cpu": "AMD EPYC", "cpu_count": 2, "torch_threads": 2, "torch": "2.14.1"},
        "settings": Settings(dataset="fashion-mnist", s=10, epochs=20).to_dict(),
    }


def test_table_rows_and_cells():
    table = make_table(_summary())
    lines = table.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    assert "test acc (last epoch)" in header and "test acc (best-val epoch)" in header
    assert "parameters" in header and "FLOPs / sample" in header and "CPU latency / sample" in header
    teacher = next(line for line in lines if line.startswith("| teacher: simple-cnn"))
    assert "| 91.23% |" in teacher and "98.4 k" in teacher and "12.3 M" in teacher and "0.52 ms" in teacher
    bank = next(line for line in lines if "bank (ours, batch-invariant)" in line)
    assert "| 86.12% | 86.34% |" in bank and "14.4 M (head + GNN); GNN alone 203 k" in bank
    assert "1.23 M (+ 150 M bank part per call)" in bank and "1.5 ms" in bank and "0.02 ms (chunks of 128)" in bank
    batch = next(line for line in lines if "batch (paper Mechanism 2)" in line)
    assert "| 84.21% | – |" in batch and "2.5 M" in batch and "needs >= 3 samples" in batch
    assert all(line.count("|") == 8 for line in lines if line.startswith("|"))
    assert "54000 training / 6000 validation / 10000 test images" in table
    assert "best validation epoch 15" in table and "s = 10" in table and "20 epoch(s)" in table
    assert "AMD EPYC, 2 logical CPU(s)" in table and "754 s (12.6 min)" in table and "trained in this run" in table


def test_table_without_teacher_and_formatters():
    summary = _summary()
    summary["teacher"] = None
    summary["settings"]["mechanisms"] = ["bank"]
    table = make_table(summary)
    assert "teacher:" not in table and "batch (paper" not in table and "bank (ours" in table
    assert (fmt_count(None), fmt_count(999), fmt_count(1500), fmt_count(2.5e9)) == ("–", "999", "1.5 k", "2.5 G")
    assert (fmt_acc(None), fmt_acc(0.5)) == ("–", "50.00%")
    assert (fmt_ms(None), fmt_ms(2.0), fmt_ms(0.005)) == ("–", "2 ms", "5 µs")


def test_plot_curves(tmp_path):
    with pytest.raises(FileNotFoundError, match="no metrics.csv"):
        plot_curves(tmp_path)
    with open(tmp_path / "metrics.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["epoch", "loss", "ce", "kd", "train_acc", "val_acc"])
        for e in range(3):
            w.writerow([e, 2 - e / 2, 1, 1 - e / 3, 0.5 + e / 10, ""])
    out = plot_curves(tmp_path)
    assert out == tmp_path / "training_curves.png" and out.read_bytes()[:4] == b"\x89PNG"


def test_relation_weight_setting_reaches_the_distiller(monkeypatch, tmp_path):
    assert Settings().relation_weight == 0.0                       # the paper's objective by default
    with pytest.raises(SettingsError, match=r"--relation-weight=-0.5: must be >= 0"):
        validate(Settings(relation_weight=-0.5))
    from tg_cnn2gnn.run import commands
    seen = {}

    class Stop(Exception):
        pass

    import tg_cnn2gnn.distill as distill

    def spy(name, teacher, student, **kwargs):
        seen.update(kwargs)
        raise Stop
    monkeypatch.setattr(distill, "build_distiller", spy)           # train_student imports it from here
    with pytest.raises(Stop):
        commands.run_distill(Settings(dataset="digits", teacher_epochs=1, epochs=1, s=5, relation_weight=0.25,
                                      head_hidden=(16,), hidden=16, out=str(tmp_path), measure=False,
                                      progress=False), log=lambda *_: None)
    assert seen["relation_weight"] == 0.25


@pytest.mark.parametrize("balanced", [False, True])
def test_balanced_batches_reach_the_trainer(tmp_path, monkeypatch, balanced):
    from tg_cnn2gnn import distill
    from tg_cnn2gnn.run import commands
    seen = {}

    class Stop(Exception):
        pass

    def spy(distiller, **kwargs):
        seen.update(kwargs)
        raise Stop
    monkeypatch.setattr(distill, "Trainer", spy)                    # train_student imports it from here
    with pytest.raises(Stop):
        commands.run_distill(Settings(dataset="digits", teacher_epochs=1, epochs=1, s=5, head_hidden=(16,),
                                      hidden=16, out=str(tmp_path), measure=False, progress=False,
                                      balanced_batches=balanced), log=lambda *_: None)
    assert seen["balanced_batches"] is balanced
    assert ("settings.balanced_batches" in seen["fingerprint"]) is balanced   # old run dirs still resume
