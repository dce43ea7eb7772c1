r"""The s-sparse simplex projection of a distance matrix (paper Eq. 3, Theorem 1).

For a row of distances :math:`d_{i\cdot}` (smaller = closer) and sparsity :math:`s`,

.. math::
    p_{ij} = \frac{d_{i,(s+1)} - d_{ij}}{\sum_{h=1}^{s} d_{i,(s+1)} - d_{i,(h)}}
    \quad\text{for the } s \text{ nearest } j, \qquad p_{ij} = 0 \text{ otherwise},

where :math:`d_{i,(h)}` is the :math:`h`-th smallest entry of row :math:`i`.
This is the closed-form minimiser of
:math:`\sum_j p_{ij} d_{ij} + \gamma_i \lVert p_i \rVert_2^2` over the
probability simplex with :math:`\gamma_i` chosen so that exactly :math:`s`
entries are free (Nie et al., 2014; paper Eq. 5).
"""
from __future__ import annotations

import torch
from torch import Tensor

from tg_cnn2gnn.functional._checks import check_matrix, check_sparsity


def sparse_simplex_topk(dist: Tensor, s: int, *, exclude_self: bool = False,
                        validate: bool = True, stable: bool = False) -> tuple[Tensor, Tensor]:
    r"""Eq. 3 in its sparse form: the ``s`` selected columns of each row and their weights.

    Args:
        dist: ``[N, M]`` finite distances, smaller = closer.
        s: sparsity, ``1 <= s <= candidates - 1``.
        exclude_self: ``dist`` is square and row ``i`` must not pick column ``i``.
        validate: check the arguments (internal callers that already did may skip it).
        stable: break exact ties by the lower column index on every device, with a stable
            sort of each row (``O(M log M)``; for small ``M``). Without it the ``s + 1``
            smallest come from ``torch.topk``, whose order among equal values is unspecified
            and differs between the CPU and CUDA (on the CPU ``[3, 1, 1, 2, 1]`` with
            ``s = 2`` gives columns 2 and 4). Mechanism 2 needs it: its proxy distances
            repeat whole columns (test samples sharing a proxy), so exact ties there are the rule.

    Returns:
        ``(index, weight)``, both ``[N, s]``: ``index[i]`` are the ``s`` nearest
        columns of row ``i`` (exactly ``s`` under ties too; which tied columns, see ``stable``)
        and ``weight[i]`` their Eq. 3 weights, non-negative and summing to 1.
        ``weight`` is differentiable w.r.t. ``dist``; ``index`` is discrete.

    A selected column whose distance equals :math:`d_{i,(s+1)}` gets weight 0 (that is
    the formula); when all ``s + 1`` smallest distances are equal the row is uniform
    ``1/s``. No NaN or Inf leaves this function, in values or gradients, for finite input.
    """
    if validate:
        check_matrix("dist", dist, finite=True)
        n, m = dist.shape
        if exclude_self and n != m:
            raise ValueError(f"exclude_self=True needs a square dist, got shape {tuple(dist.shape)}")
        check_sparsity(s, m - 1 if exclude_self else m)
    if exclude_self:
        eye = torch.eye(dist.size(0), dtype=torch.bool, device=dist.device)
        dist = dist.masked_fill(eye, float("inf"))
    if stable:   # ascending, ties by column index on any device
        vals, index = torch.sort(dist, dim=1, stable=True)
        vals, index = vals[:, :s + 1], index[:, :s + 1]
    else:        # the s + 1 smallest entries, ascending; tied columns in topk's (unspecified) order
        neg_vals, index = torch.topk(dist.neg(), s + 1, dim=1, largest=True, sorted=True)
        vals = neg_vals.neg()
    return index[:, :s], simplex_weights(vals, s)


def simplex_weights(vals: Tensor, s: int) -> Tensor:
    """Eq. 3 weights from the ``s + 1`` smallest distances ``vals [N, s+1]`` (ascending);
    ``float16`` / ``bfloat16`` are computed in ``float32`` and returned in their dtype."""
    if vals.dtype in (torch.float16, torch.bfloat16):
        return simplex_weights(vals.float(), s).to(vals.dtype)
    # Eq. 3 is invariant to scaling a row, so divide by the row's largest magnitude
    # first: rows at 1e30 scale cannot overflow and rows at 1e-30 cannot underflow.
    mag = vals.detach().abs().amax(dim=1, keepdim=True)
    vals = vals / torch.where(mag > 0, mag, torch.ones_like(mag))
    gap = (vals[:, s:s + 1] - vals[:, :s]).clamp_min(0)   # [N, s], >= 0, first largest
    denom = gap.sum(dim=1, keepdim=True)
    degenerate = denom <= 0                                # all s + 1 distances equal
    safe_denom = torch.where(degenerate, torch.ones_like(denom), denom)
    uniform = torch.full_like(gap, 1.0 / s)
    return torch.where(degenerate, uniform, gap / safe_denom)


def sparse_simplex(dist: Tensor, s: int, *, exclude_self: bool = False) -> Tensor:
    r"""Eq. 3 as a dense matrix: ``dist [N, M]`` -> row-stochastic ``P [N, M]``.

    Each row has exactly ``s`` selected columns (its ``s`` nearest; ties as in
    :func:`sparse_simplex_topk`); their weights follow Eq. 3 and sum to 1, all other entries are 0. Differentiable
    w.r.t. ``dist``. See :func:`sparse_simplex_topk` for the sparse form, which keeps
    memory at ``O(N s)`` and is what the graph builders use.

    Raises:
        ValueError: ``dist`` is not 2-D, contains NaN or Inf, or ``s`` is not in
            ``[1, candidates - 1]`` (candidates = ``M``, or ``M - 1`` with ``exclude_self``).
    """
    index, weight = sparse_simplex_topk(dist, s, exclude_self=exclude_self)
    return torch.zeros_like(dist).scatter(1, index, weight)
