"""The symmetrised sparse simplex graph A = (P + P^T) / 2 as PyG edges."""
from __future__ import annotations

import torch
from torch import Tensor
from torch_geometric.utils import coalesce

from tg_cnn2gnn.functional._checks import (check_batch, check_choice, check_flag, check_matrix,
                                           check_positive_int, check_sparsity)
from tg_cnn2gnn.functional.distance import (METRICS, ROW_BLOCK, block_rank_score, gathered_distance,
                                            prepare, rank_operands, rank_rows, scale_points)
from tg_cnn2gnn.functional.simplex import simplex_weights

#: Default budget of distance entries per chunk (float32: 16 MiB).
DEFAULT_CHUNK_ELEMENTS = 1 << 22


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


def _chunk_rows(chunk_size: int | None, n_rows: int, n_cols: int) -> int:
    """Rows per chunk, a multiple of ``ROW_BLOCK`` (so chunking never changes a bit)."""
    chunk = chunk_size or max(1, DEFAULT_CHUNK_ELEMENTS // max(n_cols, 1))
    chunk = -(-chunk // ROW_BLOCK) * ROW_BLOCK
    return min(chunk, -(-n_rows // ROW_BLOCK) * ROW_BLOCK)


#: Columns per group in the two-stage neighbour search (see :func:`_smallest_k`).
GROUP = 64


def _smallest_k(score: Tensor, k: int) -> Tensor:
    """Column indices ``[n, k]`` of the ``k`` smallest entries of each row of ``score``.

    ``score`` is ``[n, G * GROUP]`` with ``+inf`` padding. Two stages: the ``k``
    groups of ``GROUP`` columns with the smallest minima hold every one of the ``k``
    smallest entries (a group holding one of them has at most ``k - 1`` groups with a
    strictly smaller minimum), so a top-k over the group minima, then over those ``k``
    groups' entries, is exact and reads each score once instead of sorting whole rows.
    """
    n, width = score.shape
    groups = score.view(n, width // GROUP, GROUP)
    if width // GROUP <= k:
        return torch.topk(score, k, dim=1, largest=False, sorted=False).indices
    best = torch.topk(groups.amin(dim=2), k, dim=1, largest=False, sorted=False).indices  # [n, k]
    flat = best + torch.arange(n, device=score.device).unsqueeze(1) * groups.size(1)
    cand = groups.reshape(-1, GROUP).index_select(0, flat.reshape(-1)).view(n, k * GROUP)
    pos = torch.topk(cand, k, dim=1, largest=False, sorted=False).indices                   # [n, k]
    return best.gather(1, pos // GROUP) * GROUP + pos % GROUP


def _topk_rows(x: Tensor, s: int, metric: str, loop: bool, chunk_size: int | None
               ) -> tuple[Tensor, Tensor]:
    """Eq. 3 rows of one graph, ``chunk`` rows at a time: O(N s + chunk N) memory.

    Neighbours are ranked with one matrix product per block (no gradient), then the
    ``s + 1`` kept distances are recomputed directly from the points, which is exact
    and carries the gradient at O(N s) memory (see :func:`gathered_distance`). All of it
    runs on the points rescaled by a power of two (:func:`scale_points`), which changes
    neither the ranking nor the weights but keeps every score finite and away from
    underflow; ``float16`` / ``bfloat16`` run in ``float32``, weights come back in ``x``'s dtype.
    """
    n = x.size(0)
    dtype = x.dtype
    chunk = _chunk_rows(chunk_size, n, n)
    x = prepare(scale_points(x, None, metric)[0], metric)
    xd = x.detach()
    op, rows_aug = rank_operands(xd, metric), rank_rows(xd, metric)
    width = -(-n // GROUP) * GROUP
    buf = torch.full((min(chunk, n), width), float("inf"), dtype=x.dtype, device=x.device)
    idx_parts = []
    for start in range(0, n, chunk):
        stop = min(n, start + chunk)
        score = block_rank_score(rows_aug[start:stop], op, buf[:stop - start])
        if not loop:
            r = torch.arange(stop - start, device=x.device)
            score[r, r + start] = float("inf")
        idx_parts.append(_smallest_k(buf[:stop - start], s + 1))
    cand = torch.cat(idx_parts)                                   # [n, s + 1]
    dist = gathered_distance(x, cand, metric)
    # Order the s + 1 candidates by their exact distance, ties by column index.
    order = torch.argsort(cand, dim=1)
    cand, dist = cand.gather(1, order), dist.gather(1, order)
    order = torch.argsort(dist.detach(), dim=1, stable=True)
    cand, dist = cand.gather(1, order), dist.gather(1, order)
    return cand[:, :s], simplex_weights(dist, s).to(dtype)


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
        chunk_size: rows per distance block, rounded up to a multiple of 256; the default
            keeps a block near 2^22 entries. Peak memory is ``O(N s + chunk_size N)``;
            the result does not depend on it, bit for bit.
        symmetrize: return ``A = (P + P^T)/2`` (default) or ``P`` itself.

    Returns:
        ``edge_index [2, E]`` and ``edge_weight [E]`` (differentiable w.r.t. ``x``),
        with ``N s <= E <= 2 N s``.
    """
    check_matrix("x", x, finite=True)
    check_choice("metric", metric, METRICS)
    check_positive_int("chunk_size", chunk_size, allow_none=True)
    check_flag("loop", loop)
    check_flag("symmetrize", symmetrize)
    n = x.size(0)
    if batch is None:
        check_sparsity(s, n if loop else n - 1, what="candidate nodes")
        idx, w = _topk_rows(x, s, metric, loop, chunk_size)
        return topk_to_edges(idx, w, num_nodes=n, symmetrize=symmetrize)

    check_batch(batch, n, x.device)
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
