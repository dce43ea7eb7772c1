"""Fixtures of the run-layer tests."""
import pytest

from run_helpers import TINY, cli


@pytest.fixture(scope="module")
def teacher_run(tmp_path_factory):
    """A run directory holding a digits teacher trained by ``train-teacher`` (1 epoch)."""
    run_dir = tmp_path_factory.mktemp("teacher") / "run"
    flags = [a for a in TINY if a not in ("--no-measure",)]
    code, out, err = cli(["train-teacher", *flags[:flags.index("--epochs")], "--threads", "1", "--no-measure",
                          "--out", run_dir])
    assert code == 0, err
    return run_dir


@pytest.fixture(scope="module")
def embedding_run(teacher_run, tmp_path_factory):
    """A tiny distilled run with the embedding head (the teacher of ``teacher_run``)."""
    run_dir = tmp_path_factory.mktemp("embedding") / "run"
    code, _, err = cli(["distill", *TINY, "--head-form", "embedding", "--teacher-checkpoint",
                        teacher_run / "teacher" / "teacher.pt", "--out", run_dir])
    assert code == 0, err
    return run_dir
