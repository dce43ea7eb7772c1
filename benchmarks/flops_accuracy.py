"""Paper Figure 5: test accuracy against FLOPs per sample, plus CPU time per sample.

Models (one seed): the teacher; MLPs with the student's depth at several widths
(cross-entropy only, Hinton KD, DKD at the default width); the GNN student without a
teacher; CNN2GNN students (learned head + GCN) at several widths. FLOPs per test sample
are counted by ``torch.utils.flop_counter`` (matrix products and convolutions, two FLOPs
per multiply-add; GCN's sparse aggregation counts 0) on the actual inference call over
``--n-measure`` test samples, divided by that number -- so the graph models include their
head, the bank / training batch and the GNN over the graph. CPU time per sample on 1
thread: batched (the same call, median of 3) and one sample at a time (latency; not
defined for Mechanism 2, which needs >= 3 test samples).

    python benchmarks/flops_accuracy.py --quick
    python benchmarks/flops_accuracy.py --full --dataset cifar100 --device cuda
"""
from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

OVERRIDES = {"quick": {"seeds": [0], "widths": [64, 256, 1024], "gnn_widths": [64, 256], "n_measure": 1000},
             "full": {"seeds": [0], "widths": [64, 256, 1024], "gnn_widths": [64, 256, 1024], "n_measure": 2000}}


