"""Edge-removal ablation of trained runs: does the learned graph earn its place?

For each run directory of `cnn2gnn distill` (or of the main job, one folder per row), the
student is tested on the run's test split twice with the same weights: with its graph
(`bank`: each test sample joined to its s nearest bank samples) and with every edge removed
(`isolated`: the GCN sees only the sample itself). The gap is what the graph contributes.

    python benchmarks/edge_removal.py runs/fashion-mnist-main/recommended runs/fashion-mnist-main/paper-preset
"""
from __future__ import annotations

import argparse
import sys

import torch

from tg_cnn2gnn.run.measure import hardware_line, logits_accuracy, student_accuracy
from tg_cnn2gnn.run.serve import load_run_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories (graph students)")
    p.add_argument("--which", choices=("last", "best"), default="last")
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"Command: python benchmarks/edge_removal.py {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"Hardware: {hardware_line()}\n")
    print("| run | bank size | test acc, bank (with graph) | test acc, edges removed | graph's share |")
    print("|---|---|---|---|---|")
    for path in args.runs:
        run = load_run_model(path, which=args.which)
        if not hasattr(run.model, "predict_isolated"):
            print(f"| {path} | – | – | – | not a graph student |")
            continue
        d, s = run.data, run.settings
        bank = student_accuracy(run.model, d.x_test, d.y_test, mechanism="bank", train_x=d.train_features,
                                batch_size=s.eval_batch_size, bank_size=s.bank_size, seed=s.eval_seed,
                                predictor=True)
        with torch.no_grad():
            iso = logits_accuracy(run.model.predict_isolated(d.x_test.flatten(1)), d.y_test)
        print(f"| {path} | {min(s.bank_size, d.n_train)} | {100 * bank:.2f}% | {100 * iso:.2f}% | "
              f"{100 * (bank - iso):+.2f} points |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
