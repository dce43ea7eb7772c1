"""Does the graph earn its place? The issue-7 levers against the paper-faithful CNN2GNN (CPU).

For every seed: a CNN teacher (``simple-cnn``) is pre-trained once; then, with the same
data, budget and cached teacher logits, it distils into

* ``paper``: anchor head + 2-layer ``GCNConv`` student, Eq. 6 (alpha = 1), the package default;
* ``graphconv``: the same with ``GraphConv`` layers (a separate weight for the node itself,
  so the student can fall back on its MLP part);
* ``relation``: ``paper`` plus the teacher-relation term for the head
  (``HeteroDistiller(relation_weight=...)``, :func:`tg_cnn2gnn.distill.relation_loss`);
* ``graphconv+relation``: both;
* ``embedding``: the embedding-form head (distances between any two samples);
* ``paper+bank1000`` / ``embedding+bank1000``: inference (and validation) with a bank of
  1,000 training samples instead of one training batch's 100, so that a test sample's
  s neighbours are nearer;
* ``embedding+relation`` (``+bank1000``): the embedding head supervised by the relation term;
* ``kd-mlp`` / ``dkd-mlp``: an MLP with the student's widths, trained with Hinton KD and
  with DKD (:mod:`tg_cnn2gnn.baselines`) -- the student without a graph.

Reported per configuration (mean ± std over seeds): test accuracy under the strictly
inductive ``bank`` mechanism (last epoch and validation-selected), the same trained
weights with every test edge removed (``predict_isolated``: each test node sees only
itself), and the gain the graph carries (bank - isolated). The teacher's accuracy and
FLOPs per sample (``torch.utils.flop_counter``) are reported alongside.

    python benchmarks/graph_levers.py --quick                       # digits, seconds
    python benchmarks/graph_levers.py --dataset fashion-mnist --n-train 20000 --epochs 8

Writes ``graph_levers.csv``, ``graph_levers.md`` and ``graph_levers.png`` to ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))
sys.path.insert(0, str(ROOT))

from _report import mean_std  # noqa: E402

from tg_cnn2gnn.data import dataset_info, load_tensors  # noqa: E402
from tg_cnn2gnn.run import data as run_data  # noqa: E402
from tg_cnn2gnn.run.config import Settings  # noqa: E402
from tg_cnn2gnn.run.factories import build_student_model, train_student  # noqa: E402
from tg_cnn2gnn.run.measure import hardware_line, measure_student, measure_teacher  # noqa: E402
from tg_cnn2gnn.run.rundir import RunDir  # noqa: E402
from tg_cnn2gnn.run.teacher_cache import obtain_teacher  # noqa: E402

CONFIGS = ("paper", "graphconv", "relation", "graphconv+relation", "embedding", "paper+bank1000",
           "embedding+bank1000", "embedding+relation", "embedding+relation+bank1000", "kd-mlp", "dkd-mlp")


def bank_size_of(config: str, default: int) -> int:
    """``+bankN`` configurations infer (and validate) with a bank of N training samples."""
    return int(config.rsplit("+bank", 1)[1]) if "+bank" in config else default


def stratified_subset(y: torch.Tensor, n: int, seed: int) -> torch.Tensor:
    """About ``n`` indices of ``y`` with its class proportions (all when ``n`` is 0 or ``>= len(y)``):
    the run layer's :func:`~tg_cnn2gnn.run.data.stratified_subset`."""
    keep = run_data.stratified_subset(y, n or None, seed)
    return torch.arange(y.numel()) if keep is None else keep


