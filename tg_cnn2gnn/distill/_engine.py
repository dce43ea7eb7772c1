"""The epoch loop shared by teacher pre-training and distillation.

It owns: batches (:func:`~tg_cnn2gnn.distill.ddp.shard_batches`), the optimiser and LR
schedule steps, AMP (``torch.autocast`` + ``GradScaler`` on CUDA), gradient all-reduce
under DDP, per-epoch metrics, atomic checkpoints every epoch, the best-validation
checkpoint, and exact resume (model, optimiser, scheduler, scaler, every rank's RNG
states, epoch, metrics).
"""
from __future__ import annotations

import contextlib
import math
import time
import warnings
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from tg_cnn2gnn.distill._checks import resume_diff
from tg_cnn2gnn.distill.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tg_cnn2gnn.distill.ddp import (DistContext, allreduce_gradients, allreduce_sum, barrier,
                                    broadcast_buffers, broadcast_object, gather_objects, shard_batches)
from tg_cnn2gnn.distill.metrics import MetricsLogger
from tg_cnn2gnn.distill.seed import capture_rng_state, make_generator, restore_rng_state, seed_everything
from tg_cnn2gnn.functional._checks import check_choice, check_positive_int

#: LR schedules understood by the loops.
SCHEDULERS: tuple[str, ...] = ("cosine", "step", "none")

#: ``callback(epoch, row)`` after each epoch's checkpoint is written.
Callback = Callable[[int, dict[str, Any]], None]


