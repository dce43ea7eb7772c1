"""Argument checks shared by the functional core: one clear error per bad input."""
from __future__ import annotations

import torch
from torch import Tensor


def bad_rows(value: Tensor, what: Tensor | None = None) -> str:
    """``"rows [3, 17] (2 of 20)"``: the first rows of ``value`` where ``what`` (default: not
    finite) holds, for error messages."""
    mask = ~torch.isfinite(value) if what is None else what
    rows = mask.reshape(value.size(0), -1).any(dim=1).nonzero().flatten()
    shown = ", ".join(str(r) for r in rows[:10].tolist()) + (", ..." if rows.numel() > 10 else "")
    return f"rows [{shown}] ({rows.numel()} of {value.size(0)})"


def check_finite(name: str, value: Tensor) -> Tensor:
    """``value`` (at least 1-D) must hold only finite numbers; the error names the rows."""
    if value.numel() and not bool(torch.isfinite(value).all()):
        kind = "NaN" if bool(torch.isnan(value).any()) else "+inf or -inf"
        raise ValueError(f"{name} contains {kind} in {bad_rows(value)}; it must hold finite numbers")
    return value


def check_matrix(name: str, value: object, *, finite: bool = False) -> Tensor:
    """``value`` must be a 2-D floating tensor without NaN (and, with ``finite``, without Inf)."""
    if not isinstance(value, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(value).__name__}")
    if value.dim() != 2:
        raise ValueError(
            f"{name} must be 2-D [N, M], got a tensor of shape {tuple(value.shape)}")
    if not value.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got dtype {value.dtype}")
    if finite:
        return check_finite(name, value)
    nan = torch.isnan(value)
    if bool(nan.any()):
        raise ValueError(f"{name} contains NaN in {bad_rows(value, nan)}; distances and features must be numbers")
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


def check_flag(name: str, value: object) -> bool:
    """``value`` must be a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return value


def check_batch(batch: object, n: int, device: torch.device) -> Tensor:
    """``batch`` must be a PyG batch vector: 1-D integer ``[n]``, values >= 0, on ``device``."""
    if not isinstance(batch, Tensor):
        raise TypeError(f"batch must be a torch.Tensor of graph ids or None, got {type(batch).__name__}")
    if batch.dim() != 1 or batch.numel() != n:
        raise ValueError(f"batch must be a 1-D tensor with one entry per row of x ({n}), "
                         f"got shape {tuple(batch.shape)}")
    if batch.is_floating_point() or batch.is_complex() or batch.dtype == torch.bool:
        raise TypeError(f"batch must hold integer graph ids (torch.long), got dtype {batch.dtype}")
    if batch.device != device:
        raise ValueError(f"batch is on {batch.device} but x is on {device}; put both on one device")
    if n and int(batch.min()) < 0:
        raise ValueError(f"batch must hold graph ids >= 0, got {int(batch.min())} in {bad_rows(batch, batch < 0)}")
    return batch


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
