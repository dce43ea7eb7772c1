"""Every argument check of the distillation package, in one place (issue 15 items 3, 4, 6).

A long run must never fail at its end for something visible at its start: tensors are
checked once, up front, for shape, dtype, NaN/Inf (naming the tensor and its first
offending rows) and label range; numbers for NaN, infinity and sign; and a resumed run
for settings that differ from the checkpoint's. The functional core's checks
(:mod:`tg_cnn2gnn.functional._checks`) are reused, not copied.
"""
from __future__ import annotations

import math
from typing import Any, Mapping

import torch
from torch import Tensor

from tg_cnn2gnn.functional._checks import check_choice, check_positive_int

__all__ = ["check_choice", "check_positive_int", "check_float", "check_images", "check_labels",
           "check_features", "check_finite", "check_label_range", "check_weight", "resume_diff"]

#: How many offending rows an error message lists.
_SHOW = 5


def check_float(name: str, value: object, *, low: float = 0.0, inclusive: bool = True) -> float:
    """``value`` must be a finite real number ``>= low`` (``> low`` with ``inclusive=False``):
    NaN, infinities, bools, strings and out-of-range values are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or (value < low if inclusive else value <= low):
        raise ValueError(f"{name} must be a finite number {'>=' if inclusive else '>'} {low:g}, got {value!r}")
    return float(value)


def check_weight(name: str, value: object) -> float:
    """A loss weight: a finite number ``>= 0``."""
    return check_float(name, value)


def check_images(name: str, x: object) -> Tensor:
    """``x`` must be a floating tensor with a leading sample axis ``[N, ...]``."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N, C, H, W] (or a Dataset where accepted), "
                        f"got {type(x).__name__}")
    if x.dim() < 2 or not x.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor [N, C, H, W] (or [N, F]), got shape "
                         f"{tuple(x.shape)} dtype {x.dtype}")
    if x.size(0) == 0:
        raise ValueError(f"{name} is empty (0 samples)")
    return x


def check_labels(name: str, y: object, n: int) -> Tensor:
    """``y`` must be an integer tensor ``[n]`` of non-negative labels."""
    if not isinstance(y, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor [N] of integer labels, got {type(y).__name__}")
    if y.dim() != 1 or y.numel() != n:
        raise ValueError(f"{name} must have shape [{n}] (one label per sample), got {tuple(y.shape)}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {y.dtype}")
    if n and int(y.min()) < 0:
        raise ValueError(f"{name} has negative labels (min {int(y.min())}); labels must be in [0, C)")
    return y.long()


def check_features(name: str, f: object, n: int) -> Tensor | None:
    """Optional node features: ``None`` or a floating tensor ``[n, F]``."""
    if f is None:
        return None
    if not isinstance(f, Tensor) or f.dim() != 2 or f.size(0) != n or not f.is_floating_point():
        raise ValueError(f"{name} must be a floating tensor [{n}, F] (one feature row per sample), got "
                         f"{tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__}")
    return f


def check_finite(name: str, x: Tensor | None) -> Tensor | None:
    """Refuse NaN or +-Inf anywhere in ``x [N, ...]``, naming the first offending rows.

    One reduction over the tensor (done once per run, before training): a NaN test row
    would otherwise make its logits NaN (``argmax`` -> class 0) or, under some inference
    mechanisms, every row's."""
    if x is None or not x.is_floating_point():
        return x
    bad = ~torch.isfinite(x.reshape(x.size(0), -1)).all(dim=1)
    if bool(bad.any()):
        rows = bad.nonzero().flatten()
        shown = ", ".join(str(int(r)) for r in rows[:_SHOW]) + (", ..." if rows.numel() > _SHOW else "")
        raise ValueError(f"{name} has NaN or infinite values in {rows.numel()} row(s) (first: {shown}); "
                         "every input must be finite")
    return x


def check_label_range(name: str, y: Tensor, num_classes: int) -> Tensor:
    """Every label of ``y`` must lie in ``[0, num_classes)``; names the first bad value and its row."""
    if y.numel() == 0:
        return y
    bad = (y < 0) | (y >= num_classes)
    if bool(bad.any()):
        row = int(bad.nonzero()[0, 0])
        raise ValueError(f"{name} has label {int(y[row])} at row {row} ({int(bad.sum())} bad label(s)); labels "
                         f"must be in [0, {num_classes}) for a model with {num_classes} classes")
    return y


def resume_diff(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """``["name: old -> new", ...]`` for every setting whose value differs (keys of either side)."""
    keys = list(new) + [k for k in old if k not in new]
    return [f"{k}: {old.get(k)!r} -> {new.get(k)!r}" for k in keys if old.get(k) != new.get(k)]
