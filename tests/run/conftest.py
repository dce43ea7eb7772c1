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
