"""The learned graph's label vote on trained runs: how much do the neighbours' labels add?

For each run directory of `cnn2gnn distill` (a graph student), the final student is frozen
with a bank of the whole training split and tested on the run's validation and test splits:
the student alone, the label vote alone (the Eq. 3 weighted labels of each sample's s
nearest training samples under the learned distance: a kNN classifier on the learned graph),
and the two combined (`log_softmax(z) + beta log(vote + 1e-3)`,
`tg_cnn2gnn.inference.label_vote`) for each beta, the best beta chosen on validation. The
student alone with the run's own bank (`bank_size`) is the reference row of its table.

    python benchmarks/label_vote.py runs/fashion-mnist-main/recommended [more runs]
"""
from __future__ import annotations

import sys

import torch

from tg_cnn2gnn.inference.label_vote import neighbour_vote, with_label_vote
from tg_cnn2gnn.run.measure import logits_accuracy, predictor_accuracy

from _report import graph_runs, run_dirs_args  # noqa: E402  (benchmarks/ is the script's folder)

BETAS = (0.5, 1.0, 2.0, 4.0)


@torch.no_grad()
def _parts(pred, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Student logits ``[N, C]`` and label votes ``[N, C]`` of ``x`` in chunks of 1,000."""
    z, v = [], []
    for c in x.flatten(1).split(1000):
        z.append(pred(c))
        nbr, w = pred.neighbours(pred.encode(c))
        v.append(neighbour_vote(nbr, w, pred.vote_labels, z[-1].size(1)))
    return torch.cat(z), torch.cat(v)


def _acc(scores: torch.Tensor, y: torch.Tensor) -> float:
    return 100.0 * logits_accuracy(scores, y)


def main(argv: list[str] | None = None) -> int:
    args = run_dirs_args(__doc__, "label_vote.py", argv)
    print("| run | student, run's bank | student, bank = training split | vote alone | "
          + " | ".join(f"combined beta {b:g}" for b in BETAS) + " | combined, beta by validation |")
    print("|---|---|---|---|" + "---|" * len(BETAS) + "---|")
    for path, run in graph_runs(args, "bank_predictor", 5 + len(BETAS)):
        d, s = run.data, run.settings
        own = run.model.bank_predictor(d.train_features, bank_size=min(s.bank_size, d.n_train), seed=s.eval_seed)
        own_acc = 100.0 * predictor_accuracy(own, d.x_test, d.y_test)
        pred = run.model.bank_predictor(d.train_features, bank_size=d.n_train, seed=s.eval_seed,
                                        train_y=d.y_train).eval()
        zt, vt = _parts(pred, d.x_test)
        combined = {b: _acc(with_label_vote(zt, vt, b), d.y_test) for b in BETAS}
        pick = "–"
        if d.n_val:
            zv, vv = _parts(pred, d.x_val)
            best = max(BETAS, key=lambda b: _acc(with_label_vote(zv, vv, b), d.y_val))
            pick = f"{combined[best]:.2f} % (beta {best:g})"
        print(f"| {path} | {own_acc:.2f} % | {_acc(zt, d.y_test):.2f} % | {_acc(vt, d.y_test):.2f} % | "
              + " | ".join(f"{combined[b]:.2f} %" for b in BETAS) + f" | {pick} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
