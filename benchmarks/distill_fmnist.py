"""CNN2GNN heterogeneous distillation on Fashion-MNIST, on CPU, over several seeds.

Per seed: a small CNN teacher (``simple-cnn``) is pre-trained with cross-entropy
(Algorithm 2, line 3); a CNN2GNN student (anchor graph head + 2-layer GCN) is distilled
from it (alpha = 1); the same student is trained with alpha = 0 (cross-entropy only,
no teacher); and one more distillation epoch is run *without* cached teacher logits to
time the teacher forward pass. A stratified 10% of the training set is held out for
validation (checkpoint selection); test accuracy is reported for the last epoch and the
best-validation epoch under Mechanism 2 (``batch``) and the ``bank`` mechanism.

    python benchmarks/distill_fmnist.py                  # 3 seeds, all 60,000 images, ~15 min on 2 cores
    python benchmarks/distill_fmnist.py --quick          # a 30-second smoke run (1 seed, 3,000 images)
    python benchmarks/distill_fmnist.py --seeds 0 1 2 --teacher-epochs 3 --epochs 6 --n-train 20000

Writes ``distill_fmnist.csv`` (one row per seed and run) and ``distill_fmnist_table.md``
(mean ± std over seeds, with the command) to ``--out`` (default ``outputs/distill_fmnist``;
run checkpoints go below it) and prints the Markdown. The numbers quoted in
``benchmarks/results/distill_fmnist.md`` come from this script.
Data, teacher, students and training come from the run layer (:mod:`tg_cnn2gnn.run`):
the same stratified subset and validation split, teacher (cached per seed under ``--out``)
and :func:`~tg_cnn2gnn.run.factories.train_student` as ``cnn2gnn distill``.
"""
from __future__ import annotations

import argparse
import csv
import json
import statistics
import sys
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tg_cnn2gnn.run.config import Settings  # noqa: E402
from tg_cnn2gnn.run.data import RunData, load_data  # noqa: E402
from tg_cnn2gnn.run.factories import build_student_model, train_student  # noqa: E402
from tg_cnn2gnn.run.measure import hardware_line  # noqa: E402
from tg_cnn2gnn.run.rundir import RunDir  # noqa: E402
from tg_cnn2gnn.run.teacher_cache import obtain_teacher  # noqa: E402


def settings_of(args, seed: int, **changes) -> Settings:
    """The run layer's settings of this benchmark (``changes`` on top)."""
    values = dict(dataset="fashion-mnist", subset=args.n_train, val_fraction=args.val_fraction, split_seed=0,
                  teacher="simple-cnn", teacher_width=args.teacher_width, teacher_epochs=args.teacher_epochs,
                  teacher_batch_size=128, teacher_lr=0.05, s=args.s, head_hidden=tuple(args.head_hidden),
                  hidden=args.hidden, dropout=0.5, epochs=args.epochs, batch_size=args.batch_size, optimizer="sgd",
                  lr=args.lr, momentum=0.9, weight_decay=5e-4, scheduler="cosine", tau=args.tau, kd_scale="tau2",
                  val_mechanism="bank", mechanisms=("bank", "batch"), bank_size=args.bank_size, seed=seed,
                  device="cpu", progress=args.progress, measure=False)
    values.update(changes)
    return Settings(**values)


