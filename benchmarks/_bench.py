"""The experiments shared by the paper-reproduction benchmarks (Tables 1-3, Figures 3-6).

Every script in ``benchmarks/`` builds its arguments with :func:`parser` / :func:`finish_args`
(``--quick``, the default, or ``--full``, the paper's setting, read from
``configs/benchmarks/quick.yaml`` / ``full.yaml``; any explicit option wins over the preset),
loads data with :func:`load_data` (the run layer's split), gets a teacher with
:func:`get_teacher` (the run layer's teacher cache, one run directory per teacher under
``--teacher-cache``, so the scripts share teachers), trains students with :func:`train_model`
(the run layer's :func:`~tg_cnn2gnn.run.factories.train_student`), measures the issue-6
targets with :func:`core_targets` (:mod:`tg_cnn2gnn.run.measure`), and writes its outputs
with a :class:`_report.Report`. What stays here is the experiment: what to vary and compare.
"""
from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Sequence

import torch

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(Path(__file__).resolve().parent)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

from _report import (TARGETS, Report, details_markdown, log, md_table, mean_std, mstd,  # noqa: E402,F401
                     plt_setup, target_rows)

from tg_cnn2gnn.run.config import Settings  # noqa: E402
from tg_cnn2gnn.run.data import RunData, split_data  # noqa: E402
from tg_cnn2gnn.run.factories import build_student_model, train_student  # noqa: E402
from tg_cnn2gnn.run.measure import (count_flops, cpu_copy, logits_accuracy, median_time,  # noqa: E402,F401
                                     single_sample_seconds)

PRESETS = ROOT / "configs" / "benchmarks"


def preset(mode: str) -> dict[str, Any]:
    """``{"common": {...}, "datasets": {name: {...}, "_default": {...}}}`` of ``configs/benchmarks/<mode>.yaml``."""
    from tg_cnn2gnn.run.configfile import read_mapping
    from tg_cnn2gnn.run.config import SettingsError
    data = read_mapping(PRESETS / f"{mode}.yaml")
    if not isinstance(data.get("common"), dict) or not isinstance(data.get("datasets"), dict):
        raise SettingsError(f"config file {PRESETS / (mode + '.yaml')}: expected 'common' and 'datasets' mappings")
    return data


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
    presets = preset(args.mode)
    values: dict[str, Any] = dict(presets["common"])
    per = presets["datasets"]
    values.update(per.get(args.dataset, per["_default"]))
    values.update((overrides or {}).get(args.mode, {}))
    values.update((overrides or {}).get(f"{args.mode}:{args.dataset}", {}))
    for k, v in values.items():
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


def settings(args: argparse.Namespace, seed: int = 0, **changes: Any) -> Settings:
    """The run layer's :class:`Settings` of a benchmark run (``changes`` on top): the options
    the run layer's data, teacher, student and trainer read."""
    values = dict(dataset=args.dataset, root=args.root, subset=args.n_train or None, val_fraction=args.val_fraction,
                  split_seed=0, teacher=args.teacher,
                  teacher_width=args.teacher_width if args.teacher == "simple-cnn" else None,
                  teacher_epochs=args.teacher_epochs, teacher_lr=args.teacher_lr, teacher_batch_size=128,
                  s=args.s, head_hidden=tuple(args.head_hidden), hidden=args.hidden, dropout=args.dropout,
                  epochs=args.epochs, batch_size=args.batch_size, optimizer=args.optimizer, lr=args.lr,
                  momentum=0.9, weight_decay=args.weight_decay, scheduler="cosine", alpha=args.alpha, tau=args.tau,
                  kd_scale="tau2", bank_size=args.bank_size, eval_batch_size=args.batch_size,
                  device=args.device, seed=seed, progress=False, measure=False)
    values.update(changes)
    return Settings(**values)


