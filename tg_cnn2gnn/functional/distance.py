"""Pairwise distances for graph building (smaller = closer)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

METRICS = ("sqeuclidean", "euclidean", "inner", "cosine")


def _safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with a finite gradient at 0 (duplicate points would otherwise give inf)."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(),
                       torch.zeros_like(x))


def pairwise_distance(x: Tensor, y: Tensor, metric: str = "sqeuclidean") -> Tensor:
    r"""Distances between the rows of ``x [N, D]`` and ``y [M, D]`` -> ``[N, M]``.

    * ``sqeuclidean``: :math:`\lVert x_i - y_j \rVert^2` (clamped at 0)
    * ``euclidean``: :math:`\lVert x_i - y_j \rVert`
    * ``inner``: :math:`-\langle x_i, y_j \rangle`
    * ``cosine``: :math:`1 - \cos(x_i, y_j)`

    Differentiable everywhere, including at coincident points.
    """
    if metric in ("sqeuclidean", "euclidean"):
        sq = (x * x).sum(1, keepdim=True) + (y * y).sum(1).unsqueeze(0) - 2.0 * (x @ y.T)
        sq = sq.clamp_min(0)
        return sq if metric == "sqeuclidean" else _safe_sqrt(sq)
    if metric == "inner":
        return -(x @ y.T)
    if metric == "cosine":
        return 1.0 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).T
    raise ValueError(f"metric={metric!r} is not supported; allowed values: {', '.join(map(repr, METRICS))}")
