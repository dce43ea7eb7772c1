"""Issue 15 items 4 and 5: --resume refuses changed settings; a run directory's teacher is reused."""
import json
import shutil

import pytest
import torch

from tg_cnn2gnn.cli import build_settings, make_parser
from tg_cnn2gnn.run.commands import check_resume, run_distill
from tg_cnn2gnn.run.config import RESUME_SAFE, Settings, SettingsError, settings_diff
from tg_cnn2gnn.run.rundir import RunDir

from run_helpers import TINY, cli


class Killed(Exception):
    pass


def _settings(argv):
    return build_settings(make_parser()[1]["distill"], [str(a) for a in argv], "distill")


def test_settings_diff_lists_name_old_new():
    old, new = Settings(s=10, epochs=4), Settings(s=5, epochs=4, dropout=0.1, head_hidden=(8,), threads=2)
    assert settings_diff(old, new) == ["s: 10 -> 5", "head_hidden: 512 256 -> 8", "dropout: 0.5 -> 0.1",
                                       "threads: None -> 2"]          # in the order of the fields
    assert settings_diff(old, new, ignore=RESUME_SAFE) == ["s: 10 -> 5", "head_hidden: 512 256 -> 8",
                                                           "dropout: 0.5 -> 0.1"]
    assert settings_diff(old.to_dict(), old) == [] and settings_diff({"command": "distill"}, Settings()) == []


def test_resume_after_a_kill_refuses_changes_and_completes_with_the_same_ones(tmp_path):
    argv = [*TINY, "--epochs", "3", "--out", tmp_path / "run"]

    def kill_after_first_epoch(line):
        if line.startswith("distill epoch 1/3"):
            raise Killed

    with pytest.raises(Killed):
        run_distill(_settings(argv), log=kill_after_first_epoch)
    assert (tmp_path / "run" / "checkpoint.pt").is_file() and not (tmp_path / "run" / "summary.json").exists()
    # the case: other s, dropout and bank: refused, every difference listed, nothing touched
    code, out, err = cli(["distill", *argv, "--resume", "--s", "2", "--dropout", "0.1", "--bank-size", "10"])
    assert code == 2 and len(err.strip().splitlines()) == 1 and "--resume refused" in err
    for diff in ("s: 3 -> 2", "dropout: 0.5 -> 0.1", "bank_size: 20 -> 10"):
        assert diff in err
    assert json.loads((tmp_path / "run" / "settings.json").read_text())["s"] == 3
    code, _, err = cli(["distill", *argv, "--resume", "--epochs", "4"])
    assert code == 2 and "epochs: 3 -> 4" in err
    # settings that change nothing of the model, loss or evaluation are allowed
    code, out, err = cli(["distill", *argv, "--resume", "--threads", "2", "--measure"])
    assert code == 0, err
    # ... and the resumed run is the uninterrupted one, bit for bit
    code, _, err = cli(["distill", *TINY, "--epochs", "3", "--out", tmp_path / "straight"])
    assert code == 0, err
    a, b = (torch.load(tmp_path / d / "checkpoint.pt", weights_only=True)["model"] for d in ("run", "straight"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_check_resume_only_when_there_is_something_to_resume(tmp_path):
    run_dir = RunDir(tmp_path)
    check_resume(Settings(resume=True), run_dir)              # empty directory: starts afresh
    run_dir.write_settings(Settings(s=7), "distill")
    (tmp_path / "checkpoint.pt").write_bytes(b"")
    check_resume(Settings(resume=False, s=3), run_dir)        # not resuming: nothing to compare
    with pytest.raises(SettingsError, match=r"s: 7 -> 3"):
        check_resume(Settings(resume=True, s=3), run_dir)


def test_distill_uses_the_run_directorys_teacher(teacher_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(teacher_run, run_dir)
    before = (run_dir / "teacher" / "teacher.pt").read_bytes()
    # the README's flow: train-teacher --teacher-epochs 1, then distill with the default 30 teacher epochs
    code, out, err = cli(["distill", *TINY, "--teacher-epochs", "30", "--out", run_dir])
    assert code == 0, err
    assert f"teacher: reusing {run_dir / 'teacher' / 'teacher.pt'}" in out and "training simple-cnn" not in out
    assert "teacher_epochs: 1 -> 30" in out            # says which settings it did not use
    assert (run_dir / "teacher" / "teacher.pt").read_bytes() == before
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["teacher"]["source"] == "cached" and summary["teacher"]["trained_with"]["teacher_epochs"] == 1
    assert "simple-cnn (final weights), 1 epoch(s)" in (run_dir / "table.md").read_text()
    # --retrain-teacher trains a new one
    code, out, err = cli(["distill", *TINY, "--retrain-teacher", "--out", run_dir])
    assert code == 0 and "--retrain-teacher: replacing" in out and "training simple-cnn" in out, err
    # another teacher network is not the run directory's teacher
    code, out, err = cli(["distill", *TINY, "--teacher-width", "6", "--out", run_dir])
    assert code == 0 and "teacher_width: 4 -> 6" in out and "training a new one" in out, err
    assert json.loads((run_dir / "teacher" / "teacher_settings.json").read_text())["teacher_width"] == 6


def test_train_teacher_keeps_an_identical_teacher_and_replaces_another(teacher_run, tmp_path):
    run_dir = tmp_path / "run"
    shutil.copytree(teacher_run, run_dir)
    flags = [*TINY[:TINY.index("--epochs")], "--threads", "1", "--no-measure", "--out", run_dir]
    code, out, err = cli(["train-teacher", *flags])
    assert code == 0 and "teacher: reusing" in out and "training simple-cnn" not in out, err
    code, out, err = cli(["train-teacher", *flags, "--teacher-lr", "0.01"])
    assert code == 0 and "training simple-cnn" in out, err
    assert json.loads((run_dir / "teacher" / "teacher_settings.json").read_text())["teacher_lr"] == 0.01
