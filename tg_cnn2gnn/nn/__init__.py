"""Modules: the learned sparse graph head, the GNN student, CNN2GNN and fixed-graph baselines."""
from tg_cnn2gnn.nn.head import HEAD_FORMS, LearnedGraphHead
from tg_cnn2gnn.nn.model import (MECHANISMS, CNN2GNN, EucGNN, FixedGraphGNN, InductiveGraphModel,
                                 InGNN, proxy_distances, select_bank)
from tg_cnn2gnn.nn.optim import OPTIMIZERS, LazyAdam, LazySGD, clip_grad_norm, make_optimizer
from tg_cnn2gnn.nn.mlp import MLP, MLPStudent
from tg_cnn2gnn.nn.pool_graph import BatchGraph, TrainingGraph, TrainingPool, pool_nca_loss, warm_start_anchors
from tg_cnn2gnn.nn.student import CONVS, GraphStudent, as_student

__all__ = [
    "BatchGraph",
    "MLP",
    "MLPStudent",
    "TrainingGraph",
    "TrainingPool",
    "pool_nca_loss",
    "warm_start_anchors",
    "CNN2GNN",
    "CONVS",
    "EucGNN",
    "FixedGraphGNN",
    "GraphStudent",
    "HEAD_FORMS",
    "InGNN",
    "InductiveGraphModel",
    "LazyAdam",
    "LazySGD",
    "LearnedGraphHead",
    "MECHANISMS",
    "OPTIMIZERS",
    "as_student",
    "clip_grad_norm",
    "make_optimizer",
    "proxy_distances",
    "select_bank",
]
