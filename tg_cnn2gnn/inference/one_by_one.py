r"""``"one_by_one"`` (paper, Mechanism 1): each test sample forms its own graph with the bank.

Test sample ``t`` and the bank make ``(1 + |B|)`` nodes. Row ``t`` of Eq. 3 uses ``t``'s
distances to the bank (anchor head: ``head(x_t)[B]``); bank row ``i`` uses
``head(x_i)[B]`` (the training-style graph among the bank) and, when the model can
measure distances to a test sample (embedding head, fixed-graph baselines; all
symmetric), also ``d(i, t) = d(t, i)``. The anchor head cannot measure a distance from a
training sample to a test sample, so there ``p_it = 0`` and ``t`` is connected through
:math:`A_{ti} = A_{it} = p_{ti}/2`. The GNN runs on that graph and ``t``'s output is read.
Many test samples run at once as disjoint graphs, with the same result as one at a time
(row-invariant context, edge-list student).
"""
from __future__ import annotations

import torch
from torch import Tensor

from tg_cnn2gnn.functional.graph import topk_to_edges
from tg_cnn2gnn.functional.simplex import sparse_simplex_topk
from tg_cnn2gnn.inference._common import batches, effective_sparsity, iter_ranges, out_channels, student_on_edges
from tg_cnn2gnn.inference.bank import bank_codes


def predict_one_by_one(model, x: Tensor, *, train_x: Tensor, bank: Tensor, chunk_size: int,
                       progress: bool = False, **_: object) -> Tensor:
    """Logits ``[T, C]``: one ``(1 + |B|)``-node graph per test sample of ``x [T, F]``."""
    nb = bank.numel()
    g = nb + 1
    xb, cb, d_bb = bank_codes(model, train_x, bank, mask_diag=True)
    # Bank rows see nb - 1 other bank samples (+ the test sample when measurable).
    s1 = effective_sparsity(model.s, nb if model.test_distances else nb - 1,
                            what="candidates of a bank row")
    outs = []
    for a, b in iter_ranges(batches(x.size(0), chunk_size), progress, "one_by_one"):
        xc = x[a:b]
        c = b - a
        d_tb = model.dist(model.code(xc), cb, bank)                    # [c, nb]
        dist = d_tb.new_full((c, g, g), float("inf"))
        dist[:, 0, 1:] = d_tb
        dist[:, 1:, 1:] = d_bb
        if model.test_distances:                                       # symmetric metrics
            dist[:, 1:, 0] = d_tb
        idx, w = sparse_simplex_topk(dist.view(c * g, g), s1, validate=False)
        offs = (torch.arange(c, device=x.device) * g).repeat_interleave(g).unsqueeze(1)
        ei, ew = topk_to_edges(idx + offs, w, num_nodes=c * g)
        feats = torch.cat([xc.unsqueeze(1), xb.unsqueeze(0).expand(c, nb, xb.size(1))],
                          dim=1).reshape(c * g, -1)
        outs.append(student_on_edges(model, feats, ei, ew).view(c, g, -1)[:, 0])
    return torch.cat(outs) if outs else x.new_zeros(0, out_channels(model))
