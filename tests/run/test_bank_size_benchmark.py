"""`benchmarks/bank_size.py` on a tiny digits run: each row is the mean over the bank draws of
the frozen-bank predictor's accuracy, the validation pick is the bank with the best mean, and
a bank larger than the training split is reported, not drawn."""
import re

import pytest
import torch

from tg_cnn2gnn.run.serve import load_run_model

from run_helpers import benchmark, run_benchmark

bank_size = benchmark("bank_size")


def test_bank_size_rows_are_means_over_draws(embedding_run):
    run_dir = embedding_run
    out = run_benchmark(bank_size, [run_dir, "--threads", "1", "--banks", "20", "50", "100000", "--draws", "2"])
    run = load_run_model(run_dir)
    d = run.data
    means = {}
    for bank in (20, 50):
        row = next(l for l in out.splitlines() if l.startswith(f"| {run_dir} | {bank} |"))
        val_cell, test_cell = [c.strip() for c in row.strip("|").split("|")][2:4]
        accs = {"val": [], "test": []}
        for seed in (0, 1):
            pred = run.model.bank_predictor(d.train_features, bank_size=bank, seed=seed).eval()
            with torch.no_grad():
                accs["val"].append(100 * (pred(d.x_val).argmax(1) == d.y_val).float().mean().item())
                accs["test"].append(100 * (pred(d.x_test).argmax(1) == d.y_test).float().mean().item())
        for cell, key in ((val_cell, "val"), (test_cell, "test")):
            mean, lo, hi = map(float, re.fullmatch(r"([\d.]+) \(([\d.]+)-([\d.]+)\)", cell).groups())
            assert mean == pytest.approx(sum(accs[key]) / 2, abs=0.006)
            assert lo == pytest.approx(min(accs[key]), abs=0.006) and hi == pytest.approx(max(accs[key]), abs=0.006)
        means[bank] = sum(accs["val"]) / 2
    assert f"| {run_dir} | 100000 | – |" in out                 # larger than the training split
    pick = int(re.search(r"Validation picks bank (\d+)", out).group(1))
    assert means[pick] == max(means.values())


def test_bank_size_rejects_a_bad_bank(tmp_path):
    with pytest.raises(SystemExit, match="positive sizes"):
        bank_size.main([str(tmp_path), "--banks", "0"])
