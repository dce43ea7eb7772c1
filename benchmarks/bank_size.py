"""Which inference bank suits a trained graph student? Validation and test accuracy per bank size.

For each run directory of `cnn2gnn distill` (a graph student), the final student is frozen
with banks of each size (``--banks``; training samples drawn with ``--draws`` seeds) and
tested on the run's validation and test splits. One row per run and bank: the mean over the
draws and the spread (min-max); then the mean over runs, and the bank the validation split
picks. A bank is an inference setting (``bank_size``), so no retraining is needed; it also
decides the validation accuracy that picks the best-val epoch during training.

    python benchmarks/bank_size.py runs/fashion-mnist-main/recommended [more runs] --banks 100 200 1000
"""
from __future__ import annotations

import argparse
import statistics
import sys

import torch

from tg_cnn2gnn.run.measure import predictor_accuracy

from _report import graph_runs, run_dirs_args  # noqa: E402  (benchmarks/ is the script's folder)

BANKS = (100, 200, 300, 500, 1000)


def accuracy(pred, x: torch.Tensor, y: torch.Tensor) -> float:
    """Percent of ``x [N, ...]`` whose predicted class is ``y [N]``, in chunks of 2,000."""
    return 100.0 * predictor_accuracy(pred, x, y, chunk=2000)


def _options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--banks", type=int, nargs="+", default=list(BANKS), help="bank sizes (training samples)")
    p.add_argument("--draws", type=int, default=3, help="bank draws per size (eval seeds 0..draws-1)")


def main(argv: list[str] | None = None) -> int:
    args = run_dirs_args(__doc__, "bank_size.py", argv, extra=_options)
    banks, draws = tuple(args.banks), args.draws
    if any(b < 1 for b in banks) or draws < 1:
        raise SystemExit(f"--banks needs positive sizes (got {list(banks)}) and --draws a positive count "
                         f"(got {draws})")
    print(f"Banks drawn with eval seeds 0-{draws - 1}; accuracy in %, mean over the draws (min-max).\n")
    print("| run | bank | validation | test |")
    print("|---|---|---|---|")
    per_bank: dict[int, list[tuple[float, float]]] = {b: [] for b in banks}
    for path, run in graph_runs(args, "bank_predictor", 4):
        d = run.data
        for bank in banks:
            if bank > d.n_train:
                print(f"| {path} | {bank} | – | – (bank larger than the {d.n_train} training samples) |")
                continue
            val, test = [], []
            for seed in range(draws):
                pred = run.model.bank_predictor(d.train_features, bank_size=bank, seed=seed).eval()
                val.append(accuracy(pred, d.x_val, d.y_val) if d.n_val else float("nan"))
                test.append(accuracy(pred, d.x_test, d.y_test))
            per_bank[bank].append((statistics.mean(val), statistics.mean(test)))
            print(f"| {path} | {bank} | {statistics.mean(val):.2f} ({min(val):.2f}-{max(val):.2f}) | "
                  f"{statistics.mean(test):.2f} ({min(test):.2f}-{max(test):.2f}) |", flush=True)
    means = {b: (statistics.mean(v for v, _ in r), statistics.mean(t for _, t in r)) for b, r in per_bank.items() if r}
    if means:
        print("\n| bank | validation, mean over runs | test, mean over runs |\n|---|---|---|")
        for b, (v, t) in means.items():
            print(f"| {b} | {v:.2f} | {t:.2f} |")
        pick = max(means, key=lambda b: means[b][0])
        print(f"\nValidation picks bank {pick} (test {means[pick][1]:.2f} %).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
