"""Distillers by name: the objective of a run (``cnn2gnn``, ``kd``, ``dkd``, ``ce``).

Example::

    from tg_cnn2gnn.distill.distillers import build_distiller
    d = build_distiller("kd", teacher, MLP(784, 256, 10), tau=4.0)
"""
from __future__ import annotations

from typing import Any

from torch import nn

from tg_cnn2gnn.distill.distillers.base import Distiller, TrainBatch
from tg_cnn2gnn.distill.distillers.ce import CEDistiller
from tg_cnn2gnn.distill.distillers.cnn2gnn import CNN2GNNDistiller, TrainingGraph
from tg_cnn2gnn.distill.distillers.dkd import DKDDistiller, DKDLoss, dkd_loss
from tg_cnn2gnn.distill.distillers.kd import KDDistiller

#: name -> Distiller subclass; :func:`build_distiller` looks names up here.
DISTILLERS: dict[str, type[Distiller]] = {
    "cnn2gnn": CNN2GNNDistiller,
    "kd": KDDistiller,
    "dkd": DKDDistiller,
    "ce": CEDistiller,
}


def build_distiller(name: str, teacher: nn.Module | None, student: nn.Module, **kwargs: Any) -> Distiller:
    """``DISTILLERS[name](teacher, student, **kwargs)``; an unknown name is a ValueError listing the valid ones."""
    if name not in DISTILLERS:
        raise ValueError(f"unknown distiller {name!r}; valid names: {', '.join(sorted(DISTILLERS))}")
    return DISTILLERS[name](teacher, student, **kwargs)


__all__ = ["CEDistiller", "CNN2GNNDistiller", "DISTILLERS", "DKDDistiller", "DKDLoss", "Distiller", "KDDistiller",
           "TrainBatch", "TrainingGraph", "build_distiller", "dkd_loss"]
