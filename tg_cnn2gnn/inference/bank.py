r"""``"bank"`` (ours): test nodes only receive messages from a fixed training bank.

Nodes: the bank ``B`` plus test samples. Bank-bank edges: the training-style graph among
the bank, Eq. 3 over ``d(B, B)`` (self excluded) symmetrised. Test node ``t``: Eq. 3 over
its distances to the bank gives ``p_tj`` for its ``s`` nearest bank samples; each becomes
a *directed* edge ``j -> t`` with weight ``p_tj``. Test nodes send no messages, so the
bank nodes' states never depend on the test data and the output of ``t`` depends on
``x_t``, the bank and the weights only. Run inside the row-invariant context
(:mod:`tg_cnn2gnn.nn._invariant`) and on the edge list, the output is bit-identical under
any batching (batch size 1 included). :class:`~tg_cnn2gnn.inference.BankPredictor`
computes the same logits with the bank part precomputed once.
"""
from __future__ import annotations

import torch
from torch import Tensor

from tg_cnn2gnn.functional.graph import topk_to_edges
from tg_cnn2gnn.functional.simplex import sparse_simplex_topk
from tg_cnn2gnn.inference._common import batches, effective_sparsity, iter_ranges, out_channels, student_on_edges


def bank_codes(model, train_x: Tensor, bank: Tensor, *, mask_diag: bool) -> tuple[Tensor, Tensor, Tensor]:
    """Bank features ``xb [|B|, F]``, codes ``cb [|B|, K]`` and distances ``d_bb [|B|, |B|]``
    (diagonal set to ``inf`` when ``mask_diag``)."""
    xb = train_x.index_select(0, bank)
    cb = model.code(xb)
    d_bb = model.dist(cb, cb, bank)
    if mask_diag:
        d_bb = d_bb.clone()
        d_bb.fill_diagonal_(float("inf"))
    return xb, cb, d_bb


def bank_graph(model, d_bb: Tensor) -> tuple[Tensor, Tensor]:
    """The bank's own graph ``(edge_index [2, E], edge_weight [E])``: Eq. 3 over ``d_bb``
    (self excluded, ``s`` capped at ``|B| - 2``), :math:`A = (P + P^\\top)/2`."""
    nb = d_bb.size(0)
    s_bank = effective_sparsity(model.s, nb - 1, what="other bank samples")
    idx, w = sparse_simplex_topk(d_bb, s_bank, exclude_self=True, validate=False)
    return topk_to_edges(idx, w, num_nodes=nb)


def bank_graph_chunked(model, cb: Tensor, bank: Tensor, rows: int = 1024) -> tuple[Tensor, Tensor]:
    """:func:`bank_graph` without the ``[|B|, |B|]`` distance matrix: Eq. 3 rows computed
    ``rows`` bank samples at a time (each row is independent), for banks up to the whole
    training set. Same graph as ``bank_graph(model, d_bb)`` up to float rounding."""
    nb = bank.numel()
    s_bank = effective_sparsity(model.s, nb - 1, what="other bank samples")
    idx, w = [], []
    for a in range(0, nb, rows):
        b = min(nb, a + rows)
        d = model.dist(cb[a:b], cb, bank).clone()                       # [r, nb]
        d[torch.arange(b - a), torch.arange(a, b)] = float("inf")      # self excluded
        i, wt = sparse_simplex_topk(d, s_bank, validate=False)
        idx.append(i)
        w.append(wt)
    return topk_to_edges(torch.cat(idx), torch.cat(w), num_nodes=nb)


def predict_bank(model, x: Tensor, *, train_x: Tensor, bank: Tensor, chunk_size: int,
                 progress: bool = False, **_: object) -> Tensor:
    """Logits ``[T, C]`` of test samples ``x [T, F]`` read from the bank graph (see module doc)."""
    nb = bank.numel()
    xb, cb, d_bb = bank_codes(model, train_x, bank, mask_diag=False)
    ei_bb, ew_bb = bank_graph(model, d_bb)
    s_test = effective_sparsity(model.s, nb, what="bank samples")
    outs = []
    for a, b in iter_ranges(batches(x.size(0), chunk_size), progress, "bank"):
        xc = x[a:b]
        d_tb = model.dist(model.code(xc), cb, bank)                    # [c, nb]
        ti, tw = sparse_simplex_topk(d_tb, s_test, validate=False)
        target = torch.arange(nb, nb + (b - a), device=x.device).repeat_interleave(s_test)
        ei = torch.cat([ei_bb, torch.stack([ti.reshape(-1), target])], dim=1)
        ew = torch.cat([ew_bb, tw.reshape(-1)])
        out = student_on_edges(model, torch.cat([xb, xc]), ei, ew)
        outs.append(out[nb:])
    return torch.cat(outs) if outs else x.new_zeros(0, out_channels(model))
