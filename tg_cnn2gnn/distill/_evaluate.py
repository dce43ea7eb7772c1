"""Evaluation pieces of the trainer: accuracy under a mechanism, accuracy of other weights,
and the teacher-logit cache (split over ranks under DDP)."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn

from tg_cnn2gnn.distill.ddp import DistContext, allreduce_sum
from tg_cnn2gnn.distill.teacher import compute_logits

#: ``(x [T, ...], y [T], features [T, F] | None)``
EvalData = tuple[Tensor, Tensor, "Tensor | None"]


def accuracy(distiller: nn.Module, data: EvalData, mechanism: str, train_x: Tensor | None, batch_size: int,
             bank_size: int, seed: int) -> float:
    """Top-1 accuracy of ``distiller.predict`` on ``data`` (one host read, at the end)."""
    x, y, f = data
    logits = distiller.predict(x, mechanism=mechanism, train_x=train_x, features=f, batch_size=batch_size,
                               bank_size=bank_size, seed=seed)
    return float((logits.argmax(-1).cpu() == y.cpu()).double().mean())


def accuracy_with(distiller: nn.Module, state: dict[str, Tensor], data: EvalData, mechanisms: Sequence[str],
                  train_x: Tensor | None, batch_size: int, bank_size: int, seed: int) -> dict[str, float]:
    """``{mechanism: accuracy}`` with the student's weights temporarily replaced by ``state``."""
    student = distiller.student
    current = {k: v.detach().clone() for k, v in student.state_dict().items()}
    try:
        student.load_state_dict(state)
        return {m: accuracy(distiller, data, m, train_x, batch_size, bank_size, seed) for m in mechanisms}
    finally:
        student.load_state_dict(current)


def cache_logits(teacher: nn.Module, images: Tensor, ctx: DistContext, batch_size: int, amp: bool) -> Tensor:
    """Teacher logits ``[N, C]`` for all training images, kept on ``ctx.device`` (each rank
    computes its share; all-reduced)."""
    bs = max(batch_size, 256)
    if not ctx.enabled:
        return compute_logits(teacher, images, batch_size=bs, device=ctx.device, amp=amp)
    n = images.size(0)
    rows = torch.arange(ctx.rank, n, ctx.world_size)
    part = compute_logits(teacher, images[rows], batch_size=bs, device=ctx.device, amp=amp)
    full = torch.zeros(n, part.size(1), dtype=part.dtype, device=ctx.device)
    full[rows.to(ctx.device)] = part
    return allreduce_sum(full)
