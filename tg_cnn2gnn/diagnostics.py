r"""Is my graph learning? Class-consistency of a model's learned neighbours.

For query samples (e.g. the validation or test set) and a bank of training samples,
:func:`graph_class_consistency` measures how often a query's ``s`` learned neighbours in the
bank -- exactly the neighbours the ``bank`` inference mechanism connects it to (Eq. 3 over
``model.dist(model.code(x_q), model.code(x_bank), bank)``) -- share its class, next to the
same figure for raw-feature Euclidean neighbours (the k-NN reference) and chance. A head
that learns a useful graph lies well above the raw reference; one that does not stays near
chance (the paper's Figure 3 is the picture of this number).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from tg_cnn2gnn.functional._checks import check_positive_int
from tg_cnn2gnn.functional.distance import pairwise_distance
from tg_cnn2gnn.functional.simplex import sparse_simplex_topk
from tg_cnn2gnn.nn.head import check_index, effective_sparsity
from tg_cnn2gnn.nn.model import select_bank


def _labels(name: str, y: object, n: int) -> Tensor:
    if not isinstance(y, Tensor) or y.shape != (n,):
        raise ValueError(f"{name} must be a 1-D tensor with {n} labels (one per sample), got "
                         f"{tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__}")
    if y.is_floating_point() or y.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor, got dtype {y.dtype}")
    return y.long()


def _shares(dist: Tensor, s: int, y_q: Tensor, y_bank: Tensor) -> tuple[Tensor, Tensor]:
    """Per query: unweighted and Eq. 3-weighted share of its ``s`` nearest bank columns of its class."""
    idx, w = sparse_simplex_topk(dist, s, validate=False)
    same = (y_bank[idx] == y_q.view(-1, 1)).to(w.dtype)
    return same.mean(1), (w * same).sum(1)


@torch.no_grad()
def graph_class_consistency(model: nn.Module, x: Tensor, y: Tensor, train_x: Tensor, train_y: Tensor, *,
                            bank_size: int | None = None, bank: Tensor | None = None, seed: int = 0,
                            chunk_size: int = 256) -> dict[str, float]:
    r"""Class-consistency of the learned graph of ``model`` on queries ``x`` against a bank.

    Args:
        model: an :class:`~tg_cnn2gnn.nn.InductiveGraphModel` (``code``, ``dist``, ``s``).
        x: ``[Q, F]`` query samples (flattened if more than 2-D), not in the bank.
        y: ``[Q]`` their labels.
        train_x: ``[n_train, F]`` training samples, row ``j`` = training id ``j``.
        train_y: ``[n_train]`` their labels.
        bank_size: size of a bank drawn with :func:`~tg_cnn2gnn.nn.select_bank` from ``seed``
            (default: ``min(1000, n_train)``).
        bank: explicit ``[bank_size]`` training ids instead.
        seed: seed of the bank draw.
        chunk_size: queries per chunk (memory only: at most ``chunk_size x |bank|`` distances).

    Returns:
        ``{"learned", "learned_weighted", "raw", "raw_weighted", "chance", "s", "bank_size",
        "num_queries"}``: ``learned`` is the mean over queries of the share of its ``s``
        learned neighbours in the bank that have its class, ``learned_weighted`` the same
        with each neighbour weighted by its Eq. 3 weight; ``raw`` / ``raw_weighted`` the same
        for Euclidean distances of the raw features; ``chance`` the share expected from
        neighbours drawn at random from the bank, :math:`\sum_c \pi^{q}_c \pi^{bank}_c`.
        ``s`` is capped at ``|bank| - 1`` (as the ``bank`` mechanism does).
    """
    check_positive_int("chunk_size", chunk_size)
    if not isinstance(x, Tensor) or not isinstance(train_x, Tensor):
        raise TypeError("x and train_x must be torch.Tensors")
    x = x.flatten(1) if x.dim() > 2 else x
    train_x = train_x.flatten(1) if train_x.dim() > 2 else train_x
    if x.dim() != 2 or train_x.dim() != 2 or x.size(1) != train_x.size(1):
        raise ValueError(f"x {tuple(x.shape)} and train_x {tuple(train_x.shape)} must be [N, F] with the "
                         f"same F")
    y = _labels("y", y, x.size(0))
    train_y = _labels("train_y", train_y, train_x.size(0))
    if x.size(0) == 0:
        raise ValueError("x has no query samples")
    n = train_x.size(0)
    if bank is None:
        bank = select_bank(n, min(1000, n) if bank_size is None else bank_size, seed)
    else:
        bank = check_index(bank, bank.numel() if isinstance(bank, Tensor) else 0, n, name="bank")
        if bank.unique().numel() != bank.numel():
            raise ValueError("bank contains duplicate training indices")
    bank = bank.to(train_x.device)
    nb = bank.numel()
    s = effective_sparsity(model.s, nb, what="bank samples")
    was_training = model.training
    model.eval()
    try:
        xb, yb = train_x.index_select(0, bank), train_y.index_select(0, bank.to(train_y.device))
        cb = model.code(xb)
        sums = torch.zeros(4, dtype=torch.float64)
        for xq, yq in zip(x.split(chunk_size), y.split(chunk_size)):
            yq = yq.to(yb.device)
            parts = (*_shares(model.dist(model.code(xq), cb, bank), s, yq, yb),
                     *_shares(pairwise_distance(xq, xb, "sqeuclidean"), s, yq, yb))
            sums += torch.stack([p.double().sum().cpu() for p in parts])
    finally:
        model.train(was_training)
    k = int(max(int(y.max()), int(train_y.max()))) + 1
    pq = torch.bincount(y.cpu(), minlength=k).double() / y.numel()
    pb = torch.bincount(yb.cpu(), minlength=k).double() / nb
    m = sums / x.size(0)
    return {"learned": float(m[0]), "learned_weighted": float(m[1]), "raw": float(m[2]),
            "raw_weighted": float(m[3]), "chance": float((pq * pb).sum()), "s": s, "bank_size": nb,
            "num_queries": int(x.size(0))}
