"""`benchmarks/label_vote.py` on a tiny digits run: its combined column equals the predictor
built with the label vote, and the validation-selected beta is one of its columns."""
import re

import torch

from tg_cnn2gnn.run.serve import load_run_model

from run_helpers import benchmark, run_benchmark

label_vote = benchmark("label_vote")


def test_label_vote_table_matches_the_predictor(embedding_run):
    run_dir = embedding_run
    out = run_benchmark(label_vote, [run_dir, "--threads", "1"])
    row = next(l for l in out.splitlines() if l.startswith(f"| {run_dir} |"))
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
