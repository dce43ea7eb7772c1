"""tg_cnn2gnn: CNN2GNN (Jiao, Zhang and Li) for PyTorch Geometric.

A learned or closed-form sparse simplex graph (paper Eq. 3) for any PyG conv,
and heterogeneous distillation of a CNN teacher into a two-layer GNN student.
"""
from tg_cnn2gnn import functional
from tg_cnn2gnn.transforms import SparseSimplexGraph

__version__ = "0.1.0"

__all__ = ["functional", "SparseSimplexGraph", "__version__"]
