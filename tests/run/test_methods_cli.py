"""The KD baselines through the command line on digits: --method kd/dkd/ce, --student mlp."""
import json

import pytest
import torch

from tg_cnn2gnn.baselines import MLPStudent
from tg_cnn2gnn.run.config import METHOD_CHOICES, STUDENT_CHOICES, Settings, SettingsError, validate

from run_helpers import TINY, cli


@pytest.fixture(scope="module")
def runs(teacher_run, tmp_path_factory):
    """One distillation per (method, student), all from the same teacher file."""
    base = tmp_path_factory.mktemp("methods")
    teacher = teacher_run / "teacher" / "teacher.pt"
    out = {}
    for method, student in (("kd", "mlp"), ("dkd", "mlp"), ("ce", "mlp"), ("kd", "gnn"), ("cnn2gnn", "gnn")):
        run_dir = base / f"{method}-{student}"
        code, stdout, err = cli(["distill", *TINY, "--method", method, "--student", student, "--warmup-epochs", "1",
                                 "--teacher-checkpoint", teacher, "--out", run_dir])
        assert code == 0, (method, student, err)
        out[method, student] = (run_dir, stdout, json.loads((run_dir / "summary.json").read_text()))
    return out


def test_every_baseline_writes_a_full_run_directory(runs):
    for (method, student), (run_dir, stdout, summary) in runs.items():
        assert summary["method"] == method and summary["settings"]["student"] == student
        for name in ("checkpoint.pt", "best.pt", "metrics.csv", "summary.json", "table.md", "settings.yaml"):
            assert (run_dir / name).is_file(), (method, student, name)
        for which in ("last", "best_val"):
            assert all(0 <= a <= 1 for a in summary["student"]["test_acc"][which].values())
        assert (summary["teacher"] is None) == (method == "ce")


def test_mlp_student_is_an_mlp_with_the_gnn_widths(runs):
    _, stdout, summary = runs["kd", "mlp"]
    expected = sum(p.numel() for p in MLPStudent(64, 16, 10).parameters())
    assert summary["student"]["params_total"] == expected and summary["student"]["params_head"] == 0
    assert "### KD-MLP on digits" in stdout and "KD-MLP student" in stdout
    assert "### DKD-MLP on digits" in runs["dkd", "mlp"][1] and "### CE-MLP on digits" in runs["ce", "mlp"][1]


def test_methods_train_differently(runs):
    """Same seed and data: the loss (KD vs DKD vs labels only) is what changes the weights."""
    weights = {k: torch.load(v[0] / "checkpoint.pt", weights_only=True)["model"] for k, v in runs.items()
               if k[1] == "mlp"}
    keys = list(weights[("kd", "mlp")])
    for a, b in ((("kd", "mlp"), ("dkd", "mlp")), (("kd", "mlp"), ("ce", "mlp"))):
        assert any(not torch.equal(weights[a][k], weights[b][k]) for k in keys), (a, b)


def test_kd_gnn_equals_cnn2gnn_without_relation_term(runs):
    """--method kd with the GNN student is Eq. 6 (CE + alpha KL): the cnn2gnn run, bit for bit."""
    a = torch.load(runs["kd", "gnn"][0] / "checkpoint.pt", weights_only=True)["model"]
    b = torch.load(runs["cnn2gnn", "gnn"][0] / "checkpoint.pt", weights_only=True)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("flag, value, valid", [("--method", "fitnet", METHOD_CHOICES),
                                                ("--student", "cnn", STUDENT_CHOICES)])
def test_unknown_method_or_student_lists_the_valid_ones(flag, value, valid):
    code, out, err = cli(["distill", "--dataset", "digits", flag, value])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1
    assert f"invalid choice: '{value}'" in err and all(v in err for v in valid)
    name = flag[2:]
    with pytest.raises(SettingsError, match=f"^--{name}={value}: unknown value; valid values: {', '.join(valid)}$"):
        validate(Settings(**{name: value}))


@pytest.mark.parametrize("changes, message", [
    ({"method": "kd", "relation_weight": 0.5}, "--relation-weight=0.5: the relation term belongs to --method cnn2gnn"),
    ({"student": "mlp", "relation_weight": 0.5}, "the mlp student has none"),
    ({"dkd_beta": -1.0}, "--dkd-beta=-1.0: must be >= 0"),
    ({"warmup_epochs": -1}, "--warmup-epochs=-1: must be >= 0"),
    ({"resume": True, "retrain_teacher": True}, "--retrain-teacher=True: cannot be combined with --resume"),
])
def test_method_settings_are_checked(changes, message):
    with pytest.raises(SettingsError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate(Settings(**changes))
