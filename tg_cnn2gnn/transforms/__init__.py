"""PyG transforms."""
from tg_cnn2gnn.transforms.sparse_simplex_graph import SparseSimplexGraph

__all__ = ["SparseSimplexGraph"]
