"""Issue 15 item 7: every file read from a run directory gives one line naming the file and
what was expected; a result that cannot be written is still shown."""
import json
import shutil

import pytest

from tg_cnn2gnn.run.rundir import RunDir, RunDirError

from run_helpers import TINY, cli


@pytest.fixture(scope="module")
def distilled(teacher_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("damage") / "run"
    shutil.copytree(teacher_run, run_dir)
    code, _, err = cli(["distill", *TINY, "--out", run_dir])
    assert code == 0, err
    return run_dir


@pytest.fixture
def run_copy(distilled, tmp_path):
    shutil.copytree(distilled, tmp_path / "run")
    return tmp_path / "run"


DAMAGE = [("null", "expected a JSON object of settings"),
          ("[1, 2]", "expected a JSON object of settings (written by cnn2gnn), got a list"),
          ('{"epochs": ', "not valid JSON"),
          ('"fashion-mnist"', "got str"),
          ('{"epochs": "many"}', "epochs (in "),
          ('{"colour": 3}', "unknown setting 'colour'"),
          (b"\xff\xfe\x00", "cannot read it")]


def _damage(path, content):
    (path.write_bytes if isinstance(content, bytes) else path.write_text)(content)


def _one_line(code, err, path, message):
    assert code == 2 and len(err.strip().splitlines()) == 1, err
    assert str(path) in err and message in err, err


@pytest.mark.parametrize("content, message", DAMAGE)
def test_damaged_settings_json(run_copy, content, message):
    path = run_copy / "settings.json"
    _damage(path, content)
    code, _, err = cli(["evaluate", run_copy, "--threads", "1"])
    _one_line(code, err, path, message)
    code, _, err = cli(["distill", *TINY, "--resume", "--out", run_copy])      # the resume check reads it too
    _one_line(code, err, path, message)


@pytest.mark.parametrize("name, content, message", [
    ("teacher/teacher_settings.json", "null", "expected a JSON object of the teacher's settings, got null"),
    ("teacher/teacher_settings.json", "{", "not valid JSON"),
    ("teacher/teacher_summary.json", "[1]", "expected a JSON object (the teacher's summary), got a list"),
    ("teacher/teacher_summary.json", '{"train_time_s": "slow"}', "'train_time_s' must be a number of seconds"),
])
def test_damaged_teacher_files(run_copy, name, content, message):
    _damage(run_copy / name, content)
    code, _, err = cli(["distill", *TINY, "--out", run_copy])
    _one_line(code, err, run_copy / name, message)
    code, out, err = cli(["distill", *TINY, "--retrain-teacher", "--out", run_copy])   # the way out
    assert code == 0 and "training simple-cnn" in out, err


@pytest.mark.parametrize("content, message", [("[1]", "got a list"), ("null", "got null"),
                                              ('{"student": [1]}', "'student' must be an object"),
                                              ('{"student": {"test_acc": 3}}', "'test_acc' must be an object")])
def test_damaged_summary_still_shows_the_evaluation(run_copy, content, message):
    path = run_copy / "summary.json"
    _damage(path, content)
    code, out, err = cli(["evaluate", run_copy, "--threads", "1"])
    assert code == 0 and "| bank |" in out
    assert len(err.strip().splitlines()) == 1 and str(path) in err and message in err and "warning" in err


def test_unwritable_result_is_still_printed(run_copy, monkeypatch):
    real = RunDir._write_json

    def refuse(path, obj):
        if path.name == "evaluate.json":
            raise PermissionError(13, "Permission denied")
        real(path, obj)
    monkeypatch.setattr(RunDir, "_write_json", staticmethod(refuse))
    code, out, err = cli(["evaluate", run_copy, "--mechanism", "bank", "--threads", "1"])
    assert code == 0 and "| bank |" in out and "%" in out
    assert "could not write" in err and "evaluate.json" in err and "Permission denied" in err


def test_read_json_messages(tmp_path):
    with pytest.raises(RunDirError, match=r"no such file \(expected a thing\)$"):
        RunDir.read_json(tmp_path / "x.json", "a thing")
    (tmp_path / "x.json").write_text(json.dumps({"a": 1}))
    assert RunDir.read_json(tmp_path / "x.json", "a thing") == {"a": 1}
    with pytest.raises(RunDirError, match="expected a list of rows, got an object"):
        RunDir.read_json(tmp_path / "x.json", "a list of rows", list)
