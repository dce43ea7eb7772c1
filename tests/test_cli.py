"""The ``cnn2gnn`` command line: end to end on digits, help texts, errors, config files, benchmarks."""
import csv
import json
import math
import runpy
import sys
from pathlib import Path

import pytest
import torch

from tg_cnn2gnn import cli
from tg_cnn2gnn.cli import build_settings, load_config, main, make_parser
from tg_cnn2gnn.data import DATASETS
from tg_cnn2gnn.teachers import TEACHERS

REPO = Path(__file__).resolve().parents[1]

TEACHER_FLAGS = ["--dataset", "digits", "--teacher-epochs", "2", "--threads", "1", "--seed", "0"]
STUDENT_FLAGS = ["--s", "5", "--batch-size", "50", "--head-hidden", "32", "--hidden", "32", "--bank-size", "50",
                 "--eval-batch-size", "50"]


def run(argv, capsys):
    """``main(argv)`` -> (exit code, stdout, stderr); argparse exits become exit codes."""
    try:
        code = main(argv)
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    """train-teacher, then distill (from a TOML config with flags on top), then evaluate: one run directory."""
    run_dir = tmp_path_factory.mktemp("cli") / "run"
    logs = {}
    import contextlib
    import io

    def call(argv):
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(argv)
        return code, out.getvalue(), err.getvalue()

    logs["teacher"] = call(["train-teacher", *TEACHER_FLAGS, "--out", str(run_dir)])
    config = run_dir.parent / "distill.toml"
    # the file sets epochs = 5 and lr; the flag --epochs 3 must win; [distill] overrides the top level
    config.write_text('dataset = "digits"\nepochs = 5\nlr = 0.02\n\n[distill]\nalpha = 0.5\ntau = 2.0\n'
                      '\n[evaluate]\nbank_size = 7\n', encoding="utf-8")
    logs["distill"] = call(["distill", "--config", str(config), *TEACHER_FLAGS, *STUDENT_FLAGS, "--epochs", "3",
                            "--out", str(run_dir)])
    logs["evaluate"] = call(["evaluate", str(run_dir), "--mechanism", "bank", "batch", "--threads", "1"])
    logs["evaluate_best"] = call(["evaluate", str(run_dir / "best.pt"), "--mechanism", "bank", "one_by_one",
                                  "--threads", "1"])
    return run_dir, logs


def test_end_to_end_exit_codes_and_logs(digits_run):
    run_dir, logs = digits_run
    for name, (code, out, err) in logs.items():
        assert code == 0, (name, out, err)
    assert "teacher simple-cnn: test accuracy" in logs["teacher"][1]
    # distill reused the teacher trained by train-teacher (same teacher settings)
    assert "reusing" in logs["distill"][1] and "training simple-cnn" not in logs["distill"][1]
    assert "| teacher: simple-cnn |" in logs["distill"][1]


