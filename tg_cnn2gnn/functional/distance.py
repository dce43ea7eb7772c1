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
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not supported; allowed values: "
                         f"{', '.join(map(repr, METRICS))}")
    x, y = prepare(x, metric), prepare(y, metric)
    return block_distance(x, y, metric, row_norms(x, metric), row_norms(y, metric))


def prepare(x: Tensor, metric: str) -> Tensor:
    """Per-row preprocessing shared by all blocks (unit rows for ``cosine``)."""
    return F.normalize(x, dim=1) if metric == "cosine" else x


def row_norms(x: Tensor, metric: str) -> Tensor | None:
    """Squared row norms ``[N]`` for the Euclidean metrics, computed once per call."""
    return (x * x).sum(1) if metric in ("sqeuclidean", "euclidean") else None


#: Rows per matrix product. Every product has this many rows (the last one fewer) and
#: starts at a multiple of it, so a row's result is bit-identical however the rows are
#: chunked: BLAS results depend on the shape of the call.
ROW_BLOCK = 256


def block_distance(x: Tensor, y: Tensor, metric: str, x_sq: Tensor | None,
                   y_sq: Tensor | None) -> Tensor:
    """Distances ``[n, M]`` from prepared rows ``x [n, D]`` to prepared ``y [M, D]``."""
    prod = torch.cat([x[i:i + ROW_BLOCK] @ y.T for i in range(0, x.size(0), ROW_BLOCK)])
    if metric == "inner":
        return -prod
    if metric == "cosine":
        return 1.0 - prod
    sq = (x_sq.unsqueeze(1) + y_sq.unsqueeze(0) - 2.0 * prod).clamp_min(0)
    return sq if metric == "sqeuclidean" else _safe_sqrt(sq)


@torch.no_grad()
def rank_operands(y: Tensor, metric: str) -> Tensor:
    """``y`` rearranged so one plain product ``x_aug @ op.T`` gives a rank score that
    orders each row's columns like the distance (ascending), minus row-constant terms.

    Euclidean: ``[-2 y, |y|^2]`` against ``[x, 1]`` gives ``|y_j|^2 - 2 <x_i, y_j>``;
    inner/cosine: ``-y`` against ``x``. No broadcast add, so the product writes the
    score straight into its output buffer.
    """
    if metric in ("sqeuclidean", "euclidean"):
        return torch.cat([-2.0 * y, (y * y).sum(1, keepdim=True)], dim=1)
    return -y


@torch.no_grad()
def rank_rows(x: Tensor, metric: str) -> Tensor:
    """``x`` with the ones column the Euclidean rank operands expect."""
    if metric in ("sqeuclidean", "euclidean"):
        return torch.cat([x, x.new_ones(x.size(0), 1)], dim=1)
    return x


@torch.no_grad()
def block_rank_score(x_aug: Tensor, op: Tensor, out: Tensor) -> Tensor:
    """Fill ``out [n, M']`` (``M' >= M``) with the rank scores of rows ``x_aug [n, D']``
    against ``op [M, D']``, one product per :data:`ROW_BLOCK` rows; returns ``out[:, :M]``."""
    m = op.size(0)
    opt = op.T
    for i in range(0, x_aug.size(0), ROW_BLOCK):
        torch.mm(x_aug[i:i + ROW_BLOCK], opt, out=out[i:i + ROW_BLOCK, :m])
    return out[:, :m]


#: Entries (rows x neighbours x features) per step of the gathered distances.
GATHER_ELEMENTS = 1 << 20


class _GatheredDistance(torch.autograd.Function):
    """``out[i, k] = f(x_i, y_{index[i, k]})`` with ``f`` the squared distance or the dot
    product, in row chunks; saves only the inputs, so memory stays O(n k), not O(n k D)."""

    @staticmethod
    def forward(ctx, x: Tensor, y: Tensor, index: Tensor, squared: bool) -> Tensor:
        ctx.save_for_backward(x, y, index)
        ctx.squared = squared
        n, k = index.shape
        out = x.new_empty(n, k)
        step = max(1, GATHER_ELEMENTS // max(1, k * x.size(1)))
        for i in range(0, n, step):
            nb = y[index[i:i + step]]                                  # [c, k, D]
            xi = x[i:i + step].unsqueeze(1)
            out[i:i + step] = (xi - nb).pow(2).sum(-1) if squared else (xi * nb).sum(-1)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad: Tensor):
        x, y, index = ctx.saved_tensors
        n, k = index.shape
        gx = torch.zeros_like(x) if ctx.needs_input_grad[0] else None
        gy = torch.zeros_like(y) if ctx.needs_input_grad[1] else None
        step = max(1, GATHER_ELEMENTS // max(1, k * x.size(1)))
        for i in range(0, n, step):
            idx = index[i:i + step]
            nb = y[idx]
            xi = x[i:i + step].unsqueeze(1)
            g = grad[i:i + step].unsqueeze(-1)                          # [c, k, 1]
            if ctx.squared:
                term = 2.0 * g * (xi - nb)                              # d/dx_i
                if gx is not None:
                    gx[i:i + step] = term.sum(1)
                if gy is not None:
                    gy.index_add_(0, idx.reshape(-1), -term.reshape(-1, x.size(1)))
            else:
                if gx is not None:
                    gx[i:i + step] = (g * nb).sum(1)
                if gy is not None:
                    gy.index_add_(0, idx.reshape(-1), (g * xi).reshape(-1, x.size(1)))
        return gx, gy, None, None


def gathered_distance(x: Tensor, index: Tensor, metric: str, y: Tensor | None = None) -> Tensor:
    """Distances from prepared rows ``x [n, D]`` to the columns ``index [n, k]`` of the
    prepared rows ``y [M, D]`` (default ``x``) -> ``[n, k]``, computed directly from the
    points (exact; differentiable w.r.t. ``x`` and ``y`` at O(n k) extra memory)."""
    y = x if y is None else y
    squared = metric in ("sqeuclidean", "euclidean")
    out = _GatheredDistance.apply(x, y, index, squared)
    if metric == "sqeuclidean":
        return out
    if metric == "euclidean":
        return _safe_sqrt(out)
    return -out if metric == "inner" else 1.0 - out
