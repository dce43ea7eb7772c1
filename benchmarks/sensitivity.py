"""Paper Figures 4 and 6: CNN2GNN accuracy against sparsity s, temperature tau and batch size.

One parameter is varied at a time, the others stay at their defaults (``--s``, ``--tau``,
``--batch-size``); every point is a CNN2GNN student distilled from the same teacher per
seed, trained from scratch, tested (last epoch) under the ``bank`` mechanism and
Mechanism 2 (``batch``, test batches of the training batch size). Line plots show the
mean over seeds with ± std error bars; the validation accuracy (bank) is reported too.

    python benchmarks/sensitivity.py --quick
    python benchmarks/sensitivity.py --full --dataset cifar100 --device cuda
"""
from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

OVERRIDES = {"quick": {"seeds": [0, 1], "epochs": 8, "s_values": [3, 5, 10, 30, 50],
                       "tau_values": [1, 2, 4, 8, 16, 32, 64], "batch_values": [25, 50, 100, 200]},
             "full": {"s_values": [10, 30, 50, 70, 90], "tau_values": [1, 4, 8, 16, 32, 64],
                      "batch_values": [50, 100, 200, 400]}}


def main(argv: list[str] | None = None) -> int:
    p = B.parser(__doc__.split("\n\n")[0])
    p.add_argument("--s-values", type=int, nargs="+", default=None)
    p.add_argument("--tau-values", type=float, nargs="+", default=None)
    p.add_argument("--batch-values", type=int, nargs="+", default=None)
    args = B.finish_args(p.parse_args(argv), "sensitivity", OVERRIDES, argv)
    rep = B.Report(args, f"Figures 4 and 6: sensitivity to s, tau and batch size on {args.dataset}")
    data = B.load_data(args)
    sweeps = {"s": args.s_values, "tau": [float(t) for t in args.tau_values], "batch": args.batch_values}
    done: dict[tuple, dict] = {}
    rows = []
    core = None
    for seed in args.seeds:
        teacher, _ = B.get_teacher(args, data, seed)
        for param, values in sweeps.items():
            for v in values:
                cfg = {"s": args.s, "tau": float(args.tau), "batch": args.batch_size}
                cfg[param] = v
                key = (cfg["s"], cfg["tau"], cfg["batch"], seed)
                if key not in done:
                    model = B.build_model("cnn2gnn", args, data, s=cfg["s"], seed=seed)
                    d, s = B.train_model(args, data, model, teacher, seed=seed,
                                         label=f"s={cfg['s']} tau={cfg['tau']:g} batch={cfg['batch']}",
                                         tau=cfg["tau"], batch_size=cfg["batch"], test_mechanisms=("bank", "batch"))
                    done[key] = {"bank": s["test"]["last"]["bank"], "batch": s["test"]["last"]["batch"],
                                 "val": s["last_val_acc"], "epoch_s": s["mean_train_time_per_epoch"]}
                    if core is None:
                        core = B.core_targets(args, data, teacher, d, s["mean_train_time_per_epoch"], seed=seed)
                r = done[key]
                rows.append({"param": param, "value": v, "seed": seed, "s": cfg["s"], "tau": cfg["tau"],
                             "batch_size": cfg["batch"], "test_acc_bank": r["bank"], "test_acc_batch": r["batch"],
                             "val_acc_bank": r["val"], "epoch_s": r["epoch_s"]})
    rep.csv("sensitivity.csv", rows)
    rep.add(B.settings_line(args, data) + f" Sweeps (one at a time, others at s = {args.s}, tau = {args.tau:g}, "
            f"batch = {args.batch_size}): s in {sweeps['s']}, tau in {sweeps['tau']}, batch in {sweeps['batch']}.")

    plt = B.plt_setup()
    fig, axes = plt.subplots(1, 3, figsize=(10, 3))
    for ax, (param, values) in zip(axes, sweeps.items()):
        table = []
        for mech, color in (("bank", "#d62728"), ("batch", "#1f77b4")):
            ms = [B.mstd(r[f"test_acc_{mech}"] for r in rows if r["param"] == param and r["value"] == v)
                  for v in values]
            ax.errorbar(values, [100 * m for m, _ in ms], yerr=[100 * sd for _, sd in ms], marker="o", capsize=3,
                        color=color, label="bank" if mech == "bank" else "Mechanism 2")
        for v in values:
            rs = [r for r in rows if r["param"] == param and r["value"] == v]
            table.append([f"{v:g}", B.mean_std(r["test_acc_bank"] for r in rs),
                          B.mean_std(r["test_acc_batch"] for r in rs), B.mean_std(r["val_acc_bank"] for r in rs),
                          B.mean_std((r["epoch_s"] for r in rs), 1.0)])
        if param in ("tau", "batch") or max(values) / max(1, min(values)) > 8:
            ax.set_xscale("log", base=2)
        ax.set_xlabel({"s": "sparsity s", "tau": "temperature tau", "batch": "batch size"}[param])
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3)
        rep.add(f"**{param}**\n\n" + B.md_table([param, "test acc % (bank)", "test acc % (Mechanism 2)",
                                                  "val acc % (bank)", "time / epoch [s]"], table))
    axes[0].legend(fontsize=7)
    fig.suptitle(f"{args.dataset}: CNN2GNN sensitivity (mean ± std over seeds {args.seeds}, CPU)", fontsize=9)
    fig.tight_layout()
    rep.figure(fig, "sensitivity.png", "Sensitivity line plots with error bars: s, tau, batch size; "
               "mechanisms bank and Mechanism 2")
    targets, details = core
    rep.targets(B.target_rows(targets), B.details_markdown(details))
    rep.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
