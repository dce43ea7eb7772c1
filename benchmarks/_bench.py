"""Shared helpers of the paper-reproduction benchmarks (Tables 1-3, Figures 3-6).

Every script in ``benchmarks/`` builds its arguments with :func:`parser` / :func:`finish_args`
(``--quick``, the default, or ``--full``, the paper's setting; any explicit option wins over
the preset), loads data with :func:`load_data`, gets a teacher with :func:`get_teacher`
(cached on disk per dataset/teacher/seed, so the scripts share teachers), trains students
with :func:`train_model`, measures the issue-6 targets with :func:`core_targets`, and writes
its outputs with a :class:`Report` (Markdown + CSV + PNG under ``--out``).
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

# ----------------------------------------------------------------------------- presets
#: Settings shared by every script. ``quick``: minutes on a 2-core CPU (a stratified
#: training subset and few epochs); ``full``: the paper's setting (§4.1) for a GPU.
COMMON = {
    "quick": dict(seeds=[0], epochs=15, teacher_epochs=3, teacher_lr=0.05, batch_size=100, s=10,
                  head_hidden=[256], hidden=256, lr=0.05, optimizer="sgd", weight_decay=5e-4, tau=4.0,
                  alpha=1.0, bank_size=100, val_fraction=0.1, obo_limit=1000, n_test=0, dropout=0.5,
                  lr_grid=[0.01, 0.05]),
    "full": dict(seeds=[0, 1, 2, 3, 4], epochs=200, teacher_epochs=200, teacher_lr=0.1, batch_size=100,
                 s=50, head_hidden=[512, 256], hidden=256, lr=0.01, optimizer="sgd", weight_decay=5e-4,
                 tau=4.0, alpha=1.0, bank_size=100, val_fraction=0.1, obo_limit=0, n_test=0, dropout=0.5,
                 lr_grid=[0.01]),
}
#: Per-dataset settings (``n_train`` = stratified training subset, 0 = all).
PER_DATASET = {
    "quick": {
        "digits": dict(n_train=0, teacher="simple-cnn", teacher_width=16, teacher_epochs=8, epochs=20),
        "fashion-mnist": dict(n_train=10000, teacher="simple-cnn", teacher_width=32, teacher_epochs=5),
        "_default": dict(n_train=10000, teacher="simple-cnn", teacher_width=32),
    },
    "full": {
        "digits": dict(n_train=0, teacher="simple-cnn", teacher_width=32),
        "fashion-mnist": dict(n_train=0, teacher="resnet18", teacher_width=None),
        "_default": dict(n_train=0, teacher="resnet34", teacher_width=None),
    },
}


def parser(description: str) -> argparse.ArgumentParser:
    """The options every benchmark script accepts (``None`` = take the preset's value)."""
    p = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_mutually_exclusive_group()
    g.add_argument("--quick", dest="mode", action="store_const", const="quick",
                   help="CPU setting, minutes on 2 cores (default)")
    g.add_argument("--full", dest="mode", action="store_const", const="full",
                   help="the paper's setting: 200 epochs, batch 100, s=50, alpha=1, lr 0.01 (GPU)")
    p.set_defaults(mode="quick")
    p.add_argument("--dataset", default="fashion-mnist",
                   help="digits, fashion-mnist, cifar10, cifar100, stl10, mini-imagenet")
    p.add_argument("--root", default=None, help="data folder (default: the package's)")
    p.add_argument("--seeds", type=int, nargs="+", default=None)
    p.add_argument("--n-train", type=int, default=None, help="stratified training subset, 0 = all")
    p.add_argument("--n-test", type=int, default=None, help="first N test samples, 0 = all")
    p.add_argument("--val-fraction", type=float, default=None)
    p.add_argument("--teacher", default=None, help="teacher name (tg_cnn2gnn.teachers.TEACHERS)")
    p.add_argument("--teacher-width", type=int, default=None, help="width of simple-cnn")
    p.add_argument("--teacher-epochs", type=int, default=None)
    p.add_argument("--teacher-lr", type=float, default=None)
    p.add_argument("--epochs", type=int, default=None, help="student epochs")
    p.add_argument("--batch-size", type=int, default=None)
    p.add_argument("--s", type=int, default=None, help="sparsity of Eq. 3")
    p.add_argument("--tau", type=float, default=None)
    p.add_argument("--alpha", type=float, default=None)
    p.add_argument("--lr", type=float, default=None, help="learning rate of runs without a grid")
    p.add_argument("--lr-grid", type=float, nargs="+", default=None,
                   help="learning rates tried per method where a script compares methods; the one with the best "
                        "validation accuracy is kept (never the test set)")
    p.add_argument("--optimizer", default=None, choices=["sgd", "adam", "adamw"])
    p.add_argument("--weight-decay", type=float, default=None)
    p.add_argument("--hidden", type=int, default=None, help="student (GNN and MLP) hidden width")
    p.add_argument("--head-hidden", type=int, nargs="*", default=None, help="graph head MLP widths")
    p.add_argument("--dropout", type=float, default=None)
    p.add_argument("--bank-size", type=int, default=None)
    p.add_argument("--obo-limit", type=int, default=None,
                   help="Mechanism 1 (one-by-one) on the first N test samples, 0 = all")
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    p.add_argument("--device", default=None, help="cuda when available, else cpu (latencies are always CPU)")
    p.add_argument("--out", default=None, help="output folder (default outputs/bench/<dataset>/<script>)")
    p.add_argument("--teacher-cache", default=str(ROOT / "outputs" / "bench_cache" / "teachers"),
                   help="where trained teachers are kept and reused ('' = no cache)")
    p.add_argument("--quiet", action="store_true", help="no per-epoch progress lines")
    return p


def finish_args(args: argparse.Namespace, script: str, overrides: dict[str, dict[str, Any]] | None = None,
                argv: Sequence[str] | None = None) -> argparse.Namespace:
    """Fill every ``None`` option from the presets: common < per-dataset < the script's
    ``overrides[mode]``; set torch's thread count; remember the command line."""
    from tg_cnn2gnn.data.info import canonical_name
    args.dataset = canonical_name(args.dataset)
    preset: dict[str, Any] = dict(COMMON[args.mode])
    per = PER_DATASET[args.mode]
    preset.update(per.get(args.dataset, per["_default"]))
    preset.update((overrides or {}).get(args.mode, {}))
    preset.update((overrides or {}).get(f"{args.mode}:{args.dataset}", {}))
    for k, v in preset.items():
        if getattr(args, k, None) is None:
            setattr(args, k, v)
    if args.device is None:
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.out is None:
        args.out = str(ROOT / "outputs" / "bench" / args.dataset / script)
    args.script = script
    torch.set_num_threads(args.threads)
    warnings.filterwarnings("ignore", category=FutureWarning)
    warnings.filterwarnings("ignore", category=UserWarning, message=".*sparse.*")
    argv = list(sys.argv[1:] if argv is None else argv)
    args.command = " ".join(["python", f"benchmarks/{script}.py", *argv])
    return args


def log(args: argparse.Namespace, msg: str) -> None:
    print(f"[{args.script} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ----------------------------------------------------------------------------- data
@dataclass
class Data:
    x: torch.Tensor          # [N, C, H, W] training images (train + val parts)
    y: torch.Tensor
    xt: torch.Tensor         # test images
    yt: torch.Tensor
    tr: torch.Tensor         # indices of the training part (as the distiller splits it)
    va: torch.Tensor         # indices of the validation part
    num_classes: int
    shape: tuple[int, int, int]

    @property
    def features(self) -> int:
        return int(math.prod(self.shape))

    @property
    def n_train(self) -> int:
        return int(self.tr.numel())

    @property
    def train_x(self) -> torch.Tensor:
        """``[n_train, F]`` training features, row k = training id k (what predict needs)."""
        return self.x[self.tr].flatten(1)


def load_data(args: argparse.Namespace) -> Data:
    """Normalised tensors; a class-stratified training subset of ``n_train`` (fixed, seed 0);
    the first ``n_test`` test samples; the distiller's train/val split (``split_seed=0``)."""
    import numpy as np
    from tg_cnn2gnn.data import dataset_info, load_tensors, train_val_split
    info = dataset_info(args.dataset)
    x, y = load_tensors(args.dataset, "train", args.root)
    xt, yt = load_tensors(args.dataset, "test", args.root)
    if args.n_train and args.n_train < y.numel():
        from sklearn.model_selection import train_test_split
        keep, _ = train_test_split(np.arange(y.numel()), train_size=args.n_train, stratify=y.numpy(),
                                   random_state=0)
        keep = torch.from_numpy(np.sort(keep))
        x, y = x[keep], y[keep]
    if args.n_test and args.n_test < yt.numel():
        xt, yt = xt[:args.n_test], yt[:args.n_test]
    tr, va = train_val_split(y, args.val_fraction, seed=0)
    return Data(x, y, xt, yt, tr, va, info.num_classes, tuple(x.shape[1:]))


# ----------------------------------------------------------------------------- teacher
def _teacher_key(args: argparse.Namespace, data: Data, seed: int) -> str:
    spec = dict(dataset=args.dataset, teacher=args.teacher, width=args.teacher_width, epochs=args.teacher_epochs,
                lr=args.teacher_lr, n=int(data.y.numel()), val=args.val_fraction, seed=seed,
                ysum=int(data.y.sum()), v=1)
    h = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{args.dataset}_{args.teacher}{args.teacher_width or ''}_e{args.teacher_epochs}_s{seed}_{h}"


def build_teacher_model(args: argparse.Namespace, data: Data) -> torch.nn.Module:
    from tg_cnn2gnn.teachers import build_teacher
    kw = {"width": args.teacher_width} if args.teacher == "simple-cnn" and args.teacher_width else {}
    return build_teacher(args.teacher, data.num_classes, in_channels=data.shape[0], image_size=data.shape[1], **kw)


def get_teacher(args: argparse.Namespace, data: Data, seed: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A teacher pre-trained with cross-entropy on the training part (never on val or test),
    loaded from ``--teacher-cache`` when an identical one was trained before."""
    from tg_cnn2gnn.distill import accuracy, freeze, pretrain_teacher
    torch.manual_seed(seed)
    teacher = build_teacher_model(args, data)
    cache = Path(args.teacher_cache) if args.teacher_cache else None
    key = _teacher_key(args, data, seed)
    if cache is not None and (cache / f"{key}.pt").is_file() and (cache / f"{key}.json").is_file():
        teacher.load_state_dict(torch.load(cache / f"{key}.pt", weights_only=True))
        meta = json.loads((cache / f"{key}.json").read_text())
        log(args, f"seed {seed}: teacher {args.teacher} loaded from cache ({key}), test acc {meta['test_acc']:.4f}")
        return freeze(teacher.to(args.device)), meta
    log(args, f"seed {seed}: training teacher {args.teacher} for {args.teacher_epochs} epochs "
              f"on {data.n_train} images")
    t0 = time.perf_counter()
    cb = [] if args.quiet else [lambda e, row: log(args, f"  teacher epoch {e + 1}/{args.teacher_epochs}: "
                                                         f"val acc {row.get('val_acc') or 0:.4f}")]
    pretrain_teacher(teacher, data.x[data.tr], data.y[data.tr], epochs=args.teacher_epochs, batch_size=128,
                     lr=args.teacher_lr, val=(data.x[data.va], data.y[data.va]), seed=seed, device=args.device,
                     progress=False, tensorboard=False, callbacks=cb)
    train_time = time.perf_counter() - t0
    meta = {"test_acc": accuracy(teacher, data.xt, data.yt, device=args.device),
            "val_acc": accuracy(teacher, data.x[data.va], data.y[data.va], device=args.device),
            "train_time": train_time, "epochs": args.teacher_epochs, "time_per_epoch": train_time / args.teacher_epochs}
    log(args, f"seed {seed}: teacher test acc {meta['test_acc']:.4f} ({train_time:.0f} s)")
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        torch.save(teacher.state_dict(), cache / f"{key}.pt")
        (cache / f"{key}.json").write_text(json.dumps(meta))
    return freeze(teacher), meta


# ----------------------------------------------------------------------------- students
MODEL_KINDS = ("cnn2gnn", "mlp", "ingnn", "eucgnn")


def build_model(kind: str, args: argparse.Namespace, data: Data, *, s: int | None = None,
                hidden: int | None = None, seed: int = 0) -> torch.nn.Module:
    """``cnn2gnn``: anchor graph head (``--head-hidden``) + 2-layer GCN; ``mlp``: the MLP
    with the GCN's widths; ``ingnn`` / ``eucgnn``: the GCN on a fixed inner-product /
    Euclidean Eq. 3 graph of the pixels. Seeded with ``seed``."""
    from tg_cnn2gnn.baselines import MLPStudent
    from tg_cnn2gnn.nn import CNN2GNN, EucGNN, GraphStudent, InGNN, LearnedGraphHead
    s = args.s if s is None else s
    hidden = args.hidden if hidden is None else hidden
    torch.manual_seed(seed)
    f, c = data.features, data.num_classes
    if kind == "mlp":
        return MLPStudent(f, hidden, c, dropout=args.dropout)
    student = GraphStudent(f, hidden, c, dropout=args.dropout)
    if kind == "cnn2gnn":
        head = LearnedGraphHead(f, num_train=data.n_train, s=s, hidden_channels=tuple(args.head_hidden))
        return CNN2GNN(head, student)
    if kind == "ingnn":
        return InGNN(student, s=s)
    if kind == "eucgnn":
        return EucGNN(student, s=s)
    raise ValueError(f"unknown model kind {kind!r}; one of {MODEL_KINDS}")


def train_model(args: argparse.Namespace, data: Data, model: torch.nn.Module, teacher: torch.nn.Module | None, *,
                seed: int, label: str, loss: str = "kd", alpha: float | None = None, tau: float | None = None,
                batch_size: int | None = None, epochs: int | None = None, lr: float | None = None,
                test_mechanisms: Sequence[str] | None = ("bank",), val_mechanism: str = "bank",
                cache: bool = True) -> tuple[Any, dict[str, Any]]:
    """Train ``model`` with the distiller (``alpha = 0``: cross-entropy only, no teacher;
    ``loss="dkd"``: :class:`~tg_cnn2gnn.baselines.DKDDistiller`). The training/validation
    split is the distiller's (``val_fraction``, ``split_seed=0``), the same as the teacher's.
    Returns ``(distiller, summary)`` (summary as :meth:`HeteroDistiller.fit`)."""
    from tg_cnn2gnn.baselines import DKDDistiller
    from tg_cnn2gnn.distill import HeteroDistiller
    alpha = args.alpha if alpha is None else alpha
    tau = args.tau if tau is None else tau
    epochs = args.epochs if epochs is None else epochs
    batch_size = args.batch_size if batch_size is None else batch_size
    lr = args.lr if lr is None else lr
    use_teacher = teacher if (alpha > 0 or loss == "dkd") else None
    if loss == "dkd":
        d = DKDDistiller(teacher, model, dkd_alpha=1.0, dkd_beta=8.0, tau=tau, device=args.device)
        extra: dict[str, Any] = {"warmup_epochs": max(1, epochs // 10)}
    else:
        d = HeteroDistiller(use_teacher, model, alpha=alpha if use_teacher is not None else 0.0, tau=tau,
                            kd_scale="tau2", device=args.device)
        extra = {}
    cb = []
    if not args.quiet:
        def progress(e: int, row: dict[str, Any]) -> None:
            if e + 1 == epochs or (e + 1) % max(1, epochs // 5) == 0:
                log(args, f"  {label} seed {seed} epoch {e + 1}/{epochs}: loss {row.get('loss', float('nan')):.4f} "
                          f"train acc {row['train_acc']:.4f} val acc {row.get('val_acc') or 0:.4f} "
                          f"({row['train_time']:.1f} s)")
        cb.append(progress)
    t0 = time.perf_counter()
    summary = d.fit(data.x, data.y, epochs=epochs, batch_size=batch_size, optimizer=args.optimizer, lr=lr,
                    momentum=0.9, weight_decay=args.weight_decay, scheduler="cosine",
                    val_fraction=args.val_fraction, split_seed=0, val_mechanism=val_mechanism,
                    test=(data.xt, data.yt) if test_mechanisms else None,
                    test_mechanisms=tuple(test_mechanisms or ("bank",)), eval_batch_size=batch_size,
                    bank_size=min(args.bank_size, data.n_train), cache_teacher_logits=cache and use_teacher is not None,
                    seed=seed, progress=False, tensorboard=False, callbacks=cb, **extra)
    summary["wall_time"] = time.perf_counter() - t0
    summary["lr"] = lr
    if test_mechanisms:
        log(args, f"{label} seed {seed}: test (last) " + ", ".join(
            f"{m} {summary['test']['last'][m]:.4f}" for m in test_mechanisms)
            + f"; {summary['mean_train_time_per_epoch']:.2f} s/epoch")
    return d, summary


def train_select_lr(args: argparse.Namespace, data: Data, make_model: Callable[[], torch.nn.Module],
                    teacher: torch.nn.Module | None, *, seed: int, label: str, lrs: Sequence[float] | None = None,
                    **kwargs: Any) -> tuple[Any, dict[str, Any]]:
    """:func:`train_model` once per learning rate of ``lrs`` (default ``--lr-grid``) on a fresh
    ``make_model()``; keeps the run with the best validation accuracy (``best_val_acc``; ties:
    the first). ``summary["lr_tried"]`` lists ``(lr, best_val_acc)``."""
    lrs = list(args.lr_grid if lrs is None else lrs) or [args.lr]
    best, tried = None, []
    for lr in lrs:
        d, s = train_model(args, data, make_model(), teacher, seed=seed, label=f"{label} (lr {lr:g})", lr=lr, **kwargs)
        tried.append((lr, s["best_val_acc"]))
        if best is None or s["best_val_acc"] > best[1]["best_val_acc"]:
            best = (d, s)
    best[1]["lr_tried"] = tried
    if len(lrs) > 1:
        log(args, f"{label} seed {seed}: lr {best[1]['lr']:g} selected on validation "
                  f"({', '.join(f'{lr:g}: {v:.4f}' for lr, v in tried)})")
    return best


# ----------------------------------------------------------------------------- measurement


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn()`` by :class:`torch.utils.flop_counter.FlopCounterMode` (matrix
    products and convolutions, 2 per multiply-add; element-wise ops, scatter and gather
    -- e.g. GCN's sparse aggregation -- count 0)."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def predictor(model: torch.nn.Module, data: Data, mechanism: str, bank_size: int, batch_size: int = 100,
              chunk_size: int = 128) -> Callable[[torch.Tensor], torch.Tensor]:
    """``f(x [T, C, H, W]) -> logits`` (on the CPU) for a student under ``mechanism``; runs on
    the model's device."""
    dev = next(model.parameters()).device
    train_x = data.train_x.to(dev)
    bank_size = min(bank_size, data.n_train)

    def f(x: torch.Tensor) -> torch.Tensor:
        kw: dict[str, Any] = dict(mechanism=mechanism, train_x=train_x, batch_size=batch_size, bank_size=bank_size)
        if hasattr(model, "head") or hasattr(model, "metric"):
            kw["chunk_size"] = chunk_size
        return model.predict(x.flatten(1).to(dev), **kw).cpu()
    return f


def cpu_copy(module: torch.nn.Module) -> torch.nn.Module:
    """An eval-mode copy of ``module`` on the CPU (for CPU timings after GPU training)."""
    import copy
    return copy.deepcopy(module).cpu().eval()


def per_sample_seconds(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int = 3) -> float:
    """Median wall time of ``fn(x)`` divided by ``len(x)``."""
    from tg_cnn2gnn.pipeline import median_time
    return median_time(lambda: fn(x), repeats=repeats) / x.size(0)


def single_sample_seconds(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, n: int = 50) -> float:
    """Mean time of ``fn`` on one sample at a time (latency), over ``n`` samples."""
    n = min(n, x.size(0))
    fn(x[:1])
    t0 = time.perf_counter()
    for i in range(n):
        fn(x[i:i + 1])
    return (time.perf_counter() - t0) / n


def accuracy_of(logits: torch.Tensor, y: torch.Tensor) -> float:
    return float((logits.argmax(-1).cpu() == y.cpu()).double().mean())


# ----------------------------------------------------------------------------- targets
#: The issue-6 targets: (key, description, threshold, unit).
TARGETS = {
    "mech2_vs_mech1_speed": ("Mechanism 2 (batch) >= 10x faster per test sample than Mechanism 1 (one-by-one)",
                             10.0, "x"),
    "flops_teacher_over_student": ("student >= 20x fewer FLOPs per sample than the teacher", 20.0, "x"),
    "latency_teacher_over_student": ("student >= 10x faster per sample on CPU than the teacher", 10.0, "x"),
    "epoch_cnn2gnn_over_kdmlp": ("a distillation epoch with cached logits <= 1.5x a KD-MLP epoch", 1.5, "x (max)"),
    "student_minus_teacher": ("CNN2GNN (bank) >= teacher accuracy", 0.0, "pp"),
    "student_minus_kdmlp": ("CNN2GNN (bank) > KD-MLP accuracy", 0.0, "pp"),
    "student_minus_gnn": ("CNN2GNN (bank) > undistilled GNN accuracy", 0.0, "pp"),
    "student_minus_ingnn": ("CNN2GNN (bank) > InGNN accuracy", 0.0, "pp"),
    "student_minus_eucgnn": ("CNN2GNN (bank) > EucGNN accuracy", 0.0, "pp"),
}


def target_rows(measured: dict[str, float]) -> list[dict[str, Any]]:
    """PASS/MISS and the margin for every measured target. Ratios: margin = measured /
    threshold (>= 1 passes; for the epoch-time cap, threshold / measured); accuracy gaps
    (percentage points): margin = the gap itself."""
    rows = []
    for key, value in measured.items():
        if key not in TARGETS or value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        desc, thr, unit = TARGETS[key]
        if unit == "pp":
            ok = value >= thr if key == "student_minus_teacher" else value > thr
            margin = f"{value:+.2f} pp"
            shown = f"{value:+.2f} pp"
        elif unit == "x (max)":
            ok = value <= thr
            margin = f"{thr / value:.2f}x of the cap" if value > 0 else "inf"
            shown = f"{value:.2f}x"
        else:
            ok = value >= thr
            margin = f"{value / thr:.2f}x of the target"
            shown = f"{value:.2f}x"
        rows.append({"target": key, "description": desc, "measured": shown, "required":
                     (f">= {thr:g}x" if unit == "x" else f"<= {thr:g}x" if unit == "x (max)" else
                      (">= 0 pp" if key == "student_minus_teacher" else "> 0 pp")),
                     "status": "PASS" if ok else "MISS", "margin": margin, "value": value})
    return rows


def print_targets(args: argparse.Namespace, rows: list[dict[str, Any]]) -> None:
    log(args, "issue-6 targets:")
    for r in rows:
        print(f"    {r['status']:4s}  {r['description']}: measured {r['measured']} "
              f"(required {r['required']}; margin {r['margin']})", flush=True)


def core_targets(args: argparse.Namespace, data: Data, teacher: torch.nn.Module, model: torch.nn.Module,
                 epoch_time: float | None, *, seed: int = 0, kd_mlp_epoch: float | None = None,
                 n_timing: int = 200) -> tuple[dict[str, float], dict[str, Any]]:
    """The efficiency targets for a trained CNN2GNN ``model`` and its ``teacher``:
    Mechanism 2 vs 1 time per test sample, teacher/student FLOPs and CPU time per sample
    (batched, Mechanism 2 and bank), and CNN2GNN epoch (cached logits) / KD-MLP epoch
    (a 2-epoch KD-MLP run is timed here when ``kd_mlp_epoch`` is not given).
    Returns ``(targets, details)``."""
    from tg_cnn2gnn.teachers import flops_per_sample
    xs = data.xt[:min(n_timing, data.xt.size(0))]
    trained_teacher = teacher
    model, teacher = cpu_copy(model), cpu_copy(teacher)
    mech1 = predictor(model, data, "one_by_one", args.bank_size)
    mech2 = predictor(model, data, "batch", args.bank_size, args.batch_size)
    bank = predictor(model, data, "bank", args.bank_size)
    n1 = min(xs.size(0), 100)
    t1 = per_sample_seconds(mech1, xs[:n1], repeats=1)
    t2 = per_sample_seconds(mech2, xs, repeats=3)
    tb = per_sample_seconds(bank, xs, repeats=3)
    teacher.eval()
    with torch.no_grad():
        tt = per_sample_seconds(lambda x: teacher(x), xs, repeats=3)
    f_teacher = flops_per_sample(teacher, data.shape)
    f_mech2 = count_flops(lambda: mech2(xs)) / xs.size(0)
    f_bank = count_flops(lambda: bank(xs)) / xs.size(0)
    if kd_mlp_epoch is None and epoch_time is not None:
        mlp = build_model("mlp", args, data, seed=seed)
        quiet = args.quiet
        args.quiet = True
        try:
            _, s = train_model(args, data, mlp, trained_teacher, seed=seed, label="KD-MLP (timing)", epochs=2,
                               test_mechanisms=None)
        finally:
            args.quiet = quiet
        kd_mlp_epoch = s["mean_train_time_per_epoch"]
    details = {"mech1_s_per_sample": t1, "mech2_s_per_sample": t2, "bank_s_per_sample": tb,
               "teacher_s_per_sample": tt, "teacher_flops": f_teacher, "mech2_flops": f_mech2, "bank_flops": f_bank,
               "cnn2gnn_epoch_s": epoch_time, "kd_mlp_epoch_s": kd_mlp_epoch}
    targets = {"mech2_vs_mech1_speed": t1 / t2,
               "flops_teacher_over_student": f_teacher / f_mech2,
               "latency_teacher_over_student": tt / t2}
    if epoch_time is not None and kd_mlp_epoch:
        targets["epoch_cnn2gnn_over_kdmlp"] = epoch_time / kd_mlp_epoch
    return targets, details


def details_markdown(d: dict[str, Any]) -> str:
    """One paragraph with the raw measurements behind :func:`core_targets`."""
    parts = [f"Mechanism 1 {1e3 * d['mech1_s_per_sample']:.3f} ms/sample",
             f"Mechanism 2 {1e3 * d['mech2_s_per_sample']:.3f} ms/sample",
             f"bank {1e3 * d['bank_s_per_sample']:.3f} ms/sample",
             f"teacher {1e3 * d['teacher_s_per_sample']:.3f} ms/sample (all batched, 1 CPU thread)",
             f"FLOPs/sample: teacher {d['teacher_flops'] / 1e6:.2f} M, student Mechanism 2 "
             f"{d['mech2_flops'] / 1e6:.2f} M, student bank {d['bank_flops'] / 1e6:.2f} M"]
    if d.get("cnn2gnn_epoch_s") is not None and d.get("kd_mlp_epoch_s") is not None:
        parts.append(f"epoch: CNN2GNN (cached logits) {d['cnn2gnn_epoch_s']:.2f} s, KD-MLP {d['kd_mlp_epoch_s']:.2f} s")
    return "Measurements: " + "; ".join(parts) + "."


# ----------------------------------------------------------------------------- formatting
def mean_std(values: Iterable[float | None], scale: float = 100.0, digits: int = 2) -> str:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    m = statistics.mean(vals) * scale
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(vals) * scale:.{digits}f}"


def mstd(values: Iterable[float | None]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), float("nan")
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


def hardware() -> str:
    model = None
    try:
        out = subprocess.run(["lscpu"], capture_output=True, text=True, timeout=10).stdout
        for line in out.splitlines():
            if line.lower().startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except Exception:  # pragma: no cover
        pass
    model = model or platform.processor() or platform.machine()
    dev = "CPU"
    if torch.cuda.is_available():
        dev = f"GPU {torch.cuda.get_device_name(0)}"
    return (f"{model} ({os.cpu_count()} cores), {dev}, torch {torch.__version__}, "
            f"{torch.get_num_threads()} torch thread(s)")


def settings_line(args: argparse.Namespace, data: Data) -> str:
    return (f"{args.dataset}, `--{args.mode}`: {data.n_train} train / {data.va.numel()} val (stratified, split seed 0) / "
            f"{data.yt.numel()} test; teacher {args.teacher}"
            f"{f' (width {args.teacher_width})' if args.teacher == 'simple-cnn' else ''}, "
            f"{args.teacher_epochs} epochs (SGD lr {args.teacher_lr}, batch 128); student: anchor graph head "
            f"{tuple(args.head_hidden)} + 2-layer GCN (hidden {args.hidden}, dropout {args.dropout}), s = {args.s}, "
            f"{args.epochs} epochs, batch {args.batch_size}, {args.optimizer} (lr {args.lr}, or per method the best of "
            f"{args.lr_grid} on validation where the table says so; momentum 0.9, wd "
            f"{args.weight_decay}, cosine), alpha = {args.alpha}, tau = {args.tau} (tau² scaling), cached teacher "
            f"logits; bank of {args.bank_size} training samples; seeds {args.seeds}.")


class Report:
    """Collects Markdown sections, CSV tables and figures of one script run under ``out``."""

    def __init__(self, args: argparse.Namespace, title: str) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.sections: list[str] = []
        self.start = time.perf_counter()
        self.files: list[str] = []

    def add(self, text: str) -> None:
        self.sections.append(text.rstrip() + "\n")

    def csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        path = self.out / name
        keys: list[str] = []
        for r in rows:
            for k in r:
                if k not in keys:
                    keys.append(k)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        self.files.append(name)
        return path

    def figure(self, fig: Any, name: str, description: str, dpi: int = 80) -> Path:
        """Save a matplotlib figure as a small PNG with ``Title`` and ``Description`` text chunks."""
        import matplotlib.pyplot as plt
        path = self.out / name
        fig.savefig(path, dpi=dpi, bbox_inches="tight",
                    metadata={"Title": self.title, "Description": description,
                              "Software": "tg_cnn2gnn benchmarks"})
        plt.close(fig)
        self.sections.append(f"![{description}]({name})\n")
        self.files.append(name)
        return path

    def targets(self, rows: list[dict[str, Any]], note: str = "") -> None:
        print_targets(self.args, rows)
        self.csv(f"{self.args.script}_targets.csv", [{k: v for k, v in r.items()} for r in rows])
        self.add("### Issue-6 targets\n\n" + md_table(
            ["target", "measured", "required", "status", "margin"],
            [[r["description"], r["measured"], r["required"], r["status"], r["margin"]] for r in rows])
            + (f"\n\n{note}" if note else ""))

    def write(self) -> Path:
        wall = time.perf_counter() - self.start
        head = [f"## {self.title}", "", f"Command: `{self.args.command}`  ",
                f"Hardware: {hardware()}  ", f"Wall time: {wall / 60:.1f} min", ""]
        text = "\n".join(head) + "\n" + "\n".join(self.sections)
        path = self.out / f"{self.args.script}.md"
        path.write_text(text)
        (self.out / f"{self.args.script}_args.json").write_text(
            json.dumps({k: v for k, v in vars(self.args).items()}, indent=2, default=str) + "\n")
        print(text, flush=True)
        log(self.args, f"wrote {path} and {', '.join(self.files)} (wall {wall:.0f} s)")
        return path


def plt_setup() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt
