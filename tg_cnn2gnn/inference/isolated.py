r"""Edge-removal ablation (not a mechanism of the paper): the student with *no* edges.

Every test node sees only itself (``GCNConv`` adds its self-loop and becomes a per-sample
MLP). Compared with a real mechanism it measures how much of the accuracy the graph
carries.
"""
from __future__ import annotations

import torch
from torch import Tensor


def predict_isolated(model, x: Tensor, *, chunk_size: int = 1024, **_: object) -> Tensor:
    """Logits ``[T, C]`` of the student on ``x [T, F]`` with an empty edge list."""
    empty = torch.empty(2, 0, dtype=torch.long, device=x.device)
    no_weight = x.new_empty(0)
    return torch.cat([model.student(xc, empty, no_weight) for xc in x.split(chunk_size)])
