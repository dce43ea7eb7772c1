"""Helpers shared by the inference mechanisms: the bank draw, batching and input checks."""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor

from tg_cnn2gnn.functional._checks import check_positive_int
from tg_cnn2gnn.functional.graph import topk_to_edges
from tg_cnn2gnn.functional.simplex import sparse_simplex_topk


def effective_sparsity(s: int, candidates: int, *, what: str = "candidates") -> int:
    """:func:`tg_cnn2gnn.nn.head.effective_sparsity` (imported late: ``tg_cnn2gnn.nn`` imports
    this package's registry, so nothing here imports ``tg_cnn2gnn.nn`` at module level)."""
    from tg_cnn2gnn.nn.head import effective_sparsity as eff
    return eff(s, candidates, what=what)


def select_bank(num_train: int, bank_size: int, seed: int = 0) -> Tensor:
    """``bank_size`` distinct training indices drawn from ``seed`` (sorted), independent of any test data."""
    check_positive_int("bank_size", bank_size)
    if bank_size > num_train:
        raise ValueError(f"bank_size={bank_size} exceeds the number of training samples ({num_train})")
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(num_train, generator=gen)[:bank_size].sort().values


def resolve_bank(num_train: int, *, bank_size: int | None, bank: Tensor | None, seed: int,
                 device: torch.device) -> Tensor:
    """The bank ``[|B|]`` of training ids: ``bank`` checked, or a seeded draw of ``bank_size``
    (default ``min(100, num_train)``; 100 is the paper's batch size). At least 3 samples."""
    if bank is None:
        if bank_size is None:
            bank_size = min(100, num_train)
        bank = select_bank(num_train, bank_size, seed)
    else:
        from tg_cnn2gnn.nn.head import check_index
        bank = check_index(bank, bank.numel() if isinstance(bank, Tensor) else 0, num_train, name="bank")
        if bank.unique().numel() != bank.numel():
            raise ValueError("bank contains duplicate training indices")
    bank = bank.to(device)
    if bank.numel() < 3:
        raise ValueError(f"the bank needs at least 3 training samples, got {bank.numel()}")
    return bank


def proxy_distances(d_tr: Tensor, s: int) -> tuple[Tensor, Tensor]:
    r"""Mechanism 2's proxy rule on the test-to-training distances ``d_tr [T, R]``.

    ``P_TR`` follows Eq. 3 (``s`` capped at ``R - 1``); test sample ``k``'s proxy is the
    training column :math:`r(k) = \arg\max_r p_{kr}` (ties: the nearer column in top-k
    order, i.e. the nearest training sample); the approximate test-test distance is
    :math:`d(i, k) = d_{\mathrm{tr}}[i, r(k)]`.

    Returns:
        ``proxy [T]`` (column positions in ``d_tr``) and ``d_tt [T, T]``.
    """
    s = effective_sparsity(s, d_tr.size(1), what="training samples in the training batch")
    idx, w = sparse_simplex_topk(d_tr, s, stable=True)
    proxy = idx.gather(1, w.argmax(dim=1, keepdim=True)).squeeze(1)
    return proxy, d_tr.index_select(1, proxy)


def flat(x: Tensor) -> Tensor:
    """Samples as rows: ``[N, ...] -> [N, F]``."""
    return x.flatten(1) if x.dim() > 2 else x


def batches(n: int, size: int, min_last: int = 1) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``size``; a tail shorter than ``min_last`` joins the previous one."""
    out = [(a, min(n, a + size)) for a in range(0, n, size)]
    if len(out) > 1 and out[-1][1] - out[-1][0] < min_last:
        out[-2] = (out[-2][0], n)
        out.pop()
    return out


def iter_ranges(ranges: list, progress: bool, desc: str) -> Iterator:
    """``ranges``, through a tqdm bar when ``progress``."""
    if not progress:
        return iter(ranges)
    from tqdm.auto import tqdm
    return iter(tqdm(ranges, desc=desc))


def student_on_edges(model, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
    """The student on an edge list, never through a dense matrix: a dense product mixes a
    node's terms with the (zero) terms of unconnected nodes in an order that depends on
    their positions, which would break bit-identity across batchings."""
    from tg_cnn2gnn.nn.student import GraphStudent
    if isinstance(model.student, GraphStudent):
        return model.student(x, edge_index, edge_weight, dense=False)
    return model.student(x, edge_index, edge_weight)


def out_channels(model) -> int:
    return int(getattr(model.student, "out_channels", 0))


def run_batch(model, xt: Tensor, d_tt: Tensor) -> Tensor:
    """Eq. 3 over a test batch's distances ``d_tt [T, T]`` (self excluded), the student on it."""
    s = effective_sparsity(model.s, xt.size(0) - 1, what="other samples in the test batch")
    # d_tt repeats a column for test samples that share a proxy: ties are the rule, so they
    # are broken by index on every device (CPU and CUDA agree)
    idx, w = sparse_simplex_topk(d_tt, s, exclude_self=True, validate=False, stable=True)
    ei, ew = topk_to_edges(idx, w, num_nodes=xt.size(0))
    return model.student(xt, ei, ew)
