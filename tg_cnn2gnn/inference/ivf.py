r"""Approximate neighbour search for the frozen-bank predictor: an inverted file (IVF) over the distance columns.

The exact search of :meth:`~tg_cnn2gnn.inference.BankPredictor.neighbours` multiplies a
query's folded code ``[c, 1] [K + 1]`` with every bank column of ``col_wb [K + 1, |B|]``;
at ``|B| = 54,000`` that product streams the whole matrix from memory on every call. The
IVF index clusters the bank's columns into ``nlist`` lists (k-means, scikit-learn, seeded)
and scores a query in two steps:

1. *coarse*: ``[c, 1] @ centroids [K + 1, nlist]``, where a list's centroid column is the
   **mean of its members' folded columns** -- so the coarse score is the mean of the
   members' exact scores, for every metric (``"linear"`` anchor rows included, since the
   score is linear in the column). The ``nprobe`` lists with the smallest coarse score
   are probed.
2. *fine*: the exact score of every member of the probed lists, then the ``k`` smallest.

Layout (plain tensors, so the index saves in the safe checkpoint and exports with
``torch.export``; no data-dependent shapes):

* ``ivf_centroids [K + 1, nlist]`` -- coarse columns (an empty list scores ``+inf``);
* ``ivf_blocks [nlist, K + 1, L]`` -- each list's member columns, padded to the longest
  list ``L`` with the column ``[0, ..., 0, +inf]``, which scores ``+inf`` for any finite
  query. The fine scores of a query against a probed list ``p`` are the sum of the ``K + 1``
  rows of block ``p`` weighted by the query's folded code: one ``F.embedding_bag`` (mode
  ``"sum"``, ``per_sample_weights``) over all queries and probes reads the probed blocks
  in place -- no copy of the candidates, each bag summed in a fixed order, independent of
  the other queries of the call (measured: half the time of a gather + ``bmm`` for one
  query, 15x less for 16);
* ``ivf_ids [nlist, L]`` -- the bank position of each block column (``-1``: padding, never
  selected because the probed lists always hold at least ``k`` real members, see
  :func:`check_nprobe`).

Lists are kept near equal size (k-means centroids, then a capacity-bounded assignment of
at most ``balance x |B| / nlist`` members, default 1.5): the blocks are padded to the
longest list, so one huge list would make every query that probes it score it all.

Memory: ``ivf_blocks`` is a second copy of the distance columns, padded (at most
``balance`` x ``col_wb``), so an IVF predictor holds about 2.5x the exact one's distance
data. Work per query: ``nlist + nprobe x L`` column products instead of ``|B|``. With
``nprobe = nlist`` every member is scored and the neighbours are the exact ones (up to the
float rounding of near ties: the scores are summed in another order than the exact search's
``gemm``, so logits agree to float tolerance, not bit for bit).
"""
from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

#: Buffer names of the index (prefix ``ivf_``).
IVF_BUFFERS = ("ivf_centroids", "ivf_blocks", "ivf_ids")


def _check_int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    return value


