r"""Row-invariant matrix products, for predictions that do not depend on the batching.

A BLAS ``gemm`` may round a row of ``X @ W`` differently depending on where the row sits
in ``X`` and on how many rows ``X`` has (different kernels for different shapes, edge
tiles, small-matrix paths). Within :func:`row_invariant`, every product of a sample's
features with a weight matrix is computed as a batch of independent ``1 x K`` by
``K x N`` products (``torch.bmm`` with one row per batch item), so each row gets the same
arithmetic whichever other rows share its call. This covers

* the module's ``torch.nn.Linear`` and ``torch_geometric.nn.dense.Linear`` layers (their
  ``forward`` is swapped for the row-wise version while the context is open), and
* :func:`mm` and :func:`pairwise_distance` below, which the graph head and the models
  call for distances.

Cost: about 2-3x a single ``gemm`` on CPU; used only by the inference mechanisms that
promise batch-invariant output (``"bank"`` and ``"one_by_one"``).
"""
from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import Tensor, nn
from torch.nn.parameter import UninitializedParameter
from torch_geometric.nn.dense.linear import Linear as PygLinear

from tg_cnn2gnn.functional.distance import METRICS, scaled_distance

_STATE = threading.local()


def active() -> bool:
    """Whether a :func:`row_invariant` context is open in this thread."""
    return getattr(_STATE, "depth", 0) > 0


def rowwise_mm(x: Tensor, w_t: Tensor) -> Tensor:
    """``x [M, K] @ w_t [K, N]`` with every row computed by its own ``1 x K x N`` product."""
    m = x.size(0)
    if m == 0:
        return x.new_zeros(0, w_t.size(1))
    return torch.bmm(x.unsqueeze(1), w_t.unsqueeze(0).expand(m, -1, -1)).squeeze(1)


def rowwise_linear(x: Tensor, weight: Tensor, bias: Tensor | None = None) -> Tensor:
    """``F.linear`` (any leading shape) with row-invariant rounding."""
    lead = x.shape[:-1]
    y = rowwise_mm(x.reshape(-1, x.size(-1)), weight.t())
    if bias is not None:
        y = y + bias
    return y.reshape(*lead, weight.size(0))


def mm(x: Tensor, w_t: Tensor) -> Tensor:
    """``x @ w_t``; row-invariant inside :func:`row_invariant`."""
    return rowwise_mm(x, w_t) if active() else x @ w_t


def pairwise_distance(x: Tensor, y: Tensor, metric: str = "sqeuclidean") -> Tensor:
    """:func:`tg_cnn2gnn.functional.pairwise_distance` (same exact power-of-two rescaling,
    so no NaN for finite input), with :func:`mm` for the product inside
    :func:`row_invariant`. No argument checks: the callers are the models' forward passes."""
    if metric not in METRICS:
        raise ValueError(f"metric={metric!r} is not supported; allowed values: {', '.join(map(repr, METRICS))}")
    return scaled_distance(x, y, metric, rowwise_mm if active() else None)


def _linear_forward(self: nn.Module, x: Tensor) -> Tensor:
    return rowwise_linear(x, self.weight, self.bias)


@contextmanager
def row_invariant(module: nn.Module | None = None) -> Iterator[None]:
    """Open a row-invariant context; swap the ``Linear`` layers of ``module`` meanwhile."""
    patched: list[nn.Module] = []
    if module is not None:
        for m in module.modules():
            if "forward" in m.__dict__:
                continue
            plain = (type(m).forward is nn.Linear.forward
                     or type(m).forward is PygLinear.forward)
            if plain and not isinstance(m.weight, UninitializedParameter):
                m.forward = _linear_forward.__get__(m)   # instance attribute, removed below
                patched.append(m)
    _STATE.depth = getattr(_STATE, "depth", 0) + 1
    try:
        yield
    finally:
        _STATE.depth -= 1
        for m in patched:
            del m.forward
