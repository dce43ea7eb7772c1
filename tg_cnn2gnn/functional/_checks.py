"""Argument checks shared by the functional core: one clear error per bad input."""
from __future__ import annotations

import torch
from torch import Tensor


def check_matrix(name: str, value: object) -> Tensor:
    """``value`` must be a 2-D floating tensor without NaN (``+inf`` is allowed)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D [N, M], got a tensor of shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if torch.isnan(value).any():
        n_bad = int(torch.isnan(value).sum())
        raise ValueError(f"{name} contains {n_bad} NaN value(s); distances and features must be numbers")
    return value


def check_sparsity(s: object, candidates: int, *, what: str = "candidate columns") -> int:
    """``s`` must be an int in ``[1, candidates - 1]`` (Eq. 3 needs the (s+1)-th neighbour)."""
    if isinstance(s, bool) or not isinstance(s, int):
        raise TypeError(f"s must be an int, got {s!r} ({type(s).__name__})")
    limit = candidates - 1
    if s < 1 or s > limit:
        raise ValueError(
            f"s={s} is out of range: Eq. 3 needs the (s+1)-th nearest neighbour, so s must "
            f"satisfy 1 <= s <= {limit} ({candidates} {what} - 1)")
    return s


def check_choice(name: str, value: object, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise ValueError(f"{name}={value!r} is not supported; allowed values: {', '.join(map(repr, allowed))}")
    return value  # type: ignore[return-value]


def check_positive_int(name: str, value: object, *, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int{' or None' if allow_none else ''}, got {value!r}")
    return value


def check_dropout(dropout: object) -> float:
    """``dropout`` must be a number in ``[0, 1)``; returns it as a float."""
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
        raise ValueError(f"dropout must be a float in [0, 1), got {dropout!r}")
    return float(dropout)