def run_seed(seed: int, args, data: RunData, out: Path) -> list[dict]:
    from tg_cnn2gnn.distill import accuracy
    rows = []
    xt, yt = data.x_test, data.y_test

    # ---- teacher (Algorithm 2, line 3): trained on the training part, validated on val
    teacher, tinfo = obtain_teacher(settings_of(args, seed), data, RunDir(out / f"seed{seed}"), log=lambda m: None)
    teacher_time = tinfo["train_time_s"] or 0.0
    t_acc = accuracy(teacher, xt, yt)
    history = json.loads((out / f"seed{seed}" / "teacher" / "teacher_summary.json").read_text())["history"]
    rows.append({"seed": seed, "run": "teacher (simple-cnn)", "alpha": None, "cached": None,
                 "test_acc_last_bank": None, "test_acc_last_batch": None, "test_acc_best_bank": None,
                 "test_acc_best_batch": None, "teacher_test_acc": t_acc,
                 "best_epoch": None, "best_val_acc": history[-1]["val_acc"],
                 "train_time_per_epoch": teacher_time / args.teacher_epochs, "cache_time": None})
    print(f"[seed {seed}] teacher test acc {t_acc:.4f} ({teacher_time:.0f} s, {tinfo['source']})", flush=True)

    def student(cfg: Settings):
        torch.manual_seed(seed)
        return build_student_model(cfg, data.n_train, data.in_features, data.info.num_classes)

    for alpha in (1.0, 0.0):
        cfg = settings_of(args, seed, alpha=alpha)
        s = train_student(cfg, data, teacher, student(cfg), out / f"seed{seed}" / f"alpha{alpha:g}", callbacks=[])
        rows.append({"seed": seed, "run": f"CNN2GNN student, alpha={alpha:g}", "alpha": alpha,
                     "cached": bool(alpha),
                     "test_acc_last_bank": s["test"]["last"]["bank"], "test_acc_last_batch": s["test"]["last"]["batch"],
                     "test_acc_best_bank": s["test"]["best_val"]["bank"],
                     "test_acc_best_batch": s["test"]["best_val"]["batch"],
                     "teacher_test_acc": s.get("teacher_test_acc"), "best_epoch": s["best_epoch"],
                     "best_val_acc": s["best_val_acc"], "train_time_per_epoch": s["mean_train_time_per_epoch"],
                     # one teacher pass over the training part before epoch 1 (alpha=1 only)
                     "cache_time": s["teacher_cache_time"]})
        print(f"[seed {seed}] alpha={alpha:g}: test bank {s['test']['last']['bank']:.4f} "
              f"batch {s['test']['last']['batch']:.4f} (best-val bank {s['test']['best_val']['bank']:.4f}); "
              f"{s['mean_train_time_per_epoch']:.1f} s/epoch", flush=True)

    # ---- timing: the same distillation for one epoch, teacher forward at every step
    cfg = settings_of(args, seed, alpha=1.0, epochs=1, cache_teacher_logits=False)
    s = train_student(cfg, data, teacher, student(cfg), None, callbacks=[], test=False)
    rows.append({"seed": seed, "run": "CNN2GNN student, alpha=1, uncached (1 epoch, timing)", "alpha": 1.0,
                 "cached": False, "test_acc_last_bank": None, "test_acc_last_batch": None,
                 "test_acc_best_bank": None, "test_acc_best_batch": None, "teacher_test_acc": None,
                 "best_epoch": None, "best_val_acc": None,
                 "train_time_per_epoch": s["mean_train_time_per_epoch"], "cache_time": None})
    print(f"[seed {seed}] uncached teacher logits: {s['mean_train_time_per_epoch']:.1f} s/epoch", flush=True)
    return rows


def _ms(values: list[float], pct: bool) -> str:
    vals = [v for v in values if v is not None]
    if not vals:
        return "–"
    scale = 100.0 if pct else 1.0
    m = statistics.mean(vals) * scale
    sd = statistics.stdev(vals) * scale if len(vals) > 1 else 0.0
    return f"{m:.2f} ± {sd:.2f}" if pct else f"{m:.1f} ± {sd:.1f}"