# ----------------------------------------------------------------------------- data
@dataclass
class Data:
    """The run layer's :class:`~tg_cnn2gnn.run.data.RunData` under the scripts' short names."""

    run: RunData

    x = property(lambda self: self.run.x)            # [N, C, H, W] training images (train + val parts)
    y = property(lambda self: self.run.y)
    xt = property(lambda self: self.run.x_test)      # test images
    yt = property(lambda self: self.run.y_test)
    tr = property(lambda self: self.run.train_idx)   # positions of the training part in x
    va = property(lambda self: self.run.val_idx)
    num_classes = property(lambda self: self.run.info.num_classes)
    shape = property(lambda self: tuple(self.run.x.shape[1:]))
    features = property(lambda self: self.run.in_features)
    n_train = property(lambda self: self.run.n_train)
    train_x = property(lambda self: self.run.train_features)   # [n_train, F], row k = training id k


def load_data(args: argparse.Namespace) -> Data:
    """Normalised tensors; the run layer's class-stratified training subset of ``n_train``
    and train/validation split (``split_seed=0``); the first ``n_test`` test samples."""
    from tg_cnn2gnn.data import dataset_info, load_tensors
    x, y = load_tensors(args.dataset, "train", args.root)
    xt, yt = load_tensors(args.dataset, "test", args.root)
    if args.n_test and args.n_test < yt.numel():
        xt, yt = xt[:args.n_test], yt[:args.n_test]
    return Data(split_data(x, y, xt, yt, dataset_info(args.dataset), subset=args.n_train or None,
                           val_fraction=args.val_fraction, split_seed=0))


# ----------------------------------------------------------------------------- teacher
def _teacher_key(args: argparse.Namespace, data: Data, seed: int) -> str:
    spec = dict(dataset=args.dataset, teacher=args.teacher, width=args.teacher_width, epochs=args.teacher_epochs,
                lr=args.teacher_lr, n=int(data.y.numel()), val=args.val_fraction, seed=seed,
                ysum=int(data.y.sum()), v=2)
    h = hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]
    return f"{args.dataset}_{args.teacher}{args.teacher_width or ''}_e{args.teacher_epochs}_s{seed}_{h}"


def get_teacher(args: argparse.Namespace, data: Data, seed: int) -> tuple[torch.nn.Module, dict[str, Any]]:
    """A teacher pre-trained with cross-entropy on the training part (never on val or test)
    by the run layer's :func:`~tg_cnn2gnn.run.teacher_cache.obtain_teacher`, kept in a run
    directory per teacher under ``--teacher-cache`` ('' = a temporary one) and reused from there."""
    import tempfile
    from tg_cnn2gnn.distill import accuracy
    from tg_cnn2gnn.run.rundir import RunDir
    from tg_cnn2gnn.run.teacher_cache import obtain_teacher
    tmp = None
    if args.teacher_cache:
        run_dir = RunDir(Path(args.teacher_cache) / _teacher_key(args, data, seed))
    else:
        tmp = tempfile.TemporaryDirectory()
        run_dir = RunDir(tmp.name)
    s = settings(args, seed)
    quiet = getattr(args, "quiet", False)
    teacher, info = obtain_teacher(s, data.run, run_dir, log=(lambda m: None) if quiet else (lambda m: log(args, m)))
    train_time = info.get("train_time_s") or 0.0
    meta = {"test_acc": accuracy(teacher, data.xt, data.yt, device=args.device),
            "val_acc": accuracy(teacher, data.x[data.va], data.y[data.va], device=args.device),
            "train_time": train_time, "epochs": args.teacher_epochs, "time_per_epoch": train_time / args.teacher_epochs,
            "source": info["source"]}
    log(args, f"seed {seed}: teacher {args.teacher} ({info['source']}) test acc {meta['test_acc']:.4f}")
    if tmp is not None:
        tmp.cleanup()
    return teacher.to(args.device), meta


# ----------------------------------------------------------------------------- students
MODEL_KINDS = ("cnn2gnn", "mlp", "ingnn", "eucgnn")