def test_run_directory_files(digits_run):
    run_dir, _ = digits_run
    for name in ("checkpoint.pt", "best.pt", "metrics.csv", "summary.json", "table.md", "training_curves.png",
                 "settings.json", "evaluate.json", "teacher/teacher.pt", "teacher/teacher_metrics.csv",
                 "teacher/teacher_summary.json", "teacher/teacher_curves.png"):
        assert (run_dir / name).is_file() and (run_dir / name).stat().st_size > 0, name
    # metrics.csv: one row per distillation epoch, with finite losses and accuracies
    with open(run_dir / "metrics.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    for r in rows:
        assert math.isfinite(float(r["loss"])) and 0 <= float(r["train_acc"]) <= 1 and 0 <= float(r["val_acc"]) <= 1
    with open(run_dir / "teacher" / "teacher_metrics.csv", newline="") as f:
        assert len(list(csv.DictReader(f))) == 2
    # summary.json: accuracies in [0, 1] for both mechanisms, last and best-validation; costs measured
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["dataset"] == "digits" and summary["n_test"] == 359
    assert 0 <= summary["teacher"]["test_acc"] <= 1 and summary["teacher"]["source"] == "cached"
    for which in ("last", "best_val"):
        accs = summary["student"]["test_acc"][which]
        assert set(accs) == {"bank", "batch"} and all(0 <= a <= 1 for a in accs.values())
    st = summary["student"]
    assert st["params_total"] > st["params_student"] > 0 and summary["teacher"]["params"] > 0
    assert st["flops"]["bank"]["per_sample"] > 0 and st["flops"]["batch"]["per_sample"] > 0
    assert summary["teacher"]["flops_per_sample"] > 0 and summary["teacher"]["latency_ms_batch1"] > 0
    assert st["latency_ms"]["bank"]["batch1"] > 0 and st["latency_ms"]["batch"]["batched"] > 0
    assert summary["hardware"]["cpu"] and summary["wall_time_s"] > 0
    # the PNG is a PNG
    assert (run_dir / "training_curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the table names the models and the mechanisms, with the summary's numbers
    table = (run_dir / "table.md").read_text()
    assert "| teacher: simple-cnn |" in table and "bank (ours" in table and "batch (paper Mechanism 2)" in table
    assert f"{100 * st['test_acc']['last']['bank']:.2f}%" in table


def test_config_file_and_flags_merged(digits_run):
    run_dir, _ = digits_run
    settings = json.loads((run_dir / "settings.json").read_text())
    assert settings["epochs"] == 3            # flag beats the file's 5
    assert settings["lr"] == 0.02             # from the file's top level
    assert settings["alpha"] == 0.5 and settings["tau"] == 2.0   # from its [distill] section
    assert settings["bank_size"] == 50        # [evaluate] is another command's section: ignored
    assert settings["head_hidden"] == [32]


def test_checkpoints_load_weights_only(digits_run):
    run_dir, _ = digits_run
    for name in ("checkpoint.pt", "best.pt", "teacher/teacher.pt"):
        obj = torch.load(run_dir / name, weights_only=True)
        assert isinstance(obj, dict)


def test_evaluate_reproduces_summary(digits_run):
    run_dir, logs = digits_run
    summary = json.loads((run_dir / "summary.json").read_text())
    result = json.loads((run_dir / "evaluate.json").read_text())
    assert result["checkpoint"].endswith("best.pt")  # the last evaluate call wrote it
    assert set(result["mechanisms"]) == {"bank", "one_by_one"}
    assert result["mechanisms"]["bank"] == pytest.approx(summary["student"]["test_acc"]["best_val"]["bank"])
    out = logs["evaluate"][1]
    last = summary["student"]["test_acc"]["last"]
    for mech in ("bank", "batch"):
        assert f"| {mech} | {100 * last[mech]:.2f}% | {100 * last[mech]:.2f}% |" in out


def test_evaluate_errors(tmp_path, capsys, digits_run):
    run_dir, _ = digits_run
    code, _, err = run(["evaluate", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "does not exist" in err and len(err.strip().splitlines()) == 1
    code, _, err = run(["evaluate", str(run_dir), "--mechanism", "direct"], capsys)
    assert code == 2 and "--mechanisms=direct" in err and "embedding" in err
    code, _, err = run(["evaluate", str(run_dir), "--mechanism", "fastest"], capsys)
    assert code == 2 and "invalid choice: 'fastest'" in err


@pytest.mark.parametrize("command", ["train-teacher", "distill", "evaluate", "benchmark"])
def test_help_shows_defaults(command, capsys):
    code, out, _ = run([command, "--help"], capsys)
    assert code == 0 and f"usage: cnn2gnn {command}" in out
    expected = {
        "train-teacher": ["--teacher-epochs N teacher pre-training epochs (default: 30)", "(default: simple-cnn)",
                          "(default: 0.1)"],
        "distill": ["(default: 512 256)", "distillation epochs (default: 200)", "(default: bank batch)",
                    "(default: 50)", "(default: adam)"],
        "evaluate": ["(default: last)", "(default: the run's setting)"],
        "benchmark": ["--list", "graph-build"],
    }[command]
    for text in expected:
        assert text in " ".join(out.split()), text


def test_python_dash_m(monkeypatch, capsys):
    # ``python -m tg_cnn2gnn`` runs tg_cnn2gnn/__main__.py as __main__ (in-process here: no second import of torch)
    monkeypatch.setattr(sys, "argv", ["python -m tg_cnn2gnn", "--help"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("tg_cnn2gnn", run_name="__main__", alter_sys=True)
    out, err = capsys.readouterr()
    assert exc.value.code == 0 and "train-teacher" in out and "benchmark" in out and err == ""
    monkeypatch.setattr(sys, "argv", ["python -m tg_cnn2gnn", "distill", "--dataset", "mnist"])
    with pytest.raises(SystemExit) as exc:
        runpy.run_module("tg_cnn2gnn", run_name="__main__", alter_sys=True)
    assert exc.value.code == 2 and "valid datasets" in capsys.readouterr().err


def test_console_script_declared():
    setup_cfg = (REPO / "setup.cfg").read_text()
    assert "cnn2gnn = tg_cnn2gnn.cli:main" in setup_cfg


@pytest.mark.parametrize("command", ["train-teacher", "distill"])
def test_unknown_names_list_valid_ones(command, capsys):
    code, out, err = run([command, "--dataset", "mnist"], capsys)
    assert code == 2 and out == ""
    assert err.strip() == f"cnn2gnn {command}: error: unknown dataset 'mnist'; valid datasets: {', '.join(DATASETS)}"
    code, _, err = run([command, "--dataset", "digits", "--teacher", "resnet9"], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1
    assert f"unknown teacher 'resnet9'; valid teachers: {', '.join(TEACHERS)}" in err


@pytest.mark.parametrize("flags, message", [
    (["--epochs", "0"], "--epochs=0: must be a positive integer"),
    (["--val-fraction", "1.5"], "--val-fraction=1.5: must be in [0, 1)"),
    (["--s", "99"], "--s=99: must be smaller than the batch size minus 1"),
    (["--lr", "-1"], "--lr=-1.0: must be > 0"),
    (["--head-hidden", "0"], "--head-hidden=0: must be one or more positive integers"),
    (["--dropout", "1"], "--dropout=1.0: must be in [0, 1)"),
    (["--device", "tpu9"], "--device=tpu9: not a torch device"),
    (["--teacher-checkpoint", "/no/such/teacher.pt"], "--teacher-checkpoint=/no/such/teacher.pt: no such file"),
    (["--mechanisms", "bank", "bank"], "--mechanisms=bank bank: mechanisms are listed more than once"),
    (["--teacher", "resnet18", "--teacher-width", "8"], "--teacher-width=8: only applies to the simple-cnn"),
    (["--epochs", "abc"], "argument --epochs: invalid int value: 'abc'"),
    (["--optimizer", "lbfgs"], "argument --optimizer: invalid choice: 'lbfgs'"),
    (["--subset", "30", "--batch-size", "100"], "fewer than --batch-size=100"),
])
def test_bad_values_one_line_errors(flags, message, capsys):
    code, out, err = run(["distill", "--dataset", "digits", *flags, "--threads", "1"], capsys)
    assert code == 2 and out == ""
    assert len(err.strip().splitlines()) == 1 and err.startswith("cnn2gnn distill: error: "), err
    assert message in err


def test_yaml_config_and_flag_override(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("dataset: digits\nepochs: 7\nhead-hidden: [64, 32]\ncache_teacher_logits: false\n"
                      "mechanisms: bank\ndistill:\n  s: 4\ntrain-teacher:\n  teacher_epochs: 9\n", encoding="utf-8")
    _, subs = make_parser()
    s = build_settings(subs["distill"], ["--config", str(config), "--s", "6"], "distill")
    assert (s.dataset, s.epochs, s.head_hidden, s.cache_teacher_logits, s.mechanisms, s.s, s.teacher_epochs) == \
        ("digits", 7, (64, 32), False, ("bank",), 6, 30)
    s = build_settings(subs["distill"], ["--config", str(config)], "distill")
    assert s.s == 4
    # train-teacher takes its own section; distill-only keys still reach the settings
    s = build_settings(make_parser()[1]["train-teacher"], ["--config", str(config)], "train-teacher")
    assert s.teacher_epochs == 9 and s.epochs == 7
    toml = tmp_path / "run.toml"
    toml.write_text('epochs = 4\nhead_hidden = [16]\n[distill]\nepochs = 2\n', encoding="utf-8")
    s = build_settings(subs["distill"], ["--config", str(toml)], "distill")
    assert (s.epochs, s.head_hidden) == (2, (16,))


@pytest.mark.parametrize("text, suffix, message", [
    ("epochs: many\n", ".yaml", "epochs (in "),
    ("epochs: many\n", ".yaml", "must be an integer"),
    ("colour = 3\n", ".toml", "unknown setting 'colour'"),
    ("epochs = [\n", ".toml", "cannot parse it"),
    ("- 1\n- 2\n", ".yml", "must hold a mapping"),
    ("epochs: 3\n", ".ini", "unknown file type '.ini'"),
])
def test_bad_config_files(tmp_path, capsys, text, suffix, message):
    config = tmp_path / f"c{suffix}"
    config.write_text(text, encoding="utf-8")
    code, _, err = run(["distill", "--config", str(config)], capsys)
    assert code == 2 and len(err.strip().splitlines()) == 1 and message in err, err
    code, _, err = run(["distill", "--config", str(tmp_path / "missing.yaml")], capsys)
    assert code == 2 and "no such file" in err


def test_load_config_sections(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("epochs: 1\nevaluate:\n  bank_size: 9\n", encoding="utf-8")
    assert load_config(config, "distill") == {"epochs": 1}
    assert load_config(config, "evaluate") == {"epochs": 1, "bank_size": 9}


def test_benchmark_runs_scripts_by_name(tmp_path, capfd, monkeypatch):
    capsys = capfd  # the script runs in a child process: capture at the file-descriptor level
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "echo_args.py").write_text('"""Echo the arguments."""\nimport sys\nprint("ARGS", sys.argv[1:])\n',
                                         encoding="utf-8")
    (folder / "_helper.py").write_text("", encoding="utf-8")
    monkeypatch.setattr(cli, "benchmarks_dir", lambda: folder)
    code, out, _ = run(["benchmark", "--list"], capsys)
    assert code == 0 and "echo-args" in out and "Echo the arguments." in out and "helper" not in out
    assert main(["benchmark", "echo-args", "--sizes", "10", "20"]) == 0
    assert "ARGS ['--sizes', '10', '20']" in capfd.readouterr().out
    # a missing script: one line naming the available ones
    code, _, err = run(["benchmark", "head-epoch"], capsys)
    assert code == 2 and "unknown benchmark 'head-epoch'; available: echo-args" in err
    # no benchmarks at all: --list still works
    monkeypatch.setattr(cli, "benchmarks_dir", lambda: None)
    code, out, err = run(["benchmark", "--list"], capsys)
    assert code == 0 and "none found" in out + err
    code, _, err = run(["benchmark", "graph-build"], capsys)
    assert code == 2 and "unknown benchmark 'graph-build'" in err


def test_benchmark_discovers_repository_scripts():
    names = cli.list_benchmarks()
    on_disk = {p.stem.replace("_", "-") for p in (REPO / "benchmarks").glob("*.py") if not p.name.startswith("_")}
    assert set(names) == on_disk and "graph-build" in names


def test_unknown_command(capsys):
    code, _, err = run(["fit"], capsys)
    assert code == 2 and "invalid choice: 'fit'" in err
