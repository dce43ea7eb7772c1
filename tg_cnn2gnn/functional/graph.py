"""The symmetrised sparse simplex graph A = (P + P^T) / 2 as PyG edges."""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import coalesce

from tg_cnn2gnn.functional._checks import (check_choice, check_matrix, check_positive_int,
                                           check_sparsity)
from tg_cnn2gnn.functional.distance import METRICS, pairwise_distance
from tg_cnn2gnn.functional.simplex import sparse_simplex_topk

#: Default budget of distance entries per chunk (float32: 64 MiB).
DEFAULT_CHUNK_ELEMENTS = 1 << 24


def topk_to_edges(index: Tensor, weight: Tensor, *, row_offset: int = 0,
                  num_nodes: int | None = None, symmetrize: bool = True) -> tuple[Tensor, Tensor]:
    r"""Turn sparse rows of P into PyG edges in ``source_to_target`` flow.

    Row ``i`` (node ``i + row_offset``) of ``index``/``weight`` ``[n, s]`` says
    :math:`p_{ij}` for its ``s`` selected columns ``j``. With ``symmetrize=True``
    the result is :math:`A = (P + P^\top)/2`: the edge ``j -> i`` carries
    :math:`A_{ij}` (``edge_index[0]`` = source ``j``, ``edge_index[1]`` = target ``i``).
    Without it, the edge ``j -> i`` carries :math:`p_{ij}`.

    Returns:
        ``edge_index [2, E]`` (coalesced, sorted by target) and ``edge_weight [E]``,
        differentiable w.r.t. ``weight``. Zero-weight selected pairs are kept as edges.
    """
    n, s = index.shape
    rows = torch.arange(row_offset, row_offset + n, device=index.device).repeat_interleave(s)
    cols = index.reshape(-1)
    w = weight.reshape(-1)
    if symmetrize:
        src = torch.cat([cols, rows])
        dst = torch.cat([rows, cols])
        w = torch.cat([w, w]) * 0.5
    else:
        src, dst = cols, rows
    if num_nodes is None:
        num_nodes = int(max(int(src.max()), int(dst.max())) + 1) if src.numel() else 0
    # coalesce sorts by its first row: put targets first, then swap back.
    ei, w = coalesce(torch.stack([dst, src]), w, num_nodes=num_nodes, reduce="sum")
    return ei.flip(0), w


def _auto_chunk(n_rows: int, n_cols: int) -> int:
    return max(1, min(n_rows, DEFAULT_CHUNK_ELEMENTS // max(n_cols, 1)))


def _topk_rows(x: Tensor, s: int, metric: str, loop: bool, chunk_size: int | None
               ) -> tuple[Tensor, Tensor]:
    """Eq. 3 rows of one graph, computed ``chunk`` rows at a time: O(N s + chunk N) memory."""
    n = x.size(0)
    chunk = chunk_size or _auto_chunk(n, n)
    idx_parts, w_parts = [], []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        d = pairwise_distance(x[start:stop], x, metric)
        if not loop:
            rows = torch.arange(stop - start, device=x.device)
            d = d.index_put((rows, rows + start), torch.tensor(float("inf"), dtype=d.dtype,
                                                                device=d.device))
        idx, w = sparse_simplex_topk(d, s, validate=False)
        idx_parts.append(idx)
        w_parts.append(w)
    return torch.cat(idx_parts), torch.cat(w_parts)


def sparse_simplex_graph(x: Tensor, s: int, *, metric: str = "sqeuclidean", loop: bool = False,
                         batch: Tensor | None = None, chunk_size: int | None = None,
                         symmetrize: bool = True) -> tuple[Tensor, Tensor]:
    r"""The paper's sparse simplex graph over the rows of ``x``.

    For every node ``i`` the ``s`` nearest other nodes (under ``metric``) get the
    Eq. 3 weights :math:`p_{ij}`; the graph is :math:`A = (P + P^\top)/2`, returned
    as PyG edges in ``source_to_target`` flow (edge ``j -> i`` carries :math:`A_{ij}`).

    Args:
        x: ``[N, D]`` node features or positions.
        s: sparsity, ``1 <= s <= candidates - 1`` where candidates is the graph size
            (``N``, or the smallest graph of ``batch``), less one without ``loop``.
        metric: ``"sqeuclidean"``, ``"euclidean"``, ``"inner"`` (``-<x_i, x_j>``) or ``"cosine"``.
        loop: let a node choose itself as a neighbour. ``GCNConv`` adds its own
            self-loops, so the default is ``False``.
        batch: ``[N]`` graph assignment (PyG ``batch`` vector); nodes of different graphs
            are never connected.
        chunk_size: rows per distance block; default keeps a block at 2^24 entries.
            Peak memory is ``O(N s + chunk_size N)``; the result does not depend on it.
        symmetrize: return ``A = (P + P^T)/2`` (default) or ``P`` itself.

    Returns:
        ``edge_index [2, E]`` and ``edge_weight [E]`` (differentiable w.r.t. ``x``),
        with ``N s <= E <= 2 N s``.
    """
    check_matrix("x", x)
    check_choice("metric", metric, METRICS)
    check_positive_int("chunk_size", chunk_size, allow_none=True)
    if not torch.isfinite(x).all():
        raise ValueError("x contains +inf or -inf; features must be finite")
    n = x.size(0)
    if batch is None:
        check_sparsity(s, n if loop else n - 1, what="candidate nodes")
        idx, w = _topk_rows(x, s, metric, loop, chunk_size)
        return topk_to_edges(idx, w, num_nodes=n, symmetrize=symmetrize)

    if batch.dim() != 1 or batch.numel() != n:
        raise ValueError(f"batch must be a 1-D tensor with one entry per row of x ({n}), "
                         f"got shape {tuple(batch.shape)}")
    order = torch.argsort(batch, stable=True)
    counts = torch.bincount(batch[order])
    sizes = counts[counts > 0]
    smallest = int(sizes.min())
    check_sparsity(s, smallest if loop else smallest - 1, what="candidate nodes in the smallest graph")
    idx_parts, w_parts, offset = [], [], 0
    xs = x[order]
    for size in sizes.tolist():
        idx, w = _topk_rows(xs[offset:offset + size], s, metric, loop, chunk_size)
        idx_parts.append(order[idx + offset])
        w_parts.append(w)
        offset += size
    # Rows come in ``order``; map them back to the original node ids.
    idx = torch.empty(n, s, dtype=torch.long, device=x.device)
    idx[order] = torch.cat(idx_parts)
    w = torch.cat(w_parts)
    w = torch.empty_like(w).index_copy(0, order, w)
    return topk_to_edges(idx, w, num_nodes=n, symmetrize=symmetrize)
