"""tg_cnn2gnn: CNN2GNN (Jiao, Zhang and Li) for PyTorch Geometric.

A learned or closed-form sparse simplex graph (paper Eq. 3) for any PyG conv,
and heterogeneous distillation of a CNN teacher into a two-layer GNN student.
"""
import warnings

# torch_geometric 2.8 calls torch.jit.script at import time, which torch 2.14 flags as
# deprecated; the warning is PyG's, says nothing about this package, and would greet every
# `cnn2gnn` command. Silence only that message.
warnings.filterwarnings("ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning)

from tg_cnn2gnn import data, functional, inference, teachers
from tg_cnn2gnn.diagnostics import graph_class_consistency
from tg_cnn2gnn.distill import (DISTILLERS, CEDistiller, CNN2GNNDistiller, DistillationLoss, DistillData, Distiller,
                                DKDDistiller, HeteroDistiller, KDDistiller, Trainer, build_distiller,
                                distillation_loss)
from tg_cnn2gnn.inference import (MECHANISMS, BankPredictor, export_predictor, get_mechanism, load_exported,
                                  load_predictor, save_predictor)
from tg_cnn2gnn.nn import (CNN2GNN, MLP, BatchGraph, EucGNN, FixedGraphGNN, GraphStudent, InductiveGraphModel, InGNN,
                           LazyAdam, LazySGD, LearnedGraphHead, MLPStudent, TrainingPool, as_student, make_optimizer)
from tg_cnn2gnn.transforms import SparseSimplexGraph

__version__ = "0.1.0"

__all__ = [
    "BankPredictor",
    "BatchGraph",
    "CEDistiller",
    "CNN2GNNDistiller",
    "DISTILLERS",
    "DKDDistiller",
    "Distiller",
    "KDDistiller",
    "LazyAdam",
    "LazySGD",
    "MECHANISMS",
    "MLP",
    "MLPStudent",
    "Trainer",
    "TrainingPool",
    "as_student",
    "build_distiller",
    "export_predictor",
    "get_mechanism",
    "graph_class_consistency",
    "inference",
    "load_exported",
    "load_predictor",
    "make_optimizer",
    "save_predictor",
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
