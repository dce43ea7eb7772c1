"""The CNN teacher: pre-training with cross-entropy (paper Algorithm 2, line 3),
loading a checkpoint, freezing, batched logits and accuracy."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from tg_cnn2gnn.distill._checks import check_float, check_images, check_labels
from tg_cnn2gnn.distill._data import DatasetSource, TensorSource, as_eval_data
from tg_cnn2gnn.distill._engine import Callback, TrainLoop, build_scheduler, warn_cpu_amp
from tg_cnn2gnn.distill.checkpoint import (CheckpointError, extract_state_dict, load_checkpoint,
                                           save_checkpoint)
from tg_cnn2gnn.distill.ddp import setup_distributed
from tg_cnn2gnn.functional._checks import check_choice, check_positive_int

#: Optimisers of :func:`pretrain_teacher`.
TEACHER_OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")


def freeze(module: nn.Module) -> nn.Module:
    """``requires_grad=False`` on every parameter and eval mode; returns ``module``."""
    for p in module.parameters():
        p.requires_grad_(False)
    return module.eval()


@torch.no_grad()
def compute_logits(module: nn.Module, x: Tensor, *, batch_size: int = 256, device: torch.device | str | None = None,
                   amp: bool = False) -> Tensor:
    """``module(x)`` in eval mode without gradients, ``batch_size`` samples at a time.

    Args:
        module: any ``nn.Module`` mapping ``[B, ...]`` to logits ``[B, C]``.
        x: ``[N, ...]`` inputs (any device; batches are moved to ``device``).
        device: default: the module's device.

    Returns:
        ``[N, C]`` float32 logits on ``device``. The module's train/eval mode is restored.
    """
    check_positive_int("batch_size", batch_size)
    dev = torch.device(device) if device is not None else _module_device(module)
    was_training = module.training
    module.eval()
    try:
        outs = []
        for a in range(0, x.size(0), batch_size):
            xb = x[a:a + batch_size].to(dev)
            with (torch.autocast("cuda", dtype=torch.float16) if amp and dev.type == "cuda"
                  else torch.autocast(dev.type, enabled=False)):
                outs.append(module(xb).float())
        return torch.cat(outs)
    finally:
        module.train(was_training)


def accuracy(module: nn.Module, x: Tensor, y: Tensor, *, batch_size: int = 256,
             device: torch.device | str | None = None) -> float:
    """Top-1 accuracy of ``module`` (eval mode, no grad) on ``x [N, ...]``, ``y [N]``."""
    logits = compute_logits(module, x, batch_size=batch_size, device=device)
    return float((logits.argmax(-1).cpu() == y.cpu()).double().mean())


def _module_device(module: nn.Module) -> torch.device:
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def load_teacher(teacher: nn.Module, path: str | os.PathLike, *, strict: bool = True) -> nn.Module:
    """Load weights into ``teacher`` from ``path``, safely (``weights_only=True``).

    Accepts a checkpoint written by :func:`pretrain_teacher` (``teacher.pt``, or its
    ``teacher_checkpoint.pt``/``teacher_best.pt``), or a user's file holding a state dict
    (bare, or under ``"state_dict"``, ``"model_state_dict"``, ``"model"`` or ``"net"``;
    a ``"module."`` prefix left by DataParallel/DDP is stripped).

    Raises:
        CheckpointError: the file is missing, corrupt, unsafe (pickled objects) or holds
            weights that do not fit ``teacher`` (the message names the file).
    """
    obj = load_checkpoint(path, map_location="cpu")
    state = extract_state_dict(obj, path)
    if state and all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    try:
        teacher.load_state_dict(state, strict=strict)
    except RuntimeError as e:
        raise CheckpointError(f"checkpoint file {str(path)!r} does not fit the teacher "
                              f"{type(teacher).__name__}: {str(e).splitlines()[0][:300]}"
                              + (" ..." if len(str(e)) > 300 else "")) from None
    return teacher


def pretrain_teacher(teacher: nn.Module, x: Tensor | Dataset, y: Tensor | None = None, *,
                     epochs: int = 30, batch_size: int = 128, optimizer: str = "sgd", lr: float = 0.05,
                     momentum: float = 0.9, weight_decay: float = 5e-4, scheduler: str = "cosine",
                     step_size: int | None = None, gamma: float = 0.1, label_smoothing: float = 0.0,
                     augment: Callable[[Tensor], Tensor] | None = None,
                     val: tuple[Tensor, Tensor] | Dataset | None = None, out_dir: str | os.PathLike | None = None,
                     resume: bool = False, seed: int = 0, device: str | torch.device | None = None,
                     amp: bool = False, distributed: bool | str = "auto", progress: bool = True,
                     tensorboard: bool | str = "auto", num_workers: int = 0,
                     callbacks: Iterable[Callback] = ()) -> dict[str, Any]:
    r"""Train the CNN teacher with cross-entropy (paper Algorithm 2, line 3).

    Every epoch the loop writes ``out_dir/teacher_checkpoint.pt`` (atomically; model,
    optimiser, scheduler, RNG states, metrics) and ``teacher_metrics.csv``; with ``val``,
    the best-validation weights go to ``teacher_best.pt``. At the end the final weights
    are written to ``out_dir/teacher.pt`` (load them with :func:`load_teacher`).
    ``resume=True`` continues a killed run from ``teacher_checkpoint.pt``, exactly.

    Args:
        teacher: the CNN (any ``nn.Module`` returning logits); trained in place, left in
            eval mode with the *last* epoch's weights.
        x: training images ``[N, C, H, W]``, or a map-style Dataset of
            ``(image, label[, index])``.
        y: labels ``[N]`` (tensor input only).
        epochs, batch_size, optimizer (``"sgd"``, ``"adam"``, ``"adamw"``), lr, momentum,
        weight_decay, scheduler (``"cosine"``, ``"step"``, ``"none"``), step_size, gamma:
            the usual.
        label_smoothing: of the cross-entropy.
        augment: ``callable(images [B, C, H, W]) -> images`` applied to each training batch
            (tensor input), e.g. ``partial(tg_cnn2gnn.data.augment_batch, name="cifar10")``.
        val: ``(x_val, y_val)`` or a Dataset; its accuracy is logged every epoch.
        out_dir: folder for files (``None``: nothing is written, no resume).
        seed: seeds torch/NumPy/random and the shuffling.
        device: default CUDA when available, else CPU. Under ``torchrun`` the ranks
            split every epoch and all-reduce gradients (see :mod:`tg_cnn2gnn.distill.ddp`).
        amp: float16 autocast + GradScaler on CUDA.

    Returns:
        ``{"history": [per-epoch rows], "best_epoch", "best_val_acc", "val_acc" (last),
        "path": teacher.pt or None}``.
    """
    if not isinstance(teacher, nn.Module):
        raise TypeError(f"teacher must be an nn.Module, got {type(teacher).__name__}")
    check_positive_int("epochs", epochs)
    check_positive_int("batch_size", batch_size)
    check_choice("optimizer", optimizer, TEACHER_OPTIMIZERS)
    check_float("lr", lr, inclusive=False)
    check_float("momentum", momentum)
    check_float("weight_decay", weight_decay)
    check_float("label_smoothing", label_smoothing)
    ctx = setup_distributed(distributed, device)
    warn_cpu_amp(amp, ctx.device)
    teacher.to(ctx.device)
    for p in teacher.parameters():
        p.requires_grad_(True)

    if isinstance(x, Dataset):
        if y is not None:
            raise ValueError("y must be None when x is a Dataset (labels come from the dataset)")
        if augment is not None:
            raise ValueError("augment applies to tensor input; put augmentation in the Dataset's transform")
        source: Any = DatasetSource(x, torch.arange(len(x)), num_workers)  # type: ignore[arg-type]
    else:
        x = check_images("x", x)
        y = check_labels("y", y, x.size(0))
        source = TensorSource(x, y)
    val_data = as_eval_data("val", val) if val is not None else None

    params = [p for p in teacher.parameters() if p.requires_grad]
    if optimizer == "sgd":
        opt: torch.optim.Optimizer = torch.optim.SGD(params, lr=lr, momentum=momentum,
                                                     weight_decay=weight_decay, nesterov=momentum > 0)
    elif optimizer == "adam":
        opt = torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
    else:
        opt = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    sched = build_scheduler(opt, scheduler, epochs, step_size, gamma)

    def step(images: Tensor, labels: Tensor, feats: Tensor | None, pos: Tensor):
        if augment is not None:
            images = augment(images)
        logits = teacher(images)
        loss = F.cross_entropy(logits.float(), labels, label_smoothing=label_smoothing)
        return loss, {"loss": loss.detach()}, logits

    def validate() -> float:
        return accuracy(teacher, val_data[0], val_data[1], device=ctx.device)

    config = {"n": len(source), "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
              "momentum": momentum, "weight_decay": weight_decay, "scheduler": scheduler, "seed": seed,
              "world_size": ctx.world_size, "label_smoothing": label_smoothing, "augment": augment is not None}
    loop = TrainLoop(module=teacher, params=params, optimizer=opt, scheduler=sched, ctx=ctx, amp=amp,
                     out_dir=out_dir, prefix="teacher_", kind="teacher-run", config=config, progress=progress,
                     tensorboard=tensorboard, callbacks=callbacks, desc="teacher")
    result = loop.run(source, step, validate if val_data is not None else None, epochs=epochs,
                      batch_size=batch_size, seed=seed, tail="keep", resume=resume)
    teacher.eval()
    path = None
    if out_dir is not None and ctx.is_main:
        path = save_checkpoint({"model": teacher.state_dict(), "epochs": epochs, "history": result["history"]},
                               Path(out_dir) / "teacher.pt", kind="teacher")
    result["path"] = None if path is None else str(path)
    hist = result["history"]
    result["val_acc"] = hist[-1]["val_acc"] if hist else None
    return result
