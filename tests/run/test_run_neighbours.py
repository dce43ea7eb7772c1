"""`benchmarks/run_neighbours.py` (paper Figure 3 for a run directory) on tiny digits runs:
the learned distances and neighbours it draws match an independent computation, and the
picture and the consistency table are written."""
import contextlib
import io
import re
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image

from tg_cnn2gnn.run.serve import load_run_model

from run_helpers import TINY, cli

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import run_neighbours  # noqa: E402


@pytest.fixture(scope="module", params=["embedding", "anchor"])
def graph_run(request, teacher_run, tmp_path_factory):
    run_dir = tmp_path_factory.mktemp(f"nb_{request.param}") / "run"
    code, _, err = cli(["distill", *TINY, "--head-form", request.param,
                        "--teacher-checkpoint", teacher_run / "teacher" / "teacher.pt", "--out", run_dir])
    assert code == 0, err
    return run_dir


def test_learned_distances_match_the_head(graph_run):
    run = load_run_model(graph_run)
    model, xtr, xte = run.model.eval(), run.data.x_train.flatten(1), run.data.x_test.flatten(1)[:7]
    with torch.no_grad():
        got = run_neighbours.learned_distances(model, xte, xtr, chunk=3)       # several chunks
        if model.test_distances:                                               # ||e_q - e_j||^2
            ref = torch.cdist(model.head.encode(xte).double(), model.head.encode(xtr).double()) ** 2
        else:                                                                  # head(x)[:, j]
            h = model.head.encode(xte).double()
            ref = h @ model.head.anchor_weight.double().t() + model.head.anchor_bias.double().view(1, -1)
    assert got.shape == (7, xtr.size(0))
    torch.testing.assert_close(got.double(), ref, rtol=1e-4, atol=1e-4)


def test_picture_and_table(graph_run, tmp_path):
    out = tmp_path / "nb.png"
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert run_neighbours.main([str(graph_run), "--show", "2", "--n-measure", "50", "--bank-size", "20",
                                    "--out", str(out)]) == 0
    text = buf.getvalue()
    rows = [l for l in text.splitlines() if re.match(r"\| \d+ \|", l)]
    run = load_run_model(graph_run)
    assert [int(r.split("|")[1]) for r in rows] == [20, run.data.y_train.numel()]
    with Image.open(out) as im:                 # 10 digit classes x (query + 2 neighbours)
        assert im.size[0] > 100 and im.size[1] > 1.5 * im.size[0]
    share = float(re.search(r"; ([\d.]+)% of their", text).group(1))
    assert 0.0 <= share <= 100.0
