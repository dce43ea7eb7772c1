"""Settings files: load, override by a flag, written to the run directory, re-run from it."""
import json
from pathlib import Path

import pytest
import torch

from tg_cnn2gnn.run.config import Settings, SettingsError, validate
from tg_cnn2gnn.run.configfile import dump_yaml, load_config
from tg_cnn2gnn.run.rundir import RunDir

from run_helpers import cli

CONFIGS = Path(__file__).resolve().parents[2] / "configs"
TINY_YAML = """\
dataset: digits
subset: 400
test_subset: 100
teacher_width: 4
teacher_epochs: 1
epochs: 5            # the flag --epochs 2 wins
s: 3
batch_size: 40
head_hidden: [16]
hidden: 16
bank_size: 20
eval_batch_size: 20
threads: 1
measure: false
distill:
  lr: 0.02           # the distill section overrides the top level
"""


def test_config_round_trip_through_the_run_directory(tmp_path):
    config = tmp_path / "tiny.yaml"
    config.write_text(TINY_YAML, encoding="utf-8")
    first, second = tmp_path / "first", tmp_path / "second"
    code, _, err = cli(["distill", "--config", config, "--epochs", "2", "--out", first])
    assert code == 0, err
    stored = json.loads((first / "settings.json").read_text())
    assert stored["epochs"] == 2 and stored["lr"] == 0.02 and stored["head_hidden"] == [16]
    # settings.yaml is a config file holding exactly the run's settings
    again = Settings(**load_config(first / "settings.yaml", "distill"))
    assert again == RunDir(first).read_settings()[0]
    # ... and re-running from it reproduces the run bit for bit
    code, _, err = cli(["distill", "--config", first / "settings.yaml", "--out", second])
    assert code == 0, err
    a, b = (json.loads((d / "summary.json").read_text())["student"]["test_acc"] for d in (first, second))
    assert a == b
    wa, wb = (torch.load(d / "checkpoint.pt", weights_only=True)["model"] for d in (first, second))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)


def test_dump_yaml_reads_back_every_setting(tmp_path):
    s = Settings(dataset="cifar10", head_hidden=(64, 32), mechanisms=("batch",), subset=None, lr=1e-3,
                 method="dkd", student="mlp", retrain_teacher=True, root="/data dir/x")
    path = tmp_path / "s.yaml"
    path.write_text(dump_yaml(s, header="test"), encoding="utf-8")
    assert Settings(**load_config(path)) == s


@pytest.mark.parametrize("text, message", [
    ("epochs: !!python/object/apply:os.system ['echo hacked']\n", "cannot parse it (ConstructorError"),
    ("!!python/name:os.system\n", "cannot parse it"),
    ("epochs: [1, 2]\n", "epochs (in "),
    ("lr: .nan\n", "lr (in "),
    ("student: 3\n", "student (in "),
    ("method: kd\nbogus: 1\n", "unknown setting 'bogus'"),
])
def test_bad_yaml_is_one_line(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(SettingsError) as e:
        load_config(path, "distill")
    assert message in str(e.value) and "\n" not in str(e.value)
    code, out, err = cli(["distill", "--config", path])
    assert code == 2 and out == "" and len(err.strip().splitlines()) == 1 and message in err


@pytest.mark.parametrize("dataset", ["fashion-mnist", "digits", "cifar10", "cifar100", "stl10", "mini-imagenet"])
def test_shipped_configs_are_valid(dataset):
    from tg_cnn2gnn.run.config import validate
    main = validate(Settings(**load_config(CONFIGS / dataset / "main.yaml")))
    paper = validate(Settings(**load_config(CONFIGS / dataset / "paper.yaml")))
    assert main.dataset == paper.dataset == dataset
    assert (paper.head_hidden, paper.s, paper.epochs, paper.batch_size, paper.lr, paper.alpha, paper.num_layers) == \
        ((512, 256), 50, 200, 100, 0.01, 1.0, 2)
    assert "batch" in paper.mechanisms   # the paper's inductive inference is Mechanism 2


def test_main_job_config_is_the_documented_main_job():
    s = validate(Settings(**load_config(CONFIGS / "fashion-mnist" / "main.yaml")))
    assert (s.teacher, s.teacher_width, s.teacher_epochs, s.epochs, s.s, s.lr, s.head_hidden, s.seed, s.dropout) == \
        ("simple-cnn", 16, 3, 30, 10, 0.005, (1024, 512), 0, 0.2)
    assert (s.head_form, s.graph, s.relation_weight, s.graph_nca, s.code_scale, s.label_vote, s.batch_size) == \
        ("embedding", "batch", 5.0, 3.0, 5.0, 2.0, 200)
    # the compact student (main.yaml before issue 12's sixth pass) differs in the head and the batch alone
    compact = validate(Settings(**load_config(CONFIGS / "fashion-mnist" / "compact.yaml")))
    assert (compact.head_hidden, compact.batch_size) == ((512, 256), 100)
    assert compact.replace(head_hidden=s.head_hidden, batch_size=s.batch_size) == s
    old = validate(Settings(**load_config(CONFIGS / "fashion-mnist" / "batch-anchor.yaml")))   # the previous default
    assert (old.teacher_width, old.teacher_epochs, old.epochs, old.s, old.lr, old.head_hidden, old.head_form) == \
        (16, 3, 15, 10, 0.005, (512, 256), "anchor")
    assert (old.graph, old.graph_nca, old.relation_weight) == ("batch", 0.0, 0.0)
