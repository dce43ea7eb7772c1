"""Pairwise distances for graph building (smaller = closer)."""
from __future__ import annotations

import math
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from tg_cnn2gnn.functional._checks import check_choice, check_matrix

METRICS = ("sqeuclidean", "euclidean", "inner", "cosine")


def safe_sqrt(x: Tensor) -> Tensor:
    """sqrt with a finite gradient at 0 (duplicate points would otherwise give inf)."""
    positive = x > 0
    return torch.where(positive, torch.where(positive, x, torch.ones_like(x)).sqrt(),
                       torch.zeros_like(x))


def pairwise_distance(x: Tensor, y: Tensor, metric: str = "sqeuclidean") -> Tensor:
    r"""Distances between the rows of ``x [N, D]`` and ``y [M, D]`` -> ``[N, M]``.

    * ``sqeuclidean``: :math:`\lVert x_i - y_j \rVert^2` (clamped at 0)
    * ``euclidean``: :math:`\lVert x_i - y_j \rVert`
    * ``inner``: :math:`-\langle x_i, y_j \rangle`
    * ``cosine``: :math:`1 - \cos(x_i, y_j)` (the same at any scale of either row)

    Differentiable everywhere, including at coincident points. Computed on points
    rescaled by a power of two (:func:`scale_points`; exact, so the result is the plain
    formula's wherever that one does not overflow or underflow), ``float16`` /
    ``bfloat16`` in ``float32``: no NaN for finite input; a distance beyond the dtype's
    range (``1e20``-scale points in ``float32``) comes out as ``inf``, as it rounds.

    Raises:
        TypeError / ValueError: ``x`` or ``y`` is not a 2-D floating tensor, holds NaN or
            Inf (the error names the rows), or their feature sizes or dtypes differ.
    """
    check_choice("metric", metric, METRICS)
    x, y = check_matrix("x", x, finite=True), check_matrix("y", y, finite=True)
    if x.size(1) != y.size(1):
        raise ValueError(f"x and y must have the same number of features (columns), got x {tuple(x.shape)} "
                         f"and y {tuple(y.shape)}")
    if x.dtype != y.dtype or x.device != y.device:
        raise TypeError(f"x and y must share dtype and device, got {x.dtype} on {x.device} and {y.dtype} "
                        f"on {y.device}")
    return scaled_distance(x, y, metric)


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype distances are computed in: ``float32`` for ``float16`` / ``bfloat16``."""
    return torch.float32 if dtype in (torch.float16, torch.bfloat16) else dtype


def _mul_pow2(t: Tensor, k: Tensor, steps: int) -> Tensor:
    """``t * 2**k`` (``k`` an integer tensor broadcasting against ``t``), in ``steps`` factors
    of one sign that are each representable: exact unless the result itself over/underflows."""
    for i in range(steps):
        part = torch.div(k * (i + 1), steps, rounding_mode="floor") - torch.div(k * i, steps, rounding_mode="floor")
        t = t * torch.exp2(part.to(t.dtype))
    return t


def _maxexp(dtype: torch.dtype) -> int:
    return math.frexp(torch.finfo(dtype).max)[1]          # 128 for float32, 1024 for float64


def _mul_pow2_int(t: Tensor, k: int) -> Tensor:
    """``t * 2**k`` for a Python int ``k``: one multiply when ``2**k`` is representable, else a
    few of one sign (exact unless the result itself over/underflows); ``t`` itself for 0."""
    limit = _maxexp(t.dtype) - 2
    while k:
        step = max(-limit, min(limit, k))
        t = t * 2.0 ** step
        k -= step
    return t


def scale_exponent(amax: float, dim: int, dtype: torch.dtype) -> int:
    """The ``k`` of :func:`scale_points` for points of largest magnitude ``amax``.

    ``0`` (nothing to do) when ``amax`` already sits in the safe window
    ``[2**(-maxexp / 8), 2**top]``; else ``k`` puts it just below ``2**top``, where
    ``top`` keeps every intermediate of the distances (``4 D max^2``) below
    ``2**(3 maxexp / 4)`` (``2**96`` in ``float32``): well inside the range, leaving room
    for small entries below and for gradients (about ``1 / distance``) above.
    """
    maxexp = _maxexp(dtype)
    top = math.floor((3 * maxexp // 4 - 2 - math.log2(max(dim, 1))) / 2)
    if not math.isfinite(amax) or amax <= 0 or 2.0 ** (-(maxexp // 8)) <= amax < 2.0 ** top:
        return 0
    return top - math.frexp(amax)[1]                      # amax < 2**e


@torch.no_grad()
def _row_max(x: Tensor) -> Tensor:
    return x.abs().amax(dim=1, keepdim=True) if x.size(1) else x.new_zeros(x.size(0), 1)


def scale_points(x: Tensor, y: Tensor | None, metric: str) -> tuple[Tensor, Tensor | None, int]:
    """``x`` and ``y`` in :func:`compute_dtype`, multiplied by one power of two ``2**k``
    chosen from their largest entry (:func:`scale_exponent`; ``k = 0``, no work, for points
    of ordinary size) -> ``(x', y', k)``.

    Exact, so rankings and the Eq. 3 weights (invariant to a positive factor on a row)
    are those of the unscaled points, but distances of ``1e20``-scale points cannot
    overflow and those of ``1e-20``-scale ones cannot underflow. For ``cosine`` every row
    is scaled by its own power of two (into ``[0.5, 1)``), which makes the result exactly
    invariant to the scale of each row, and ``k`` is 0.
    """
    dtype = compute_dtype(x.dtype)
    x = x.to(dtype)
    y = None if y is None else y.to(dtype)
    if metric == "cosine":
        def unit(t: Tensor) -> Tensor:   # row max into [0.5, 1): F.normalize's eps never bites
            m = _row_max(t)
            e = torch.frexp(m).exponent
            return _mul_pow2(t, torch.where(torch.isfinite(m), -e, torch.zeros_like(e)), 2)
        return unit(x), None if y is None else unit(y), 0
    with torch.no_grad():
        amax = float(x.abs().amax()) if x.numel() else 0.0     # one host sync per call
        if y is not None and y.numel():
            amax = max(amax, float(y.abs().amax()))
    k = scale_exponent(amax, x.size(1), dtype)
    return _mul_pow2_int(x, k), None if y is None else _mul_pow2_int(y, k), k


def unscale(d: Tensor, k: int, metric: str) -> Tensor:
    """Distances of points scaled by ``2**k`` back to the original scale (exact)."""
    if metric == "cosine":
        return d
    return _mul_pow2_int(d, -k if metric == "euclidean" else -2 * k)


def scaled_distance(x: Tensor, y: Tensor, metric: str, matmul: Callable[[Tensor, Tensor], Tensor] | None = None
                    ) -> Tensor:
    """:func:`pairwise_distance` without argument checks, with an optional ``matmul(a, b)``
    for the one product (the row-invariant one of :mod:`tg_cnn2gnn.nn._invariant`)."""
    dtype = x.dtype
    xs, ys, k = scale_points(x, y, metric)
    assert ys is not None
    xs, ys = prepare(xs, metric), prepare(ys, metric)
    d = block_distance(xs, ys, metric, row_norms(xs, metric), row_norms(ys, metric), matmul)
    return unscale(d, k, metric).to(dtype)


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
                   y_sq: Tensor | None, matmul: Callable[[Tensor, Tensor], Tensor] | None = None) -> Tensor:
    """Distances ``[n, M]`` from prepared rows ``x [n, D]`` to prepared ``y [M, D]``."""
    if matmul is not None:
        prod = matmul(x, y.T)
    elif x.size(0) == 0:
        prod = x.new_zeros(0, y.size(0))
    else:
        prod = torch.cat([x[i:i + ROW_BLOCK] @ y.T for i in range(0, x.size(0), ROW_BLOCK)])
    if metric == "inner":
        return -prod
    if metric == "cosine":
        return 1.0 - prod
    sq = (x_sq.unsqueeze(1) + y_sq.unsqueeze(0) - 2.0 * prod).clamp_min(0)
    return sq if metric == "sqeuclidean" else safe_sqrt(sq)


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
        return safe_sqrt(out)
    return -out if metric == "inner" else 1.0 - out
