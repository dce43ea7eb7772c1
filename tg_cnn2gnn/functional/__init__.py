"""Functional core: Eq. 3 (sparse simplex), distances, and the symmetrised graph as PyG edges."""
from tg_cnn2gnn.functional.dense import dense_to_edges, edges_to_dense
from tg_cnn2gnn.functional.distance import METRICS, pairwise_distance
from tg_cnn2gnn.functional.graph import sparse_simplex_graph, topk_to_edges
from tg_cnn2gnn.functional.simplex import sparse_simplex, sparse_simplex_topk

__all__ = [
    "METRICS",
    "dense_to_edges",
    "edges_to_dense",
    "pairwise_distance",
    "sparse_simplex",
    "sparse_simplex_graph",
    "sparse_simplex_topk",
    "topk_to_edges",
]
