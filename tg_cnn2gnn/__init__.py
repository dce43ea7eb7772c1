"""tg_cnn2gnn: CNN2GNN (Jiao, Zhang and Li) for PyTorch Geometric.

A learned or closed-form sparse simplex graph (paper Eq. 3) for any PyG conv,
and heterogeneous distillation of a CNN teacher into a two-layer GNN student.
"""
import warnings

# torch_geometric 2.8 calls torch.jit.script at import time, which torch 2.14 flags as
# deprecated; the warning is PyG's, says nothing about this package, and would greet every
# `cnn2gnn` command. Silence only that message.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from tg_cnn2gnn import data, functional, teachers
from tg_cnn2gnn.distill import DistillationLoss, DistillData, HeteroDistiller, distillation_loss
from tg_cnn2gnn.nn import (CNN2GNN, EucGNN, FixedGraphGNN, GraphStudent, InductiveGraphModel, InGNN,
                           LearnedGraphHead)
from tg_cnn2gnn.transforms import SparseSimplexGraph

__version__ = "0.1.0"

__all__ = [
    "CNN2GNN",
    "DistillData",
    "DistillationLoss",
    "EucGNN",
    "FixedGraphGNN",
    "GraphStudent",
    "HeteroDistiller",
    "InGNN",
    "InductiveGraphModel",
    "LearnedGraphHead",
    "SparseSimplexGraph",
    "__version__",
    "data",
    "distillation_loss",
    "functional",
    "teachers",
]
