"""benchmarks/graph_levers.py (issue 7): the quick path on digits and the content of its outputs."""
from __future__ import annotations

import csv
import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "graph_levers.py"


def _load():
    spec = importlib.util.spec_from_file_location("graph_levers", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["graph_levers"] = mod
    spec.loader.exec_module(mod)
    return mod


def test_stratified_subset_and_bank_names():
    gl = _load()
    y = torch.tensor([0] * 60 + [1] * 30 + [2] * 10)
    idx = gl.stratified_subset(y, 50, seed=0)
    assert idx.unique().numel() == idx.numel() == 50
    assert torch.bincount(y[idx]).tolist() == [30, 15, 5]
    assert gl.stratified_subset(y, 0, 0).numel() == 100
    assert gl.bank_size_of("paper+bank1000", 100) == 1000 and gl.bank_size_of("paper", 100) == 100


def test_quick_run_writes_tables_and_plot(tmp_path):
    gl = _load()
    configs = ["paper", "graphconv+relation", "embedding+bank1000", "kd-mlp"]
    torch.set_num_threads(1)
    assert gl.main(["--quick", "--epochs", "2", "--teacher-epochs", "1", "--configs", *configs,
                    "--out", str(tmp_path)]) == 0
    rows = list(csv.DictReader(open(tmp_path / "graph_levers.csv")))
    assert [r["config"] for r in rows] == configs
    for r in rows:
        for key in ("bank_last", "bank_best_val", "teacher_acc"):
            assert 0.0 <= float(r[key]) <= 1.0
        assert (r["isolated_last"] == "") == (r["config"] == "kd-mlp")
    assert float(rows[0]["teacher_acc"]) > 0.5                      # a teacher was trained
    md = (tmp_path / "graph_levers.md").read_text()
    table = [line for line in md.splitlines() if line.startswith("| ") and "configuration" not in line]
    assert [line.split("|")[1].strip() for line in table] == configs
    for line in table:
        cells = [c.strip() for c in line.split("|")[2:-1]]
        assert cells[-1].endswith("x") and float(cells[-1][:-1]) > 1.0      # the student is cheaper
        mean = float(cells[0].split(" ± ")[0])
        assert 0.0 <= mean <= 100.0
    assert "Command: `python benchmarks/graph_levers.py --quick" in md
    png = (tmp_path / "graph_levers.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000
    import matplotlib.image as mpimg
    img = mpimg.imread(tmp_path / "graph_levers.png")
    assert img.shape[0] > 200 and img.shape[1] > 500 and img[..., :3].std() > 0.05   # not a blank canvas


def test_unknown_config_is_refused(capsys):
    gl = _load()
    with pytest.raises(SystemExit) as e:
        gl.main(["--quick", "--configs", "nope"])
    assert e.value.code == 2
    assert "invalid choice: 'nope'" in capsys.readouterr().err