def markdown(rows: list[dict], args, seeds: list[int], wall: float) -> str:
    runs = []
    for r in rows:
        if r["run"] not in runs:
            runs.append(r["run"])
    lines = [
        f"Fashion-MNIST, {hardware_line()}, seeds {seeds}, mean ± std over seeds; "
        f"n_train = {args.n_train or 60000} ({int(round((1 - args.val_fraction) * 100))}% train / "
        f"{int(round(args.val_fraction * 100))}% validation), 10,000 test images.",
        "",
        "| run | test acc, last (bank) | test acc, last (batch = Mech. 2) | test acc, best-val (bank) "
        "| test acc, best-val (batch) | time / epoch [s] |",
        "|---|---|---|---|---|---|",
    ]
    for run in runs:
        rs = [r for r in rows if r["run"] == run]
        if run.startswith("teacher"):
            acc = _ms([r["teacher_test_acc"] for r in rs], True)
            lines.append(f"| {run} | {acc} | {acc} | – | – | {_ms([r['train_time_per_epoch'] for r in rs], False)} |")
            continue
        lines.append(
            f"| {run} | {_ms([r['test_acc_last_bank'] for r in rs], True)} "
            f"| {_ms([r['test_acc_last_batch'] for r in rs], True)} "
            f"| {_ms([r['test_acc_best_bank'] for r in rs], True)} "
            f"| {_ms([r['test_acc_best_batch'] for r in rs], True)} "
            f"| {_ms([r['train_time_per_epoch'] for r in rs], False)} |")
    cache = [r["cache_time"] for r in rows if r.get("cache_time") is not None]
    lines += [
        "",
        f"Teacher: simple-cnn (width {args.teacher_width}), {args.teacher_epochs} epochs, SGD lr 0.05, batch 128 "
        f"(teacher time / epoch = pre-training). Student: anchor graph head {tuple(args.head_hidden)} "
        f"+ 2-layer GCN (hidden {args.hidden}), s = {args.s}, batch {args.batch_size}, {args.epochs} epochs, "
        f"SGD lr {args.lr} momentum 0.9 wd 5e-4, cosine schedule, tau = {args.tau} (tau² scaling); "
        f"bank mechanism with a {args.bank_size}-sample bank. Student time / epoch = training steps only "
        f"(validation excluded); alpha=1 uses cached teacher logits "
        f"(one teacher pass over the training part before epoch 1: {_ms(cache, False)} s), the "
        f"'uncached' row runs the teacher at every step. Total wall time {wall / 60:.1f} min.",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--teacher-epochs", type=int, default=3)
    p.add_argument("--epochs", type=int, default=6, help="student epochs")
    p.add_argument("--n-train", type=int, default=0, help="stratified training subset (0 = all 60,000)")
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--teacher-width", type=int, default=16)
    p.add_argument("--head-hidden", type=int, nargs="+", default=[256])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--s", type=int, default=10, help="sparsity (paper: 50; 10 learns faster in few epochs)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--bank-size", type=int, default=100)
    p.add_argument("--lr", type=float, default=0.02)
    p.add_argument("--tau", type=float, default=4.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="tiny settings: 1 seed, 3,000 samples, 1+2 epochs")
    p.add_argument("--progress", action="store_true")
    p.add_argument("--out", default="outputs/distill_fmnist")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.teacher_epochs, args.epochs, args.n_train = args.seeds[:1], 1, 2, 3000
    args.n_train = args.n_train or None
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)
    out = Path(args.out)
    runs_dir = out / "distill_fmnist_runs"

    start = time.perf_counter()
    data = load_data(settings_of(args, 0))
    rows: list[dict] = []
    for seed in args.seeds:
        rows += run_seed(seed, args, data, runs_dir)
    wall = time.perf_counter() - start

    out.mkdir(parents=True, exist_ok=True)
    with open(out / "distill_fmnist.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    md = markdown(rows, args, args.seeds, wall)
    cmd = "python " + " ".join([sys.argv[0]] + (argv if argv is not None else sys.argv[1:]))
    (out / "distill_fmnist_table.md").write_text(f"Command: `{cmd}`\n\n{md}")
    (out / "distill_fmnist_args.json").write_text(json.dumps(vars(args), indent=2) + "\n")
    print(md)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
