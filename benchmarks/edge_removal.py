"""Edge-removal ablation of trained runs: does the learned graph earn its place?

For each run directory of `cnn2gnn distill` (or of the main job, one folder per row), the
student is tested on the run's test split twice with the same weights: with its graph
(`bank`: each test sample joined to its s nearest bank samples) and with every edge removed
(`isolated`: the GCN sees only the sample itself). The gap is what the graph contributes.

    python benchmarks/edge_removal.py runs/fashion-mnist-main/recommended runs/fashion-mnist-main/paper-preset
"""
from __future__ import annotations


import torch

from tg_cnn2gnn.run.measure import logits_accuracy, student_accuracy

from _report import graph_runs, run_dirs_args  # noqa: E402  (benchmarks/ is the script's folder)


def main(argv: list[str] | None = None) -> int:
    args = run_dirs_args(__doc__, "edge_removal.py", argv)
    print("| run | bank size | test acc, bank (with graph) | test acc, edges removed | graph's share |")
    print("|---|---|---|---|---|")
    for path, run in graph_runs(args, "predict_isolated", 5):
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