def settings_of(config: str, args, seed: int, n_train: int) -> Settings:
    """The run layer's settings of one configuration (model, method, bank)."""
    return Settings(
        dataset=args.dataset, subset=args.n_train or None, val_fraction=0.1, split_seed=0, teacher="simple-cnn",
        teacher_epochs=args.teacher_epochs, s=args.s, head_hidden=tuple(args.head_hidden), hidden=args.hidden,
        dropout=args.dropout, head_form="embedding" if config.startswith("embedding") else "anchor",
        conv="graph" if config.startswith("graphconv") else "gcn",
        student="mlp" if config.endswith("mlp") else "gnn",
        method="dkd" if config == "dkd-mlp" else "kd" if config == "kd-mlp" else "cnn2gnn",
        relation_weight=args.relation_weight if "relation" in config else 0.0, alpha=args.alpha, tau=args.tau,
        epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, mechanisms=("bank",),
        bank_size=min(bank_size_of(config, args.bank_size), n_train), seed=seed, device="cpu", measure=False)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--dataset", default="fashion-mnist", choices=["fashion-mnist", "digits"])
    p.add_argument("--root", default=None, help="dataset folder (default: the loader's)")
    p.add_argument("--n-train", type=int, default=20000, help="stratified training subset (0 = all)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=8)
    p.add_argument("--s", type=int, default=10)
    p.add_argument("--head-hidden", type=int, nargs="*", default=[256])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--alpha", type=float, default=1.0)
    p.add_argument("--tau", type=float, default=4.0)
    p.add_argument("--relation-weight", type=float, default=1.0)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--bank-size", type=int, default=100)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="digits, 1 seed, 2+4 epochs: a smoke run in seconds")
    p.add_argument("--out", type=Path, default=Path("outputs/graph_levers"))
    args = p.parse_args(argv)
    if args.quick:
        args.dataset, args.seeds, args.teacher_epochs, args.epochs, args.n_train = "digits", args.seeds[:1], 2, 4, 0
        args.head_hidden, args.hidden = [64], 64
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=UserWarning)

    x, y = load_tensors(args.dataset, "train", root=args.root)
    xt, yt = load_tensors(args.dataset, "test", root=args.root)
    data = run_data.split_data(x, y, xt, yt, dataset_info(args.dataset), subset=args.n_train or None,
                               val_fraction=0.1, split_seed=0)
    n_train = data.n_train
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"{args.dataset}: train {tuple(data.x.shape)} (90% train / 10% val), test {tuple(xt.shape)}; "
          f"seeds {args.seeds}; threads {args.threads}", flush=True)

    rows: list[dict] = []
    t_start = time.perf_counter()
    teacher_flops = None
    student_flops: dict[str, float] = {}
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:   # the teacher, trained on the training part
            t0 = time.perf_counter()
            teacher, _ = obtain_teacher(settings_of("paper", args, seed, n_train), data, RunDir(tmp), log=lambda m: None)
            teacher_time = time.perf_counter() - t0
        if teacher_flops is None:
            teacher_flops = float(measure_teacher(teacher, xt, latency=False)["flops_per_sample"])
        for config in args.configs:
            cfg = settings_of(config, args, seed, n_train)
            torch.manual_seed(seed)
            model = build_student_model(cfg, n_train, data.in_features, data.info.num_classes)
            summary = train_student(cfg, data, teacher, model, None, callbacks=[])
            fit_time = summary["train_time_s"]
            isolated = None
            if hasattr(model, "predict_isolated"):
                logits = model.predict_isolated(xt.flatten(1))
                isolated = float((logits.argmax(1) == yt).double().mean())
            if config not in student_flops:
                student_flops[config] = measure_student(model, data.train_features, xt, mechanisms=("bank",),
                                                        bank_size=cfg.bank_size, latency=False
                                                        )["flops"]["bank"]["per_sample"]
            row = {"seed": seed, "config": config, "teacher_acc": summary.get("teacher_test_acc"),
                   "bank_last": summary["test"]["last"]["bank"], "bank_best_val": summary["test"]["best_val"]["bank"],
                   "isolated_last": isolated, "fit_s": round(fit_time, 1), "teacher_s": round(teacher_time, 1)}
            rows.append(row)
            print(f"[seed {seed}] {config:>18}: bank {row['bank_last']:.4f} (val-selected "
                  f"{row['bank_best_val']:.4f})" + ("" if isolated is None else f", edges removed {isolated:.4f}")
                  + f"; teacher {row['teacher_acc']:.4f}; {fit_time:.0f} s", flush=True)

    with open(args.out / "graph_levers.csv", "w", newline="") as f:
        wr = csv.DictWriter(f, fieldnames=list(rows[0]))
        wr.writeheader()
        wr.writerows(rows)

    def col(config, key):
        return [r[key] for r in rows if r["config"] == config and r[key] is not None]

    teacher_acc = [r["teacher_acc"] for r in rows if r["config"] == args.configs[0]]
    cmd = "python benchmarks/graph_levers.py " + " ".join(sys.argv[1:] if argv is None else argv)
    lines = [f"# Graph levers on {args.dataset} (issue 7)", "",
             f"Command: `{cmd.strip()}`  ",
             f"Machine: {hardware_line()}; "
             f"seeds {args.seeds}; total {(time.perf_counter() - t_start) / 60:.1f} min.  ",
             f"Setting: {data.x.size(0)} training images (90% train / 10% validation, stratified), "
             f"{xt.size(0)} test; teacher simple-cnn {args.teacher_epochs} epochs (training part only); students "
             f"{args.epochs} epochs, Adam lr {args.lr}, batch {args.batch_size}, cached teacher logits, "
             f"tau {args.tau}, alpha {args.alpha}, s {args.s}, head {args.head_hidden}, hidden {args.hidden}, "
             f"relation weight {args.relation_weight}; `bank` inference with {args.bank_size} training "
             f"samples unless the name says `+bankN` (strictly inductive). Accuracies in %, mean ± std over seeds.", "",
             f"Teacher: {mean_std(teacher_acc)} ({teacher_flops / 1e6:.2f} MFLOPs per sample).", "",
             "| configuration | bank, last | bank, val-selected | edges removed (last weights) | graph gain (bank - removed) | MFLOPs / test sample | teacher / student FLOPs |",
             "|---|---|---|---|---|---|---|"]
    for config in args.configs:
        last, best, iso = col(config, "bank_last"), col(config, "bank_best_val"), col(config, "isolated_last")
        gain = [a - b for a, b in zip(last, iso)] if iso else []
        fl = student_flops.get(config)
        lines.append(f"| {config} | {mean_std(last)} | {mean_std(best)} | {mean_std(iso)} | {mean_std(gain)} | "
                     f"{fl / 1e6:.3f} | {teacher_flops / fl:.1f}x |")
    table = "\n".join(lines) + "\n"
    (args.out / "graph_levers.md").write_text(table)
    print("\n" + table)

    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8, 3.6))
    xs = range(len(args.configs))
    for off, key, label in ((-0.2, "bank_best_val", "bank (val-selected)"), (0.2, "isolated_last", "edges removed")):
        means = [100 * statistics.fmean(col(cf, key)) if col(cf, key) else float("nan") for cf in args.configs]
        errs = [100 * statistics.stdev(col(cf, key)) if len(col(cf, key)) > 1 else 0.0 for cf in args.configs]
        ax.bar([i + off for i in xs], means, width=0.4, yerr=errs, label=label, capsize=3)
    if teacher_acc:
        ax.axhline(100 * statistics.fmean(teacher_acc), color="k", ls="--", lw=1, label="teacher")
    vals = [100 * v for r in rows for v in (r["bank_best_val"], r["isolated_last"]) if v is not None]
    ax.set_ylim(max(0.0, min(vals) - 5), min(100.0, max(vals + [100 * max(teacher_acc)]) + 2))
    ax.set_xticks(list(xs), args.configs, rotation=20, ha="right")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(f"{args.dataset}: the graph's share of the student's accuracy")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(args.out / "graph_levers.png", dpi=90)
    plt.close(fig)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