def build_scheduler(optimizer: Optimizer, name: str, epochs: int, step_size: int | None = None,
                    gamma: float = 0.1) -> torch.optim.lr_scheduler.LRScheduler | None:
    """``"cosine"``: cosine annealing to 0 over ``epochs``; ``"step"``: multiply by ``gamma``
    every ``step_size`` epochs (default ``max(1, epochs // 3)``); ``"none"``: constant."""
    check_choice("scheduler", name, SCHEDULERS)
    if name == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs))
    if name == "step":
        step_size = max(1, epochs // 3) if step_size is None else check_positive_int("step_size", step_size)
        return torch.optim.lr_scheduler.StepLR(optimizer, step_size=step_size, gamma=gamma)
    return None


def load_optimizer_state(optimizer: Optimizer, state: dict[str, Any]) -> None:
    """``optimizer.load_state_dict(state)``, then undo its cast of non-floating state tensors.

    ``Optimizer.load_state_dict`` casts every state tensor of a floating parameter to the
    parameter's dtype; boolean/integer bookkeeping tensors (e.g. ``LazySGD``'s ``seen``
    mask) must keep their dtype for the next step to behave as before the checkpoint.
    """
    optimizer.load_state_dict(state)
    saved = state.get("state", {})
    params = [p for g in optimizer.param_groups for p in g["params"]]
    for pid, entries in saved.items():
        if not isinstance(entries, dict) or int(pid) >= len(params):
            continue
        live = optimizer.state.get(params[int(pid)])
        if live is None:
            continue
        for key, value in entries.items():
            if isinstance(value, Tensor) and not value.is_floating_point() and key in live \
                    and isinstance(live[key], Tensor) and live[key].dtype != value.dtype:
                live[key] = value.to(device=live[key].device)


class TrainLoop:
    """One training run: see the module docstring.

    Args:
        module: the trained module (its ``state_dict`` is checkpointed).
        params: its trainable parameters (gradients are all-reduced under DDP).
        optimizer / scheduler: built by the caller.
        ctx: process placement.
        amp: mixed precision (CUDA only).
        out_dir: folder for ``{prefix}checkpoint.pt``, ``{prefix}best.pt``, ``{prefix}metrics.csv``.
        prefix: file name prefix (``""`` for the distiller, ``"teacher_"`` for the teacher).
        kind: checkpoint kind.
        config: plain values that must match on resume.
        train_mode: puts the module in training mode (the distiller keeps its teacher in eval).
        epoch_start: ``epoch_start(epoch)`` before each epoch's first step (after ``train_mode``).
    """

    def __init__(self, *, module: nn.Module, params: Sequence[Tensor], optimizer: Optimizer,
                 scheduler: torch.optim.lr_scheduler.LRScheduler | None, ctx: DistContext, amp: bool,
                 out_dir: str | Path | None, prefix: str, kind: str, config: dict[str, Any],
                 progress: bool = True, tensorboard: bool | str = "auto", callbacks: Iterable[Callback] = (),
                 train_mode: Callable[[], None] | None = None, desc: str = "train",
                 epoch_start: Callable[[int], None] | None = None) -> None:
        self.module = module
        self.params = list(params)
        self.optimizer = optimizer
        self.scheduler = scheduler
        self.ctx = ctx
        self.amp = bool(amp) and ctx.device.type == "cuda"
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.prefix = prefix
        self.kind = kind
        self.config = dict(config)
        self.progress = progress
        self.tensorboard = tensorboard
        self.callbacks = list(callbacks)
        self.train_mode = train_mode or (lambda: module.train())
        self.desc = desc
        self.epoch_start = epoch_start
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp)

    # ------------------------------------------------------------------ files
    @property
    def checkpoint_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / f"{self.prefix}checkpoint.pt"

    @property
    def best_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / f"{self.prefix}best.pt"

    def autocast(self) -> contextlib.AbstractContextManager:
        if self.amp:
            return torch.autocast("cuda", dtype=torch.float16)
        return contextlib.nullcontext()

    # ------------------------------------------------------------------ resume
    def _restore(self) -> dict[str, Any]:
        path = self.checkpoint_path
        ckpt = load_checkpoint(path, kind=self.kind, map_location="cpu")
        old = ckpt.get("config", {})
        diff = resume_diff(old if isinstance(old, dict) else {}, self.config)
        if diff:
            raise ValueError(f"cannot resume from {str(path)!r}: the run's settings differ (checkpoint -> now: "
                             f"{'; '.join(diff)}). Resume with the same settings or start a fresh run "
                             "(resume=False or another out_dir)")
        try:
            self.module.load_state_dict(ckpt["model"])
            load_optimizer_state(self.optimizer, ckpt["optimizer"])
            if self.scheduler is not None and ckpt.get("scheduler") is not None:
                self.scheduler.load_state_dict(ckpt["scheduler"])
            if ckpt.get("scaler"):
                self.scaler.load_state_dict(ckpt["scaler"])
            rng = ckpt["rng"]
        except (KeyError, RuntimeError, ValueError, TypeError) as e:
            raise CheckpointError(f"checkpoint file {str(path)!r} does not fit this model/optimizer "
                                  f"({type(e).__name__}: {str(e).splitlines()[0][:300]})") from None
        restore_rng_state(rng[self.ctx.rank])
        return ckpt

    # ------------------------------------------------------------------ run
    def run(self, source: Any, step: Callable[..., tuple[Tensor, dict[str, Tensor], Tensor]],
            validate: Callable[[], float] | None, *, epochs: int, batch_size: int, seed: int,
            tail: str = "merge", resume: bool = False, balanced: bool = False) -> dict[str, Any]:
        """Train for ``epochs`` (or what remains of them after a resume).

        ``step(images, labels, features, positions) -> (loss, parts, logits)``: one batch's
        loss (float32 scalar), detached scalar parts to log, and the logits (for accuracy).
        ``validate() -> accuracy`` runs on rank 0 only. Returns the metrics history and the
        best validation epoch.
        """
        ctx = self.ctx
        rows: list[dict[str, Any]] = []
        best = {"epoch": None, "val_acc": -math.inf}
        start = 0
        resumed_from = None
        if resume:
            if self.out_dir is None:
                raise ValueError("resume=True needs out_dir (the folder holding the checkpoint)")
            if self.checkpoint_path.is_file():
                ckpt = self._restore()
                rows = list(ckpt.get("metrics", []))
                best = dict(ckpt.get("best", best))
                if best.get("val_acc") is None:
                    best["val_acc"] = -math.inf
                start = int(ckpt["epoch"]) + 1
                resumed_from = int(ckpt["epoch"])
            else:
                seed_everything(seed + ctx.rank)
        else:
            seed_everything(seed + ctx.rank)

        logger = MetricsLogger(self.out_dir, f"{self.prefix}metrics", enabled=ctx.is_main,
                               tensorboard=self.tensorboard, rows=rows)
        n = len(source)
        class_labels = source.y if balanced else None
        try:
            for epoch in range(start, epochs):
                row = self._epoch(source, step, validate, epoch, epochs, n, batch_size, seed, tail, class_labels)
                if row["val_acc"] is not None and row["val_acc"] > best["val_acc"]:
                    best = {"epoch": epoch, "val_acc": row["val_acc"]}
                    if ctx.is_main and self.best_path is not None:
                        save_checkpoint({"model": self.module.state_dict(), "epoch": epoch,
                                         "val_acc": row["val_acc"], "config": self.config},
                                        self.best_path, kind=f"{self.kind}-best")
                row["best_epoch"] = best["epoch"]
                logger.log(row)
                rng = gather_objects(capture_rng_state())
                if ctx.is_main and self.checkpoint_path is not None:
                    save_checkpoint({
                        "model": self.module.state_dict(),
                        "optimizer": self.optimizer.state_dict(),
                        "scheduler": None if self.scheduler is None else self.scheduler.state_dict(),
                        "scaler": self.scaler.state_dict() if self.amp else None,
                        "epoch": epoch, "rng": rng, "metrics": logger.rows,
                        "best": {"epoch": best["epoch"],
                                 "val_acc": None if best["val_acc"] == -math.inf else best["val_acc"]},
                        "config": self.config,
                    }, self.checkpoint_path, kind=self.kind)
                barrier()
                for cb in self.callbacks:
                    cb(epoch, row)
        finally:
            logger.close()
        return {"history": logger.rows, "best_epoch": best["epoch"],
                "best_val_acc": None if best["val_acc"] == -math.inf else best["val_acc"],
                "resumed_from": resumed_from}

    def _epoch(self, source: Any, step: Callable, validate: Callable[[], float] | None, epoch: int,
               epochs: int, n: int, batch_size: int, seed: int, tail: str,
               class_labels: Tensor | None = None) -> dict[str, Any]:
        ctx = self.ctx
        batches = shard_batches(n, batch_size, seed=seed, epoch=epoch, rank=ctx.rank,
                                world_size=ctx.world_size, tail=tail, labels=class_labels)
        lr = self.optimizer.param_groups[0]["lr"]
        self.train_mode()
        if self.epoch_start is not None:
            self.epoch_start(epoch)
        sums: dict[str, Tensor] = {}
        # Sync-free step (issue 14): nothing below reads a device value on the host until the
        # epoch ends; a non-finite loss raises a device flag that is checked then.
        bad_step = torch.full((), -1, dtype=torch.long, device=ctx.device)
        correct = torch.zeros((), dtype=torch.float64, device=ctx.device)
        count = torch.zeros((), dtype=torch.float64, device=ctx.device)
        t0 = time.perf_counter()
        loader_seed = int(torch.randint(0, 2 ** 62, (1,), generator=make_generator(seed, epoch, 7 + ctx.rank)))
        it = source.iterate(batches, ctx.device, loader_seed)
        bar = None
        if self.progress and ctx.is_main:
            from tqdm.auto import tqdm
            bar = tqdm(it, total=len(batches), desc=f"{self.desc} {epoch + 1}/{epochs}", leave=False,
                       dynamic_ncols=True)
            it = bar
        for i, (images, labels, feats, pos) in enumerate(it):
            self.optimizer.zero_grad(set_to_none=True)
            with self.autocast():
                loss, parts, logits = step(images, labels, feats, pos)
            if not self.amp:    # under AMP the grad scaler skips non-finite steps itself
                bad_step = torch.where((bad_step < 0) & ~torch.isfinite(loss.detach()), i, bad_step)
            self.scaler.scale(loss).backward()
            if ctx.enabled:
                allreduce_gradients(self.params, ctx.world_size)
            self.scaler.step(self.optimizer)
            self.scaler.update()
            b = float(labels.numel())
            for k, v in parts.items():
                sums[k] = sums.get(k, torch.zeros((), dtype=torch.float64, device=ctx.device)) \
                    + v.detach().double() * b
            correct += (logits.detach().argmax(-1) == labels).sum()
            count += b
        if bar is not None:
            bar.close()
        if int(bad_step) >= 0:
            raise FloatingPointError(f"non-finite loss at epoch {epoch}, step {int(bad_step)}; "
                                     "lower the learning rate or tau")
        if self.scheduler is not None:
            self.scheduler.step()
        if ctx.enabled:
            broadcast_buffers(self.module)
        keys = sorted(sums)
        totals = allreduce_sum(torch.stack([sums[k] for k in keys] + [correct, count]))
        train_time = time.perf_counter() - t0
        t1 = time.perf_counter()
        val_acc = None
        if validate is not None:
            val_acc = validate() if ctx.is_main else None
            val_acc = broadcast_object(val_acc)
        val_time = time.perf_counter() - t1
        total_count = float(totals[-1])
        row: dict[str, Any] = {"epoch": epoch, "lr": lr}
        for k, v in zip(keys, totals[:-2].tolist()):
            row[k] = v / max(total_count, 1.0)
        row["train_acc"] = float(totals[-2]) / max(total_count, 1.0)
        row["val_acc"] = val_acc
        row["train_time"] = train_time
        row["val_time"] = val_time
        row["steps"] = len(batches)
        return row


def warn_cpu_amp(amp: bool, device: torch.device) -> None:
    if amp and device.type != "cuda":
        warnings.warn("amp=True only takes effect on CUDA; training in float32 on "
                      f"{device.type}", RuntimeWarning, stacklevel=3)