def main(argv: list[str] | None = None) -> int:
    from tg_cnn2gnn.teachers import count_parameters, flops_per_sample
    p = B.parser(__doc__.split("\n\n")[0])
    p.add_argument("--widths", type=int, nargs="+", default=None, help="MLP hidden widths")
    p.add_argument("--gnn-widths", type=int, nargs="+", default=None, help="CNN2GNN student hidden widths")
    p.add_argument("--n-measure", type=int, default=None, help="test samples for FLOPs and timing")
    args = B.finish_args(p.parse_args(argv), "flops_accuracy", OVERRIDES, argv)
    rep = B.Report(args, f"Figure 5: accuracy vs FLOPs on {args.dataset}")
    data = B.load_data(args)
    seed = args.seeds[0]
    xs = data.xt[:min(args.n_measure, data.yt.numel())]
    teacher, tmeta = B.get_teacher(args, data, seed)
    rows = []

    def measure(name: str, family: str, model: torch.nn.Module, acc: float, mech: str, params: int,
                epoch_s: float | None, lr: float | None = None) -> None:
        model = B.cpu_copy(model)                      # CPU FLOPs and latency
        if mech == "teacher":
            f = lambda x: model(x)  # noqa: E731
            flops = flops_per_sample(model, data.shape)
        else:
            f = B.predictor(model, data, mech, args.bank_size, args.batch_size)
            flops = B.count_flops(lambda: f(xs)) / xs.size(0)
        with torch.no_grad():
            batched = B.per_sample_seconds(f, xs, repeats=3)
            single = None if mech == "batch" else B.single_sample_seconds(f, xs, n=50)
        rows.append({"model": name, "family": family, "mechanism": mech, "test_acc": acc, "flops_per_sample": flops,
                     "params": params, "ms_per_sample_batched": 1e3 * batched,
                     "ms_latency_single": None if single is None else 1e3 * single, "epoch_s": epoch_s,
                     "lr": lr})
        B.log(args, f"{name} [{mech}]: acc {acc:.4f}, {flops / 1e6:.3f} MFLOPs/sample, "
                    f"{1e3 * batched:.4f} ms/sample batched")

    teacher.eval()
    measure(f"Teacher ({args.teacher})", "teacher", teacher, tmeta["test_acc"], "teacher", count_parameters(teacher),
            tmeta["time_per_epoch"])
    kd_epoch = None
    for w in args.widths:
        for name, loss, alpha in (("MLP", "kd", 0.0), ("KD-MLP", "kd", None)) + (
                (("DKD-MLP", "dkd", None),) if w == args.hidden else ()):
            d, s = B.train_select_lr(args, data, lambda: B.build_model("mlp", args, data, hidden=w, seed=seed),
                                     teacher, seed=seed, label=f"{name}-{w}", loss=loss, alpha=alpha)
            model = d
            if name == "KD-MLP" and w == args.hidden:
                kd_epoch = s["mean_train_time_per_epoch"]
            measure(f"{name} (hidden {w})", name, model, s["test"]["last"]["bank"], "direct",
                    count_parameters(model), s["mean_train_time_per_epoch"], s["lr"])
    core = None
    for w in args.gnn_widths:
        for name, alpha in (("CNN2GNN", None),) + ((("GNN (no teacher)", 0.0),) if w == args.hidden else ()):
            d, s = B.train_select_lr(args, data, lambda: B.build_model("cnn2gnn", args, data, hidden=w, seed=seed),
                                     teacher, seed=seed, label=f"{name}-{w}", alpha=alpha,
                                     test_mechanisms=("bank", "batch"))
            model = d
            for mech in ("batch", "bank"):
                measure(f"{name} (hidden {w})", name, model, s["test"]["last"][mech], mech, count_parameters(model),
                        s["mean_train_time_per_epoch"], s["lr"])
            if name == "CNN2GNN" and w == args.hidden:
                core = B.core_targets(args, data, teacher, model, s["mean_train_time_per_epoch"], seed=seed,
                                      kd_mlp_epoch=kd_epoch)
    rep.csv("flops_accuracy.csv", rows)

    rep.add(B.settings_line(args, data) + f" FLOPs and CPU times measured on {xs.size(0)} test samples; "
            "parameter counts of graph models include the anchor head (one row per training sample); "
            f"students' learning rates picked from {args.lr_grid} by validation accuracy.")
    rep.add(B.md_table(["model", "inference", "test acc %", "MFLOPs / sample", "params", "ms / sample (batched)",
                        "ms latency (1 sample)", "train s / epoch", "lr"],
                       [[r["model"], {"batch": "Mechanism 2", "direct": "per sample", "teacher": "per sample"}.get(
                           r["mechanism"], r["mechanism"]), f"{100 * r['test_acc']:.2f}",
                         f"{r['flops_per_sample'] / 1e6:.3f}", f"{r['params']:,}", f"{r['ms_per_sample_batched']:.4f}",
                         "–" if r["ms_latency_single"] is None else f"{r['ms_latency_single']:.3f}",
                         "–" if r["epoch_s"] is None else f"{r['epoch_s']:.2f}",
                         "–" if r["lr"] is None else f"{r['lr']:g}"] for r in rows])
            + f"\n\nSeed {seed}, last-epoch weights, 1 CPU thread. The teacher's train time / epoch is its "
              "pre-training epoch.")

    plt = B.plt_setup()
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    style = {"teacher": ("s", "#444444"), "MLP": ("o", "#9ecae1"), "KD-MLP": ("o", "#1f77b4"),
             "DKD-MLP": ("D", "#2ca02c"), "GNN (no teacher)": ("^", "#ff9896"), "CNN2GNN": ("^", "#d62728")}
    for ax, key, xlabel in ((axes[0], "flops_per_sample", "FLOPs per sample (log)"),
                            (axes[1], "ms_per_sample_batched", "CPU ms per sample, batched (log)")):
        for fam, (marker, color) in style.items():
            pts = [r for r in rows if r["family"] == fam and r["mechanism"] != "bank"]
            if not pts:
                continue
            ax.scatter([r[key] for r in pts], [100 * r["test_acc"] for r in pts], marker=marker, color=color,
                       label=fam + (" (Mech. 2)" if fam in ("CNN2GNN", "GNN (no teacher)") else ""), s=36)
            if fam in ("MLP", "KD-MLP", "CNN2GNN") and len(pts) > 1:
                pts = sorted(pts, key=lambda r: r[key])
                ax.plot([r[key] for r in pts], [100 * r["test_acc"] for r in pts], color=color, lw=0.8)
        bank = [r for r in rows if r["mechanism"] == "bank" and r["family"] == "CNN2GNN"]
        if bank:
            ax.scatter([r[key] for r in bank], [100 * r["test_acc"] for r in bank], marker="v", facecolors="none",
                       edgecolors="#d62728", label="CNN2GNN (bank)", s=36)
        ax.set_xscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel("test accuracy %")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=6, loc="lower right")
    fig.suptitle(f"{args.dataset}: accuracy vs cost (teacher {args.teacher}, seed {seed}, CPU 1 thread)", fontsize=9)
    fig.tight_layout()
    rep.figure(fig, "flops_accuracy.png", "Accuracy vs FLOPs and CPU time: " + ", ".join(
        sorted({r["family"] for r in rows})))

    targets, details = core
    rep.targets(B.target_rows(targets), B.details_markdown(details)
                + " Student = CNN2GNN under Mechanism 2 (the paper's inference); the bank mechanism's costs are in "
                  "the table above.")
    rep.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
