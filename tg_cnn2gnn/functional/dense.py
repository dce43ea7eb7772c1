"""Conversions between dense (optionally batched) P or A matrices and PyG edges."""
from __future__ import annotations

import torch
from torch import Tensor


def dense_to_edges(adj: Tensor) -> tuple[Tensor, Tensor]:
    r"""Dense ``adj [N, N]`` or batched ``[B, N, N]`` -> ``(edge_index, edge_weight)``.

    Uses the package's flow: the entry ``adj[i, j]`` becomes the edge ``j -> i``
    (``edge_index[0] = j`` source, ``edge_index[1] = i`` target), so a row of ``P``
    lists the messages a node receives. Batched graphs are offset by ``b * N`` (PyG's
    disjoint-union batching). Only non-zero entries become edges; ``edge_weight`` is
    differentiable w.r.t. ``adj``.
    """
    if not isinstance(adj, Tensor) or adj.dim() not in (2, 3):
        shape = tuple(adj.shape) if isinstance(adj, Tensor) else type(adj).__name__
        raise ValueError(f"adj must be a [N, N] or [B, N, N] tensor, got {shape}")
    if adj.size(-1) != adj.size(-2):
        raise ValueError(f"adj must be square in its last two dims, got shape {tuple(adj.shape)}")
    dense = adj if adj.dim() == 3 else adj.unsqueeze(0)
    n = dense.size(-1)
    b, i, j = dense.nonzero(as_tuple=True)
    weight = dense[b, i, j]
    edge_index = torch.stack([j + b * n, i + b * n])
    return edge_index, weight


def edges_to_dense(edge_index: Tensor, edge_weight: Tensor | None = None,
                   num_nodes: int | None = None, batch_size: int | None = None) -> Tensor:
    r"""Inverse of :func:`dense_to_edges`: edge ``j -> i`` with weight ``w`` -> ``adj[i, j] = w``.

    Duplicate edges are summed. With ``batch_size`` the ``batch_size * num_nodes``
    nodes are split into ``[batch_size, num_nodes, num_nodes]`` blocks (edges must not
    cross blocks). Differentiable w.r.t. ``edge_weight``.
    """
    if edge_index.dim() != 2 or edge_index.size(0) != 2:
        raise ValueError(f"edge_index must have shape [2, E], got {tuple(edge_index.shape)}")
    if edge_weight is None:
        edge_weight = torch.ones(edge_index.size(1), device=edge_index.device)
    if batch_size is None:
        n = num_nodes if num_nodes is not None else (
            int(edge_index.max()) + 1 if edge_index.numel() else 0)
        adj = edge_weight.new_zeros(n, n)
        return adj.index_put((edge_index[1], edge_index[0]), edge_weight, accumulate=True)
    if num_nodes is None:
        raise ValueError("edges_to_dense needs num_nodes (nodes per graph) when batch_size is given")
    src, dst = edge_index
    b = dst // num_nodes
    if not torch.equal(b, src // num_nodes):
        raise ValueError("edges cross graph blocks; they cannot form a [B, N, N] batch")
    adj = edge_weight.new_zeros(batch_size, num_nodes, num_nodes)
    return adj.index_put((b, dst % num_nodes, src % num_nodes), edge_weight, accumulate=True)
