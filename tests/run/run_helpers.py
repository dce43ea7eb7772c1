"""Helpers of the run-layer tests: the command line in-process, tiny digits settings."""
import contextlib
import importlib
import io
import sys
from pathlib import Path

from tg_cnn2gnn.cli import main

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"

#: a tiny but complete digits run (teacher, validation split, both mechanisms), seconds on a CPU
TINY = ["--dataset", "digits", "--subset", "400", "--test-subset", "100", "--teacher-width", "4",
        "--teacher-epochs", "1", "--epochs", "2", "--s", "3", "--batch-size", "40", "--head-hidden", "16",
        "--hidden", "16", "--bank-size", "20", "--eval-batch-size", "20", "--threads", "1", "--no-measure"]


def cli(argv):
    """``cnn2gnn argv`` in-process -> (exit code, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    return code, out.getvalue(), err.getvalue()


def benchmark(name):
    """The module of the script ``benchmarks/<name>.py`` (its folder on ``sys.path``, as when run)."""
    if str(BENCHMARKS) not in sys.path:
        sys.path.insert(0, str(BENCHMARKS))
    return importlib.import_module(name)


def run_benchmark(module, argv):
    """``module.main(argv)`` -> its stdout (the exit code must be 0)."""
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert module.main([str(a) for a in argv]) == 0
    return buf.getvalue()