def build_model(kind: str, args: argparse.Namespace, data: Data, *, s: int | None = None,
                hidden: int | None = None, seed: int = 0) -> torch.nn.Module:
    """``cnn2gnn`` / ``mlp``: the run layer's students (anchor graph head + 2-layer GCN; the
    MLP with the GCN's widths); ``ingnn`` / ``eucgnn``: the GCN on a fixed inner-product /
    Euclidean Eq. 3 graph of the pixels (benchmark baselines). Seeded with ``seed``."""
    from tg_cnn2gnn.nn import EucGNN, GraphStudent, InGNN
    s = args.s if s is None else s
    hidden = args.hidden if hidden is None else hidden
    torch.manual_seed(seed)
    if kind in ("cnn2gnn", "mlp"):
        cfg = settings(args, seed, s=s, hidden=hidden, student="gnn" if kind == "cnn2gnn" else "mlp")
        return build_student_model(cfg, data.n_train, data.features, data.num_classes)
    student = GraphStudent(data.features, hidden, data.num_classes, dropout=args.dropout)
    if kind == "ingnn":
        return InGNN(student, s=s)
    if kind == "eucgnn":
        return EucGNN(student, s=s)
    raise ValueError(f"unknown model kind {kind!r}; one of {MODEL_KINDS}")


def train_model(args: argparse.Namespace, data: Data, model: torch.nn.Module, teacher: torch.nn.Module | None, *,
                seed: int, label: str, loss: str = "kd", alpha: float | None = None, tau: float | None = None,
                epochs: int | None = None, batch_size: int | None = None, lr: float | None = None,
                test_mechanisms: Sequence[str] | None = ("bank", "batch"), val_mechanism: str = "bank",
                cache: bool = True) -> tuple[torch.nn.Module, dict[str, Any]]:
    """Train ``model`` with :func:`~tg_cnn2gnn.run.factories.train_student`: ``loss="kd"``
    (CE + alpha KL; ``alpha = 0``: cross-entropy only) or ``"dkd"`` (DKD, warm-up over a tenth
    of the epochs). Returns ``(model, summary)`` with ``wall_time`` and ``lr`` added."""
    alpha = args.alpha if alpha is None else alpha
    epochs = args.epochs if epochs is None else epochs
    lr = args.lr if lr is None else lr
    cfg = settings(args, seed, alpha=alpha, tau=args.tau if tau is None else tau, epochs=epochs, lr=lr,
                   batch_size=args.batch_size if batch_size is None else batch_size,
                   method="dkd" if loss == "dkd" else "cnn2gnn", warmup_epochs=max(1, epochs // 10),
                   dkd_alpha=1.0, dkd_beta=8.0, mechanisms=tuple(test_mechanisms or ("bank",)),
                   val_mechanism=val_mechanism, cache_teacher_logits=cache)
    cfg = cfg.replace(eval_batch_size=cfg.batch_size)
    cb = []
    if not args.quiet:
        def progress(e: int, row: dict[str, Any]) -> None:
            if e + 1 == epochs or (e + 1) % max(1, epochs // 5) == 0:
                log(args, f"  {label} seed {seed} epoch {e + 1}/{epochs}: loss {row.get('loss', float('nan')):.4f} "
                          f"train acc {row['train_acc']:.4f} val acc {row.get('val_acc') or 0:.4f} "
                          f"({row['train_time']:.1f} s)")
        cb.append(progress)
    summary = train_student(cfg, data.run, teacher, model, None, callbacks=cb, test=bool(test_mechanisms))
    summary["wall_time"] = summary["train_time_s"]
    summary["lr"] = lr
    if test_mechanisms:
        log(args, f"{label} seed {seed}: test (last) " + ", ".join(
            f"{m} {summary['test']['last'][m]:.4f}" for m in test_mechanisms)
            + f"; {summary['mean_train_time_per_epoch']:.2f} s/epoch")
    return model, summary


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



def per_sample_seconds(fn: Callable[[torch.Tensor], Any], x: torch.Tensor, repeats: int = 3) -> float:
    """Median wall time of ``fn(x)`` divided by ``len(x)``."""
    return median_time(lambda: fn(x), repeats=repeats) / x.size(0)


def accuracy_of(logits: torch.Tensor, y: torch.Tensor) -> float:
    return logits_accuracy(logits, y)


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

