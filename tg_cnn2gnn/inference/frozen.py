r"""Student layers with the bank frozen: each conv's output at a test node from precomputed bank state.

In ``"bank"`` inference a test node ``t`` has in-edges ``j -> t`` from its ``s`` nearest
bank nodes (weights ``w_tj``, summing to 1) and sends nothing, so at every layer the bank
nodes' states (and their degrees) are the same whatever test nodes are present. A conv
whose output at ``t`` reads only ``t``'s own state, its in-neighbours' states and their
degrees (*marginal* convs) can therefore be computed from per-layer bank tensors saved
once, at ``O(s x width)`` per test node. With ``agg(Y) = sum_j w_tj Y[j]``,
``dinv = deg^{-1/2}`` and ``fill`` the self-loop weight (0 without self-loops):

* ``gcn`` (``GCNConv``): ``dinv_t (agg(dinv_B lin(H_B)) + fill dinv_t lin(h_t)) + b``,
  ``deg_t = fill + sum_j w_tj`` (without ``normalize``: ``agg(lin(H_B)) + b``);
* ``sg``/``ssg``/``tag``: the same propagation, hop by hop, reading the bank's hop-``k``
  states (``SGConv``: ``lin`` of hop ``K``; ``SSGConv``: ``lin(alpha h + (1-alpha)/K sum_k
  hop_k)``; ``TAGConv``: ``sum_k lins[k](hop_k) + b``, no self-loops);
* ``graph`` (``GraphConv``, ``aggr="add"``): ``lin_rel(agg(H_B)) + lin_root(h_t)``;
* ``le`` (``LEConv``): ``agg(lin1(H_B)) - (sum_j w_tj) lin2(h_t) + lin3(h_t)``.

Not freezable (:class:`~tg_cnn2gnn.inference.BankPredictor` raises ``ValueError``):
``cheb`` -- ``ChebConv``'s ``sym`` Laplacian takes degrees over *outgoing* edges; a test
node sends none, so its degree is 0 and every message it receives is scaled by
``0^{-1/2} := 0``: under ``"bank"`` a ChebConv test node ignores the bank entirely (its
output is a per-sample function of ``x_t``). A predictor would reproduce that silently, so
it is refused; use ``mechanism="one_by_one"`` or ``"batch"`` for ChebConv students.
``arma`` -- ``ARMAConv``'s internal stacks and recursion are not implemented here (it is
also outside the row-invariance guarantee). Use ``predict(mechanism=...)`` for those.

Every layer is described by a JSON-able ``spec`` dict and a flat dict of tensors (no
modules), so a saved predictor is rebuilt from data alone.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch_geometric.nn import conv as pyg

#: Conv names (of :data:`tg_cnn2gnn.nn.CONVS`) whose bank states can be frozen.
FREEZABLE_CONVS = ("gcn", "graph", "sg", "ssg", "tag", "le")

_WHY_NOT = {
    "ChebConv": "ChebConv's sym Laplacian counts degrees over outgoing edges and a bank test node "
                "sends none, so under mechanism='bank' it receives only zero-weight messages and "
                "ignores the bank (use mechanism='one_by_one' or 'batch' for ChebConv)",
    "ARMAConv": "ARMAConv's internal stacks are not implemented by the frozen predictor",
}

Lin = Callable[[Tensor, Tensor, Tensor | None], Tensor]


def agg(w: Tensor, nbr: Tensor, y: Tensor) -> Tensor:
    """``sum_j w[t, j] y[nbr[t, j]]``: ``w [T, s]``, ``nbr [T, s]``, ``y [nb, H]`` -> ``[T, H]``.

    One weighted bag per test node (``F.embedding_bag``, mode ``"sum"``), read in place from
    ``y`` and summed in a fixed order, so a node's rounding does not depend on the other
    nodes of the call; one operation instead of a gather and a ``bmm``."""
    return F.embedding_bag(nbr, y, per_sample_weights=w, mode="sum")


def _dinv(deg: Tensor) -> Tensor:
    d = deg.pow(-0.5)
    return d.masked_fill(torch.isinf(d), 0.0)


def _bank_norm(ei: Tensor, ew: Tensor, nb: int, fill: float) -> Tensor:
    """``dinv_B [nb]`` of the bank graph (degree = incoming weight + ``fill``, as ``gcn_norm``)."""
    deg = ew.new_full((nb,), float(fill)).index_add_(0, ei[1], ew)
    return _dinv(deg)


def _bank_hop(x: Tensor, ei: Tensor, ew: Tensor, dinv: Tensor | None, fill: float) -> Tensor:
    """One normalised propagation over the bank graph: ``x' = D^-1/2 (A + fill I) D^-1/2 x``
    (``dinv=None``: ``x' = A x``)."""
    if dinv is None:
        return torch.zeros_like(x).index_add_(0, ei[1], ew.unsqueeze(1) * x[ei[0]])
    norm = dinv[ei[0]] * ew * dinv[ei[1]]
    out = torch.zeros_like(x).index_add_(0, ei[1], norm.unsqueeze(1) * x[ei[0]])
    return out + (fill * dinv * dinv).unsqueeze(1) * x


def _lin_tensors(prefix: str, lin, out: dict[str, Tensor]) -> None:
    out[prefix + "w"] = lin.weight.detach().clone()
    if lin.bias is not None:
        out[prefix + "b"] = lin.bias.detach().clone()


def freeze_conv(conv, h_bank: Tensor, ei: Tensor, ew: Tensor, lin: Lin) -> tuple[dict, dict[str, Tensor]]:
    """``(spec, tensors)`` of one conv with bank input states ``h_bank [nb, F_in]`` on the bank
    graph ``(ei, ew)``. ``ValueError`` for convs that cannot be frozen."""
    nb = h_bank.size(0)
    t: dict[str, Tensor] = {}
    name = type(conv).__name__
    if type(conv) is pyg.GCNConv:
        if getattr(conv, "cached", False):
            raise ValueError("GCNConv(cached=True) cannot be frozen: its cache holds a training graph")
        fill = (2.0 if conv.improved else 1.0) if conv.add_self_loops else 0.0
        _lin_tensors("lin_", conv.lin, t)
        if conv.bias is not None:
            t["bias"] = conv.bias.detach().clone()
        z = lin(h_bank, t["lin_w"], None)
        if conv.normalize:
            z = _bank_norm(ei, ew, nb, fill).unsqueeze(1) * z
        t["y0"] = z
        return {"kind": "gcn", "fill": fill, "normalize": bool(conv.normalize), "hops": 1}, t
    if type(conv) in (pyg.SGConv, pyg.SSGConv, pyg.TAGConv):
        kind = {"SGConv": "sg", "SSGConv": "ssg", "TAGConv": "tag"}[name]
        normalize = bool(getattr(conv, "normalize", True))
        fill = 1.0 if (kind != "tag" and conv.add_self_loops) else 0.0
        if getattr(conv, "cached", False):
            raise ValueError(f"{name}(cached=True) cannot be frozen: its cache holds a training graph")
        dinv = _bank_norm(ei, ew, nb, fill) if normalize else None
        x = h_bank
        for k in range(conv.K):
            t[f"y{k}"] = x if dinv is None else dinv.unsqueeze(1) * x
            x = _bank_hop(x, ei, ew, dinv, fill)
        if kind == "tag":
            for k, l in enumerate(conv.lins):
                t[f"lins{k}_w"] = l.weight.detach().clone()
            if conv.bias is not None:
                t["bias"] = conv.bias.detach().clone()
        else:
            _lin_tensors("lin_", conv.lin, t)
        spec = {"kind": kind, "fill": fill, "normalize": normalize, "hops": int(conv.K)}
        if kind == "ssg":
            spec["alpha"] = float(conv.alpha)
        return spec, t
    if type(conv) is pyg.GraphConv:
        if conv.aggr != "add":
            raise ValueError(f"GraphConv(aggr={conv.aggr!r}) cannot be frozen; only aggr='add'")
        _lin_tensors("rel_", conv.lin_rel, t)
        _lin_tensors("root_", conv.lin_root, t)
        t["y0"] = h_bank.clone()
        return {"kind": "graph", "hops": 1}, t
    if type(conv) is pyg.LEConv:
        _lin_tensors("lin1_", conv.lin1, t)
        _lin_tensors("lin2_", conv.lin2, t)
        _lin_tensors("lin3_", conv.lin3, t)
        t["y0"] = lin(h_bank, t["lin1_w"], t.get("lin1_b"))
        return {"kind": "le", "hops": 1}, t
    why = _WHY_NOT.get(name, f"{name} is not one of the convs the frozen predictor implements")
    raise ValueError(f"cannot freeze the bank for conv {name}: {why}; freezable: "
                     f"{', '.join(FREEZABLE_CONVS)}. Use model.predict(mechanism='bank') instead")


def _hop(spec: dict, y: Tensor, x: Tensor, w: Tensor, nbr: Tensor, dinv_t: Tensor | None) -> Tensor:
    if dinv_t is None:
        return agg(w, nbr, y)
    d = dinv_t.unsqueeze(1)
    return d * (agg(w, nbr, y) + spec["fill"] * d * x)


def frozen_forward(spec: dict, t: dict[str, Tensor], h: Tensor, nbr: Tensor, w: Tensor,
                   lin: Lin, *, own: Tensor | None = None) -> Tensor:
    """One frozen layer at test nodes: ``h [T, F_in]`` with bank neighbours ``nbr [T, s]``
    and Eq. 3 weights ``w [T, s]`` (rows summing to 1) -> ``[T, F_out]``.

    ``own [T, F_out]``: for a ``gcn`` layer, ``lin(h)`` already computed by the caller (the
    predictor fuses it with the head's first product)."""
    kind = spec["kind"]
    if kind == "gcn":
        a = agg(w, nbr, t["y0"])
        if spec["normalize"]:
            # dinv_t (agg + fill dinv_t z) + b as two scaled adds; Eq. 3 weights sum to 1,
            # so every test node has degree fill + 1 and dinv_t is a constant
            z = own if own is not None else lin(h, t["lin_w"], None)
            fill = spec["fill"]
            d = (fill + 1.0) ** -0.5
            out = torch.add(t["bias"], a, alpha=d) if "bias" in t else a * d
            return out.add_(z, alpha=fill * d * d)
        return a + t["bias"] if "bias" in t else a
    if kind in ("sg", "ssg", "tag"):
        dinv_t = _dinv(spec["fill"] + w.sum(1)) if spec["normalize"] else None
        if kind == "tag":
            out = lin(h, t["lins0_w"], None)
        elif kind == "ssg":
            acc = spec["alpha"] * h
        x = h
        for k in range(spec["hops"]):
            x = _hop(spec, t[f"y{k}"], x, w, nbr, dinv_t)
            if kind == "tag":
                out = out + lin(x, t[f"lins{k + 1}_w"], None)
            elif kind == "ssg":
                acc = acc + (1 - spec["alpha"]) / spec["hops"] * x
        if kind == "tag":
            return out + t["bias"] if "bias" in t else out
        return lin(acc if kind == "ssg" else x, t["lin_w"], t.get("lin_b"))
    if kind == "graph":
        return (lin(agg(w, nbr, t["y0"]), t["rel_w"], t.get("rel_b"))
                + lin(h, t["root_w"], t.get("root_b")))
    if kind == "le":
        return (agg(w, nbr, t["y0"]) - w.sum(1, keepdim=True) * lin(h, t["lin2_w"], t.get("lin2_b"))
                + lin(h, t["lin3_w"], t.get("lin3_b")))
    raise ValueError(f"unknown frozen layer kind {kind!r}")
