"""`benchmarks/label_vote.py` on a tiny digits run: its combined column equals the predictor
built with the label vote, and the validation-selected beta is one of its columns."""
import contextlib
import io
import re
import sys
from pathlib import Path

import torch

from tg_cnn2gnn.run.serve import load_run_model

from run_helpers import TINY, cli

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import label_vote  # noqa: E402


def test_label_vote_table_matches_the_predictor(teacher_run, tmp_path):
    run_dir = tmp_path / "run"
    code, _, err = cli(["distill", *TINY, "--head-form", "embedding", "--teacher-checkpoint",
                        teacher_run / "teacher" / "teacher.pt", "--out", run_dir])
    assert code == 0, err
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert label_vote.main([str(run_dir), "--threads", "1"]) == 0
    row = next(l for l in buf.getvalue().splitlines() if l.startswith(f"| {run_dir} |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    run = load_run_model(run_dir)
    d = run.data
    pred = run.model.bank_predictor(d.train_features, bank_size=d.n_train, seed=run.settings.eval_seed,
                                    train_y=d.y_train, label_vote=2.0)
    with torch.no_grad():
        acc = 100 * (pred(d.x_test).argmax(1) == d.y_test).float().mean().item()
        pred.label_vote = 0.0
        alone = 100 * (pred(d.x_test).argmax(1) == d.y_test).float().mean().item()
    assert cells[6] == f"{acc:.2f} %" and cells[2] == f"{alone:.2f} %"     # beta 2 column; student alone
    picked = re.fullmatch(r"([\d.]+) % \(beta ([\d.]+)\)", cells[8])
    beta_col = {"0.5": 4, "1": 5, "2": 6, "4": 7}[picked.group(2)]
    assert cells[beta_col] == f"{picked.group(1)} %"