def default_nlist(num_bank: int, s: int) -> int:
    """``round(4 sqrt(|B|))`` lists, but no more than ``|B| // (s + 1)`` (lists hold ``s + 1``
    members on average at least, or the search is not worth it), and at least 1."""
    return max(1, min(round(4 * math.sqrt(num_bank)), num_bank // (s + 1)))


def check_nlist(nlist: object, num_bank: int, s: int) -> int:
    """``nlist`` (``None``: :func:`default_nlist`) checked against the bank size: fewer lists
    than bank samples (``nlist >= |B|`` would be lists of single samples, an exact search
    with extra steps)."""
    if nlist is None:
        return default_nlist(num_bank, s)
    nlist = _check_int("nlist", nlist)
    if not 1 <= nlist < num_bank:
        raise ValueError(f"nlist={nlist} is out of range: an IVF index over a bank of {num_bank} samples "
                         f"has 1 to {num_bank - 1} lists (default about 4 sqrt(|B|) = "
                         f"{default_nlist(num_bank, s)}); for small banks use search='exact'")
    return nlist


def min_nprobe(sizes: Tensor, k: int) -> int:
    """Fewest lists whose members are at least ``k`` whichever lists are probed: the
    smallest ``n`` with the ``n`` *smallest non-empty* lists summing to ``>= k`` (an empty
    list's centroid scores ``+inf``, so it is probed only after every non-empty one)."""
    cum = sizes[sizes > 0].sort().values.cumsum(0)
    return int((cum < k).sum().item()) + 1


def default_nprobe(nlist: int, sizes: Tensor, k: int) -> int:
    """``ceil(sqrt(nlist))`` lists, at least :func:`min_nprobe`, at most ``nlist``.

    Measured recall of the ``s = 10`` nearest (Fashion-MNIST test images, main-job heads
    trained 300 Adam steps): embedding head 0.999 (bank 1,000), 0.997 (10,000), 0.9997
    (54,000); anchor head 0.995, 0.981, 1.000. Half as many lists gave 0.98-0.99 for the
    embedding head; ``benchmarks/predictor_latency.py`` reports it per bank size."""
    return min(nlist, max(math.ceil(math.sqrt(nlist)), min_nprobe(sizes, k)))


def check_nprobe(nprobe: object, sizes: Tensor, k: int) -> int:
    """``nprobe`` (``None``: :func:`default_nprobe`) checked against the lists ``sizes [nlist]``:
    at most ``nlist``, and enough lists that any ``nprobe`` of them hold ``k`` (= s + 1) members."""
    nlist = sizes.numel()
    if nprobe is None:
        return default_nprobe(nlist, sizes, k)
    nprobe = _check_int("nprobe", nprobe)
    if not 1 <= nprobe <= nlist:
        raise ValueError(f"nprobe={nprobe} is out of range: the index has nlist={nlist} lists, so nprobe "
                         f"must be between 1 and {nlist} (nprobe=nlist scores every bank sample)")
    need = min_nprobe(sizes, k)
    if nprobe < need:
        raise ValueError(f"nprobe={nprobe} is too small: the index's {nprobe} smallest non-empty list(s) "
                         f"hold fewer than s + 1 = {k} bank samples, the neighbours Eq. 3 needs; "
                         f"use nprobe >= {need} (or a smaller nlist)")
    return nprobe


def _kmeans_labels(feats: Tensor, nlist: int, seed: int, balance: float) -> Tensor:
    """List labels ``[|B|]`` of the rows of ``feats [|B|, D]``: k-means centroids
    (scikit-learn, seeded; above 5,000 rows mini-batch k-means from random centroids, which
    builds the 930 lists of a 54,000 bank in about 2 s where Lloyd / k-means++ take about a
    minute, at the same measured recall), then a capacity-bounded assignment
    (:func:`_capped_assign`) so that no list holds more than ``balance x |B| / nlist``
    members (the index pads every list to the longest, and one huge list would make every
    query that probes it score it all)."""
    import numpy as np
    from sklearn.cluster import KMeans, MiniBatchKMeans
    x = feats.detach().cpu().float().numpy()
    if nlist == 1:
        return torch.zeros(x.shape[0], dtype=torch.long)
    if x.shape[0] > 5_000:       # random init: k-means++ over 930 lists costs ~10x the fit, same recall
        km = MiniBatchKMeans(n_clusters=nlist, random_state=seed, batch_size=max(4096, 4 * nlist),
                             init="random", n_init=1, max_iter=20, max_no_improvement=5,
                             reassignment_ratio=0.01)
    else:
        km = KMeans(n_clusters=nlist, random_state=seed, n_init=1, max_iter=50)
    dist = torch.from_numpy(np.asarray(km.fit(x).transform(x), dtype=np.float32))   # [|B|, nlist]
    return _capped_assign(dist, math.ceil(balance * x.shape[0] / nlist))


def _capped_assign(dist: Tensor, cap: int, ranks: int = 32) -> Tensor:
    """Each row of ``dist [n, nlist]`` to its nearest list that still has room (``cap``
    members): rows nearest their own centroid choose first, the others fall back to their
    2nd, 3rd, ... nearest list (then to any list with room)."""
    n, nlist = dist.shape
    r = min(ranks, nlist)
    near_d, near = torch.topk(dist, r, dim=1, largest=False, sorted=True)
    count = [0] * nlist
    labels = [0] * n
    near_l = near.tolist()
    for i in torch.argsort(near_d[:, 0], stable=True).tolist():
        for j in near_l[i]:
            if count[j] < cap:
                break
        else:                                       # all r nearest lists full: the nearest with room
            room = torch.tensor(count) < cap
            j = int(torch.where(room, dist[i], torch.full_like(dist[i], float("inf"))).argmin())
        count[j] += 1
        labels[i] = j
    return torch.tensor(labels, dtype=torch.long)


@torch.no_grad()
def build_ivf(col_wb: Tensor, metric: str, k: int, *, nlist: int | None = None, nprobe: int | None = None,
              seed: int = 0, balance: float = 1.5) -> tuple[dict, dict[str, Tensor]]:
    """``(spec, tensors)`` of an IVF index over the folded columns ``col_wb [K + 1, |B|]``.

    The columns are clustered on their code rows (``col_wb[:K]``: ``-2 x`` the codes for the
    distance metrics) or, for the ``"linear"`` metric (anchor rows, inner products), on the
    whole folded column. ``k`` is the number of neighbours a search returns (``s + 1``).
    ``spec``: ``{"nlist", "nprobe", "seed", "list_len"}``."""
    kp1, nb = col_wb.shape
    nlist = check_nlist(nlist, nb, k - 1)
    feats = (col_wb if metric == "linear" else col_wb[:-1]).t()
    labels = _kmeans_labels(feats, nlist, seed, balance).to(col_wb.device)
    sizes = torch.bincount(labels, minlength=nlist)
    nprobe = check_nprobe(nprobe, sizes, k)
    pad = col_wb.new_zeros(kp1)
    pad[-1] = float("inf")
    cent = torch.zeros(nlist, kp1, dtype=col_wb.dtype, device=col_wb.device).index_add_(0, labels, col_wb.t())
    cent = cent / sizes.clamp_min(1).unsqueeze(1).to(cent.dtype)
    cent[sizes == 0] = pad                                            # empty lists are probed last
    length = int(sizes.max().item())
    order = torch.argsort(labels, stable=True)                       # bank positions, list by list
    slot = torch.arange(nb, device=col_wb.device) - (torch.cumsum(sizes, 0) - sizes)[labels[order]]
    ids = torch.full((nlist, length), -1, dtype=torch.long, device=col_wb.device)
    ids[labels[order], slot] = order
    blocks = pad.expand(nlist, length, kp1).clone()
    blocks[labels[order], slot] = col_wb.t()[order]
    spec = {"nlist": nlist, "nprobe": nprobe, "seed": int(seed), "list_len": length}
    return spec, {"ivf_centroids": cent.t().contiguous(), "ivf_blocks": blocks.transpose(1, 2).contiguous(),
                  "ivf_ids": ids}


def list_sizes(ids: Tensor) -> Tensor:
    """Members per list ``[nlist]`` of the padded position tensor ``ids [nlist, L]``."""
    return (ids >= 0).sum(1)


def ivf_search(code1: Tensor, row: Tensor | None, t: dict[str, Tensor], nprobe: int, k: int,
               mm: Callable[[Tensor, Tensor], Tensor]) -> tuple[Tensor, Tensor]:
    """The ``k`` smallest distances ``[T, k]`` (ascending) and their bank positions ``[T, k]``
    of folded queries ``code1 [T, K + 1]`` among the members of their ``nprobe`` nearest lists.

    ``row [T, 1]`` (or ``None`` for the linear metric) is added and clamped at 0 before the
    top-``k``, exactly as the exact search does. ``mm`` computes the coarse product (row-wise
    in deterministic mode); the fine scores are one ``embedding_bag`` bag per (query, probed
    list), so a query's rounding does not depend on the other queries of the call. Memory:
    ``[T, nprobe x L]`` scores."""
    n, kp1 = code1.shape
    blocks = t["ivf_blocks"]                                            # [nlist, K + 1, L]
    coarse = mm(code1, t["ivf_centroids"])                             # [T, nlist]
    probe = torch.topk(coarse, nprobe, dim=1, largest=False, sorted=True).indices       # [T, nprobe]
    rows = probe.unsqueeze(2) * kp1 + torch.arange(kp1, device=code1.device)            # [T, nprobe, K + 1]
    weights = code1.unsqueeze(1).expand(n, nprobe, kp1)
    d = F.embedding_bag(rows.reshape(-1, kp1), blocks.view(-1, blocks.size(2)), mode="sum",
                        per_sample_weights=weights.reshape(-1, kp1)).view(n, -1)      # [T, nprobe * L]
    if row is not None:
        d = (row + d).clamp_min(0)
    val, idx = torch.topk(d, k, dim=1, largest=False, sorted=True)
    return val, t["ivf_ids"].index_select(0, probe.flatten()).view(n, -1).gather(1, idx)
