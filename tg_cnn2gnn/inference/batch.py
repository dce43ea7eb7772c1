r"""``"batch"`` (paper, Mechanism 2; learned heads): a graph over each test batch via proxies.

For a test batch ``T`` (``batch_size`` samples) and the training batch ``R = B``, ``P_TR``
follows Eq. 3 from ``head(x_T)[:, R]``; each test sample ``k`` takes as proxy the
training sample ``r(k)`` with the largest ``p_kr``; test-test distances are approximated
by ``d(i, k) = head(x_i)[r(k)]``; Eq. 3 over ``T`` (self excluded),
:math:`A = (P+P^\top)/2` and the GNN over ``T``. A prediction depends on the other samples
of its test batch (transductive inside a batch). A tail batch of fewer than 3 samples is
merged into the previous batch. Models with ``batch_is_direct`` (fixed-graph baselines)
run :mod:`~tg_cnn2gnn.inference.direct` instead.
"""
from __future__ import annotations

import torch
from torch import Tensor

from tg_cnn2gnn.inference._common import batches, iter_ranges, proxy_distances, run_batch


def predict_batch(model, x: Tensor, *, train_x: Tensor, bank: Tensor, batch_size: int,
                  progress: bool = False, **_: object) -> Tensor:
    """Logits ``[T, C]`` of ``x [T, F]``, one proxy graph per test batch."""
    if x.size(0) < 3:
        raise ValueError(f"mechanism='batch' builds a graph over each test batch and needs at "
                         f"least 3 test samples, got {x.size(0)}; use mechanism='bank'")
    xb = train_x.index_select(0, bank)
    cb = model.code(xb)
    outs = []
    for a, b in iter_ranges(batches(x.size(0), batch_size, 3), progress, "batch"):
        xt = x[a:b]
        _, d_tt = proxy_distances(model.dist(model.code(xt), cb, bank), model.s)
        outs.append(run_batch(model, xt, d_tt))
    return torch.cat(outs)
