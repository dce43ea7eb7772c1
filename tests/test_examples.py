"""The example scripts run end to end (tiny settings) on digits and on small files written here in
the real on-disk formats of CIFAR-10/100 (python pickles), STL-10 (binaries) and Mini-ImageNet
(an image folder + Ravi & Larochelle CSVs)."""
import csv
import json
import pickle
import runpy
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tg_cnn2gnn.run.config import Settings, validate
from tg_cnn2gnn.run.configfile import load_config

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
SCRIPTS = {"fashion-mnist": "fashion_mnist.py", "digits": "digits.py", "cifar10": "cifar10.py",
           "cifar100": "cifar100.py", "stl10": "stl10.py", "mini-imagenet": "mini_imagenet.py"}
RNG = np.random.default_rng(7)

# tiny but complete: teacher -> distillation (with a validation split) -> test under both mechanisms
TINY = ["--teacher", "simple-cnn", "--teacher-width", "4", "--teacher-epochs", "1", "--epochs", "2", "--s", "3",
        "--batch-size", "10", "--head-hidden", "16", "--hidden", "16", "--bank-size", "10", "--eval-batch-size", "5",
        "--val-fraction", "0.2", "--threads", "1", "--no-measure"]


def run_example(name, argv, monkeypatch, capsys):
    """Run ``examples/<script>`` as ``__main__`` with ``argv``; return (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", [str(EXAMPLES / SCRIPTS[name]), *argv])
    with pytest.raises(SystemExit) as exc:
        runpy.run_path(str(EXAMPLES / SCRIPTS[name]), run_name="__main__")
    out, err = capsys.readouterr()
    return exc.value.code, out, err


def check_output(out, run_dir, dataset, n_test):
    assert f"### CNN2GNN on {dataset}: teacher vs distilled GNN student" in out
    assert "| teacher: simple-cnn |" in out and "bank (ours" in out and "batch (paper Mechanism 2)" in out
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"] == dataset and summary["n_test"] == n_test
    for which in ("last", "best_val"):
        assert all(0 <= a <= 1 for a in summary["student"]["test_acc"][which].values())
    for name in ("table.md", "metrics.csv", "training_curves.png", "checkpoint.pt", "teacher/teacher.pt"):
        assert (run_dir / name).is_file(), name
    assert (run_dir / "best.pt").is_file() == (summary["n_val"] > 0)  # best.pt needs a validation split
    return summary


def _images(n, c, h, w):
    return RNG.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def _labels(n, k):
    return (np.arange(n) % k).tolist()  # every class present, so stratified splits work


# ----------------------------------------------------------------------------- the scripts themselves
def test_every_dataset_has_an_example_with_valid_defaults():
    assert (EXAMPLES / "closed_form_graph.py").is_file()
    for dataset, script in SCRIPTS.items():
        module = runpy.run_path(str(EXAMPLES / script), run_name="not_main")
        settings = validate(Settings(**load_config(module["CONFIG"], "example")))
        assert settings.dataset == dataset and module["CONFIG"].name == "main.yaml"
        assert settings.mechanisms == ("bank", "batch") and settings.seed == 0
        assert module["__doc__"] and f"examples/{script}" in module["__doc__"]
    paper = validate(Settings(**load_config(runpy.run_path(str(EXAMPLES / "cifar100.py"),
                                                           run_name="not_main")["CONFIG"], "example")))
    assert (paper.s, paper.epochs, paper.batch_size, paper.lr, paper.head_hidden) == (50, 200, 100, 0.01, (512, 256))


def test_help_and_bad_flag(monkeypatch, capsys):
    code, out, _ = run_example("cifar10", ["--help"], monkeypatch, capsys)
    assert code == 0 and "(default: resnet34)" in " ".join(out.split()) and "--dataset" not in out
    code, out, err = run_example("digits", ["--teacher", "lenet"], monkeypatch, capsys)
    assert code == 2 and "unknown teacher 'lenet'; valid teachers: simple-cnn, resnet18" in err
    assert len(err.strip().splitlines()) == 1


def test_missing_data_is_one_clear_line(tmp_path, monkeypatch, capsys):
    code, _, err = run_example("cifar10", ["--root", str(tmp_path), *TINY], monkeypatch, capsys)
    assert code == 2 and "cifar-10-batches-py" in err and len(err.strip().splitlines()) == 1


# ----------------------------------------------------------------------------- runs
def test_digits_example(tmp_path, monkeypatch, capsys):
    run_dir = tmp_path / "run"
    code, out, err = run_example("digits", ["--out", str(run_dir), "--subset", "400", "--test-subset", "100",
                                            "--teacher-epochs", "1", "--epochs", "2", "--s", "5", "--batch-size",
                                            "50", "--head-hidden", "32", "--hidden", "32", "--bank-size", "50",
                                            "--eval-batch-size", "50", "--threads", "1"], monkeypatch, capsys)
    assert code == 0, err
    n_test = json.loads((run_dir / "summary.json").read_text())["n_test"]
    assert 90 <= n_test <= 110
    summary = check_output(out, run_dir, "digits", n_test)
    assert summary["settings"]["head_hidden"] == [32] and summary["teacher"]["flops_per_sample"] > 0
    assert summary["student"]["latency_ms"]["bank"]["batch1"] > 0


def test_cifar10_example(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    for b in range(1, 6):
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({"data": _images(12, 3, 32, 32).reshape(12, -1), "labels": _labels(12, 10)}, f, protocol=2)
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": _images(10, 3, 32, 32).reshape(10, -1), "labels": _labels(10, 10)}, f, protocol=2)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f, protocol=2)
    run_dir = tmp_path / "run"
    argv = ["--root", str(tmp_path), "--out", str(run_dir), *TINY]
    # our files are not the official release: the MD5 check refuses them, in one line
    code, _, err = run_example("cifar10", argv, monkeypatch, capsys)
    assert code == 2 and "MD5" in err and "--no-check-integrity" in err and len(err.strip().splitlines()) == 1
    code, out, err = run_example("cifar10", [*argv, "--no-check-integrity"], monkeypatch, capsys)
    assert code == 0, err
    summary = check_output(out, run_dir, "cifar10", 10)
    assert summary["n_train"] + summary["n_val"] == 60


def test_cifar100_example(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for split, n in (("train", 50), ("test", 10)):
        fine = [(7 * i) % 100 for i in range(n)]
        with open(folder / split, "wb") as f:
            pickle.dump({"data": _images(n, 3, 32, 32).reshape(n, -1), "fine_labels": fine,
                         "coarse_labels": [c // 5 for c in fine]}, f, protocol=2)
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": [f"c{i}" for i in range(100)]}, f, protocol=2)
    run_dir = tmp_path / "run"
    code, out, err = run_example("cifar100", ["--root", str(tmp_path), "--out", str(run_dir), *TINY,
                                              "--no-check-integrity", "--val-fraction", "0"], monkeypatch, capsys)
    assert code == 0, err
    summary = check_output(out, run_dir, "cifar100", 10)
    assert summary["n_train"] == 50 and summary["n_val"] == 0
    assert "no validation split" in out


def test_stl10_example(tmp_path, monkeypatch, capsys):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    for split, n in (("train", 30), ("test", 10)):
        x = _images(n, 3, 96, 96)
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes())
        (folder / f"{split}_y.bin").write_bytes((np.array(_labels(n, 10)) + 1).astype(np.uint8).tobytes())
    run_dir = tmp_path / "run"
    code, out, err = run_example("stl10", ["--root", str(tmp_path), "--out", str(run_dir), *TINY,
                                           "--no-check-integrity", "--val-fraction", "0.34"], monkeypatch, capsys)
    assert code == 0, err
    check_output(out, run_dir, "stl10", 10)


def test_mini_imagenet_example(tmp_path, monkeypatch, capsys):
    base = tmp_path / "mini-imagenet"
    (base / "images").mkdir(parents=True)
    for split, wnids in (("train", ["n01000001", "n01000002"]), ("val", ["n02000001"]), ("test", ["n03000001"])):
        rows = []
        for wnid in wnids:
            for j in range(12):
                name = f"{wnid}{j:08d}.png"
                Image.fromarray(RNG.integers(0, 256, (84, 84, 3), dtype=np.uint8)).save(base / "images" / name)
                rows.append((name, wnid))
        with open(base / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([("filename", "label"), *rows])
    run_dir = tmp_path / "run"
    code, out, err = run_example("mini-imagenet", ["--root", str(tmp_path), "--out", str(run_dir), *TINY],
                                 monkeypatch, capsys)
    assert code == 0, err
    summary = check_output(out, run_dir, "mini-imagenet", 8)  # 1/6 of each of the 4 classes' 12 images
    assert summary["n_train"] + summary["n_val"] == 40
