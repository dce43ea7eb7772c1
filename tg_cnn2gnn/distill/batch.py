"""The mini-batch graph handed to the student: a PyG :class:`~torch_geometric.data.Data`."""
from __future__ import annotations

from typing import Any

from torch_geometric.data import Data


class DistillData(Data):
    r"""One training mini-batch as a graph over its samples.

    Attributes:
        x: ``[B, F]`` node features (the flattened samples, or user features).
        y: ``[B]`` labels.
        index: ``[B]`` training-sample indices (positions in the training set; the anchor
            head's neurons). Unlike attributes PyG recognises as node pointers, ``index``
            is *not* shifted when several batches are collated into a
            :class:`~torch_geometric.data.Batch`.
        teacher_logits: ``[B, C]`` the CNN teacher's logits (absent when ``alpha = 0``
            without cached logits).
        edge_index: ``[2, E]`` the learned graph (edge ``j -> i`` carries :math:`A_{ij}`).
        edge_weight: ``[E]`` its weights, differentiable w.r.t. the graph head.
    """

    def __inc__(self, key: str, value: Any, *args: Any, **kwargs: Any) -> Any:
        if key == "index":
            return 0
        return super().__inc__(key, value, *args, **kwargs)
