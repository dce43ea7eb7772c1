r"""``"direct"`` (embedding head and fixed-graph baselines): Eq. 3 over true test-test distances.

Each test batch gets Eq. 3 over its own distances (self excluded), symmetrised, and the
GNN over the batch. Needs a model with ``test_distances`` (no training data involved).
"""
from __future__ import annotations

import torch
from torch import Tensor

from tg_cnn2gnn.inference._common import batches, iter_ranges, run_batch


def predict_direct(model, x: Tensor, *, batch_size: int, progress: bool = False,
                   **_: object) -> Tensor:
    """Logits ``[T, C]`` of ``x [T, F]``, one graph per test batch of ``batch_size``."""
    if x.size(0) < 3:
        raise ValueError(f"mechanism='direct' builds a graph over each test batch and needs at "
                         f"least 3 test samples, got {x.size(0)}")
    outs = []
    for a, b in iter_ranges(batches(x.size(0), batch_size, 3), progress, "direct"):
        xt = x[a:b]
        ct = model.code(xt)
        outs.append(run_batch(model, xt, model.dist(ct, ct, None)))
    return torch.cat(outs)
