"""Model size and cost: parameter counts and FLOPs per sample."""
from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode


def count_parameters(model: nn.Module, *, trainable_only: bool = False) -> int:
    """Number of scalar parameters of ``model`` (shared parameters counted once).

    Args:
        model (torch.nn.Module): any module.
        trainable_only (bool): count only parameters with ``requires_grad``.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


def flops_per_sample(model: nn.Module, input_shape: Sequence[int], *, dtype: torch.dtype = torch.float32) -> int:
    r"""Forward FLOPs of ``model`` for one input of shape ``input_shape`` (no batch dimension).

    Counted by :class:`torch.utils.flop_counter.FlopCounterMode` on a batch of one
    zero input in eval mode under ``no_grad``: matrix products and convolutions
    count two FLOPs per multiply-add (a :math:`(M \times K) \cdot (K \times N)`
    product is :math:`2MKN`); element-wise operations, bias additions,
    normalisation, activations and pooling count zero. The model's train/eval
    mode is restored afterwards.

    Args:
        model (torch.nn.Module): any module taking one tensor.
        input_shape (sequence of int): e.g. ``(3, 32, 32)`` for images or ``(F,)`` for vectors.
        dtype (torch.dtype): dtype of the probe input.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module, got {type(model).__name__}")
    shape = tuple(input_shape) if isinstance(input_shape, Sequence) and not isinstance(input_shape, str) else None
    if not shape or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in shape):
        raise ValueError(f"input_shape must be a non-empty sequence of positive ints without the batch "
                         f"dimension, e.g. (3, 32, 32); got {input_shape!r}")
    param = next(model.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    x = torch.zeros((1, *shape), dtype=dtype, device=device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            model(x)
    finally:
        model.train(was_training)
    return int(counter.get_total_flops())
