"""How often a test prediction changes with the composition of its test batch (Mechanism 2).

Mechanism 2 (``batch``, the paper's inference) builds a graph over each test batch, so a
sample's prediction depends on which other test samples share its batch. For one
distilled CNN2GNN student this script predicts the test set

* in its original order with batches of ``--batch-size`` (the reference),
* after ``--shuffles`` random permutations of the test set, for every batch size in
  ``--batch-values``,

and reports the share of predictions that differ from the reference, the mean pairwise
disagreement between shuffles of the same batch size, and the accuracy. The ``bank``
mechanism (each test sample connected to a fixed training bank only) is run under the
same permutations and chunk sizes as a control: it should never change.

    python benchmarks/mechanism2_sensitivity.py --quick
    python benchmarks/mechanism2_sensitivity.py --full --dataset cifar100 --device cuda
"""
from __future__ import annotations

import itertools
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

OVERRIDES = {"quick": {"seeds": [0], "batch_values": [10, 25, 50, 100, 200, 500], "shuffles": 3},
             "full": {"seeds": [0], "batch_values": [10, 25, 50, 100, 200, 500, 1000], "shuffles": 5}}


def main(argv: list[str] | None = None) -> int:
    p = B.parser(__doc__.split("\n\n")[0])
    p.add_argument("--batch-values", type=int, nargs="+", default=None, help="test batch sizes")
    p.add_argument("--shuffles", type=int, default=None, help="random permutations of the test set")
    args = B.finish_args(p.parse_args(argv), "mechanism2_sensitivity", OVERRIDES, argv)
    rep = B.Report(args, f"Mechanism 2 sensitivity to test-batch composition on {args.dataset}")
    data = B.load_data(args)
    seed = args.seeds[0]
    teacher, _ = B.get_teacher(args, data, seed)
    model = B.build_model("cnn2gnn", args, data, seed=seed)
    d, s = B.train_model(args, data, model, teacher, seed=seed, label="CNN2GNN", test_mechanisms=("bank", "batch"))
    xt, yt = data.xt, data.yt
    n = yt.numel()

    def run(mech: str, size: int, perm: torch.Tensor | None) -> torch.Tensor:
        f = B.predictor(model, data, mech, args.bank_size, batch_size=size, chunk_size=size)
        x = xt if perm is None else xt[perm]
        pred = f(x).argmax(-1)
        if perm is None:
            return pred
        out = torch.empty_like(pred)
        out[perm] = pred
        return out

    rows = []
    for mech in ("batch", "bank"):
        ref = run(mech, args.batch_size, None)
        B.log(args, f"{mech}: reference accuracy {B.accuracy_of(torch.nn.functional.one_hot(ref, data.num_classes), yt):.4f}")
        for size in args.batch_values:
            preds = []
            for k in range(args.shuffles):
                perm = torch.randperm(n, generator=torch.Generator().manual_seed(1000 + k))
                pred = run(mech, size, perm)
                preds.append(pred)
                rows.append({"mechanism": mech, "batch_size": size, "shuffle": k,
                             "changed_vs_reference": float((pred != ref).double().mean()),
                             "accuracy": float((pred == yt).double().mean())})
            pair = [float((a != b).double().mean()) for a, b in itertools.combinations(preds, 2)]
            for r in rows[-args.shuffles:]:
                r["pairwise_disagreement"] = sum(pair) / len(pair) if pair else 0.0
            B.log(args, f"{mech} batch {size}: changed {100 * rows[-1]['changed_vs_reference']:.2f}% "
                        f"acc {rows[-1]['accuracy']:.4f}")
    rep.csv("mechanism2_sensitivity.csv", rows)
    core = B.core_targets(args, data, teacher, model, s["mean_train_time_per_epoch"], seed=seed)

    table = []
    for mech in ("batch", "bank"):
        for size in args.batch_values:
            rs = [r for r in rows if r["mechanism"] == mech and r["batch_size"] == size]
            table.append([{"batch": "Mechanism 2", "bank": "bank (control)"}[mech], size,
                          B.mean_std(r["changed_vs_reference"] for r in rs),
                          B.mean_std([rs[0]["pairwise_disagreement"]]),
                          B.mean_std(r["accuracy"] for r in rs)])
    rep.add(B.settings_line(args, data) + f" One student (seed {seed}); test set of {n}; {args.shuffles} random "
            f"permutations (seeds 1000..{999 + args.shuffles}) per batch size; reference = original order, "
            f"batch {args.batch_size}. For `bank` the batch size is the chunk size of the call.")
    rep.add(B.md_table(["mechanism", "test batch size", "% predictions changed vs reference (mean ± std)",
                        "% pairwise disagreement between shuffles", "test acc %"], table))

    plt = B.plt_setup()
    fig, axes = plt.subplots(1, 2, figsize=(8, 3))
    for mech, color, label in (("batch", "#1f77b4", "Mechanism 2"), ("bank", "#d62728", "bank")):
        for ax, key in zip(axes, ("changed_vs_reference", "accuracy")):
            ms = [B.mstd(r[key] for r in rows if r["mechanism"] == mech and r["batch_size"] == b)
                  for b in args.batch_values]
            ax.errorbar(args.batch_values, [100 * m for m, _ in ms], yerr=[100 * sd for _, sd in ms], marker="o",
                        capsize=3, color=color, label=label)
    for ax, ylabel in zip(axes, ("% predictions changed", "test accuracy %")):
        ax.set_xscale("log")
        ax.set_xlabel("test batch size (shuffled test set)")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{args.dataset}: prediction changes under shuffling / batch size (CPU)", fontsize=9)
    fig.tight_layout()
    rep.figure(fig, "mechanism2_sensitivity.png",
               "Mechanism 2 and bank: predictions changed and accuracy vs test batch size")
    targets, details = core
    rep.targets(B.target_rows(targets), B.details_markdown(details))
    rep.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
