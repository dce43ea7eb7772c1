r"""Training graphs for a learned graph head: batch-internal, or against a training pool (Eq. 4).

The paper's Eq. 4 ranks the neighbours ``j`` of a sample over the training set
(``j in I_train``). A graph built inside a random batch of 100 cannot be class-consistent
(10 classes: about 9 same-class candidates per node, so most of ``s`` edges must cross
classes) and has other statistics than the inference graphs, where a test sample is
connected to a bank of training samples (DESIGN §2-3). :class:`TrainingPool` builds the
training graph the way inference does: each batch sample gets its ``s`` nearest samples of
a pool of training samples (up to the whole training set) under the learned distance, and
those pool samples enter the student as extra nodes, like bank samples.

A distiller uses a builder through a duck-typed protocol::

    builder.on_epoch_start(model, train_x [N, F], train_y [N], epoch)   # no grad
    g = builder(model, x [B, F], y [B], index [B])                      # a TrainingGraph
    logits = model.student(g.x, g.edge_index, g.edge_weight)[:g.num_batch]
    loss = task_loss(logits, ...) + sum(g.aux_losses.values())

Model API relied on (:class:`~tg_cnn2gnn.nn.InductiveGraphModel`): ``model.s``,
``model.graph(x, index)`` (:class:`BatchGraph` only), ``model.code(x)``,
``model.dist(code_rows, code_cols, index_cols)`` and ``model.test_distances`` (whether
distances between arbitrary samples exist, i.e. codes of columns are needed).
:func:`warm_start_anchors` uses ``head.encode``, ``head.anchor_weight``, ``head.anchor_bias``.
"""
from __future__ import annotations

import math
from typing import NamedTuple

import torch
from torch import Tensor, nn

from tg_cnn2gnn.functional._checks import check_positive_int
from tg_cnn2gnn.functional.graph import topk_to_edges
from tg_cnn2gnn.functional.simplex import simplex_weights, sparse_simplex_topk
from tg_cnn2gnn.nn.head import effective_sparsity


class TrainingGraph(NamedTuple):
    """The graph a training step runs the student on.

    ``x [N_nodes, F]``: node features, the batch's ``num_batch`` rows first (their logits are
    ``student(...)[:num_batch]``); ``edge_index [2, E]`` (edge ``j -> i``) and
    ``edge_weight [E]`` (differentiable w.r.t. the graph head); ``aux_losses``: extra loss
    terms, already weighted, to add to the task loss; ``node_index [N_nodes]``: the training
    id of every node (e.g. to look up cached teacher logits of pool nodes for a relation term).
    """

    x: Tensor
    edge_index: Tensor
    edge_weight: Tensor
    num_batch: int
    aux_losses: dict[str, Tensor]
    node_index: Tensor | None = None


def _flat(x: Tensor) -> Tensor:
    return x.flatten(1) if x.dim() > 2 else x


def _mask_own(d: Tensor, ids: Tensor, index: Tensor) -> Tensor:
    """``d [B, P]`` with ``+inf`` where column ``ids[p]`` is row ``index[b]``'s own training id."""
    return d.masked_fill(ids.view(1, -1) == index.view(-1, 1), float("inf"))


def _check_weight(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) \
            or value < 0:
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return float(value)


class BatchGraph:
    """Today's batch-internal training graph: exactly ``model.graph(x, index)`` over the batch.

    ``nca_weight > 0`` adds ``nca_weight * pool_nca_loss`` over the batch's own learned
    distances (each sample against the other batch samples) as ``aux_losses["nca"]``.

    ``nca_memory > 0`` (ours) widens the NCA term's candidates from the batch to the batch
    plus a memory queue of the last ``nca_memory`` samples of the epoch (MoCo-style: their
    codes as they were computed, without grad; an anchor head keeps only their ids, its
    distances to any training id are always current). The student's graph is unchanged:
    only the label supervision of the distances sees more same-class candidates than the ~9
    a random batch of 100 holds, closer to the statistics of an inference bank. The queue is
    emptied at each epoch start, so a run resumed at an epoch boundary repeats exactly.
    """

    def __init__(self, nca_weight: float = 0.0, nca_tau: float = 1.0, nca_memory: int = 0) -> None:
        self.nca_weight = _check_weight("nca_weight", nca_weight)
        if isinstance(nca_tau, bool) or not isinstance(nca_tau, (int, float)) or not nca_tau > 0:
            raise ValueError(f"nca_tau must be a number > 0, got {nca_tau!r}")
        self.nca_tau = float(nca_tau)
        if isinstance(nca_memory, bool) or not isinstance(nca_memory, int) or nca_memory < 0:
            raise ValueError(f"nca_memory must be an integer >= 0 (0 = the batch only), got {nca_memory!r}")
        self.nca_memory = nca_memory
        self._clear()

    def _clear(self) -> None:
        self._mem_ids: Tensor | None = None
        self._mem_y: Tensor | None = None
        self._mem_codes: Tensor | None = None

    def on_epoch_start(self, model: nn.Module, train_x: Tensor, train_y: Tensor, epoch: int) -> None:
        """Empty the NCA memory queue (nothing else to refresh)."""
        self._clear()

    def _push(self, code: Tensor | None, index: Tensor, y: Tensor) -> None:
        """Append the batch to the queue (oldest first), keeping the last ``nca_memory``."""
        m = self.nca_memory
        def keep(old: Tensor | None, new: Tensor) -> Tensor:
            new = new.detach()
            return (new if old is None else torch.cat([old, new]))[-m:]
        self._mem_ids = keep(self._mem_ids, index.long())
        self._mem_y = keep(self._mem_y, y)
        if code is not None:
            self._mem_codes = keep(self._mem_codes, code)

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, index: Tensor) -> TrainingGraph:
        x = _flat(x)
        edge_index, edge_weight = model.graph(x, index)
        aux: dict[str, Tensor] = {}
        if self.nca_weight > 0:
            code = model.code(x)
            d = model.dist(code, code, index)
            d = d.masked_fill(torch.eye(x.size(0), dtype=torch.bool, device=x.device), float("inf"))
            y_cols = y
            if self.nca_memory and self._mem_ids is not None:
                ids = self._mem_ids
                d_mem = _mask_own(model.dist(code, self._mem_codes, ids), ids, index)
                d, y_cols = torch.cat([d, d_mem], 1), torch.cat([y, self._mem_y])
            aux["nca"] = self.nca_weight * pool_nca_loss(d, y, y_cols, self.nca_tau)
            if self.nca_memory:
                self._push(code if model.test_distances else None, index, y)
        return TrainingGraph(x, edge_index, edge_weight, x.size(0), aux, index)

    def __repr__(self) -> str:
        extra = f", nca_memory={self.nca_memory}" if self.nca_memory else ""
        return f"BatchGraph(nca_weight={self.nca_weight}{extra})"


def pool_nca_loss(dist: Tensor, y_batch: Tensor, y_pool: Tensor, tau: float = 1.0) -> Tensor:
    r"""NCA-style label supervision of learned distances (ours, beyond the paper).

    With :math:`q_{ij} = \mathrm{softmax}_j(-d_{ij}/\tau)` over the pool columns,
    :math:`\mathcal{L} = -\frac{1}{|V|}\sum_{i \in V} \log \sum_{j: y_j = y_i} q_{ij}`:
    the negative log-probability that a sample's soft nearest pool neighbour has its class.
    ``+inf`` entries (e.g. a sample's own column) take no part; rows ``V`` without a
    finite same-class column are skipped (0 if none is left).

    Args:
        dist: ``[B, P]`` learned distances from batch samples to pool samples (differentiable).
        y_batch: ``[B]`` labels of the batch.
        y_pool: ``[P]`` labels of the pool columns.
        tau: temperature > 0.
    """
    if not isinstance(dist, Tensor) or dist.dim() != 2:
        raise ValueError(f"dist must be a 2-D tensor [B, P], got "
                         f"{tuple(dist.shape) if isinstance(dist, Tensor) else type(dist).__name__}")
    if not isinstance(y_batch, Tensor) or y_batch.shape != (dist.size(0),):
        raise ValueError(f"y_batch must have shape [{dist.size(0)}] (one label per row of dist)")
    if not isinstance(y_pool, Tensor) or y_pool.shape != (dist.size(1),):
        raise ValueError(f"y_pool must have shape [{dist.size(1)}] (one label per column of dist)")
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    finite = torch.isfinite(dist)
    logits = (-dist.float() / tau).masked_fill(~finite, float("-inf"))
    same = (y_batch.view(-1, 1) == y_pool.view(1, -1)) & finite
    valid = same.any(dim=1)
    if not bool(valid.any()):
        return dist.masked_fill(~finite, 0.0).sum() * 0.0
    logits, same = logits[valid], same[valid]
    log_all = torch.logsumexp(logits, dim=1)
    log_pos = torch.logsumexp(logits.masked_fill(~same, float("-inf")), dim=1)
    return (log_all - log_pos).mean()


@torch.no_grad()
def warm_start_anchors(head: nn.Module, train_x: Tensor, scale: float = 1.0, chunk_size: int = 4096) -> None:
    r"""Initialise the anchor head's rows from its encoder (ours, beyond the paper).

    With :math:`h_j` = ``head.encode(x_j)``: :math:`w_j = -\text{scale}\, h_j`,
    :math:`b_j = \tfrac{\text{scale}}{2}\lVert h_j\rVert^2`, so that
    :math:`d_{ij} = h_i^\top w_j + b_j = \tfrac{\text{scale}}{2}(\lVert h_i - h_j\rVert^2 - \lVert h_i\rVert^2)`:
    row by row (Eq. 3 ignores a per-row shift) the learned distance starts as the squared
    Euclidean distance of the encoder's features instead of a random one, and every anchor
    row starts meaningful although it is trained only when its sample is selected.

    Args:
        head: a :class:`~tg_cnn2gnn.nn.LearnedGraphHead` with ``form="anchor"``.
        train_x: ``[num_train, F]`` training samples, row ``j`` = training id ``j``.
        scale: > 0.
    """
    if getattr(head, "form", None) != "anchor":
        raise ValueError(f"warm_start_anchors needs an anchor-form head, got form="
                         f"{getattr(head, 'form', None)!r}")
    if isinstance(scale, bool) or not isinstance(scale, (int, float)) or not math.isfinite(scale) or scale <= 0:
        raise ValueError(f"scale must be a finite number > 0, got {scale!r}")
    check_positive_int("chunk_size", chunk_size)
    train_x = _flat(train_x)
    if train_x.size(0) != head.num_train:
        raise ValueError(f"train_x has {train_x.size(0)} rows but the head has num_train={head.num_train}")
    h = torch.cat([head.encode(c) for c in train_x.split(chunk_size)])
    head.anchor_weight.copy_(-scale * h)
    if head.anchor_bias is not None:
        head.anchor_bias.copy_(0.5 * scale * (h * h).sum(1, keepdim=True))


class TrainingPool:
    r"""Eq. 4 over a training pool: each batch sample connected to its ``s`` nearest pool samples.

    Per step, for a batch ``x_B`` with training ids ``index``:

    1. *rank* (no grad): learned distances from the batch to every pool sample, in column
       chunks (anchor head: ``head(x_B)[:, pool]``, always current; embedding head: to the
       pool's cached codes, refreshed memory-bank style every ``refresh_every`` epochs);
       each row keeps its ``s + 1`` nearest, its own id excluded;
    2. *weigh* (grad): the kept distances are recomputed from the current model, sorted,
       and give the Eq. 3 weights ``p_ij``;
    3. *nodes*: the batch, then every selected pool sample that is not in the batch;
    4. *edges*: ``symmetric=False`` (default, like the ``bank`` inference mechanism):
       directed edges ``j -> i`` with weight ``p_ij`` into the batch, and, with
       ``pool_edges``, Eq. 3 among the extra pool nodes, symmetrised (the bank-bank graph);
       ``symmetric=True``: :math:`A = (P + P^\top)/2` over all nodes, which with a pool equal
       to the batch is exactly the batch-internal graph.

    ``nca_weight > 0`` adds ``nca_weight * pool_nca_loss`` on the distances from the batch to
    ``nca_size`` random pool samples (label supervision of the graph) as ``aux_losses["nca"]``.

    Args:
        pool_size: training samples in the pool (``None``: the whole training set); a
            smaller pool is redrawn at each refresh. Must be at least ``s + 2`` (a sample's
            ``s + 1`` nearest others).
        refresh_every: epochs between refreshes of the pool draw and of the cached codes.
        symmetric: see above.
        nca_weight: weight of the NCA term (0: off).
        nca_size: pool samples per step in the NCA term.
        nca_tau: temperature of the NCA term.
        pool_edges: edges among the extra pool nodes (``symmetric=False`` only).
        seed: seed of the pool and NCA draws.
        chunk_size: pool columns per ranking chunk (memory only).
    """

    def __init__(self, pool_size: int | None = None, refresh_every: int = 1, symmetric: bool = False,
                 nca_weight: float = 0.0, seed: int = 0, *, nca_size: int = 1024, nca_tau: float = 1.0,
                 pool_edges: bool = True, chunk_size: int = 8192) -> None:
        check_positive_int("pool_size", pool_size, allow_none=True)
        check_positive_int("refresh_every", refresh_every)
        check_positive_int("nca_size", nca_size)
        check_positive_int("chunk_size", chunk_size)
        if not isinstance(symmetric, bool):
            raise TypeError(f"symmetric must be a bool, got {symmetric!r}")
        self.pool_size = pool_size
        self.refresh_every = refresh_every
        self.symmetric = symmetric
        self.nca_weight = _check_weight("nca_weight", nca_weight)
        self.nca_size = nca_size
        if isinstance(nca_tau, bool) or not isinstance(nca_tau, (int, float)) or not nca_tau > 0:
            raise ValueError(f"nca_tau must be a number > 0, got {nca_tau!r}")
        self.nca_tau = float(nca_tau)
        self.pool_edges = bool(pool_edges)
        self.seed = int(seed)
        self.chunk_size = chunk_size
        self.pool: Tensor | None = None
        self._codes: Tensor | None = None
        self._train_x: Tensor | None = None
        self._train_y: Tensor | None = None
        self._key: tuple | None = None
        self._gen = torch.Generator().manual_seed(self.seed)

    # ------------------------------------------------------------------ state
    @torch.no_grad()
    def on_epoch_start(self, model: nn.Module, train_x: Tensor, train_y: Tensor, epoch: int) -> None:
        """Keep the training set; every ``refresh_every`` epochs redraw the pool and recompute
        the pool's codes (embedding head) from the current model."""
        train_x = _flat(train_x)
        if not isinstance(train_y, Tensor) or train_y.shape != (train_x.size(0),):
            raise ValueError(f"train_y must have shape [{train_x.size(0)}] (one label per row of train_x)")
        n = train_x.size(0)
        size = n if self.pool_size is None else self.pool_size
        if size > n:
            raise ValueError(f"pool_size={size} exceeds the number of training samples ({n})")
        if size < model.s + 2:
            raise ValueError(f"pool_size={size} is too small for s={model.s}: each batch sample needs "
                             f"its s + 1 nearest other pool samples, so pool_size >= s + 2 = {model.s + 2}")
        key = (train_x.data_ptr(), tuple(train_x.shape))
        stale = self.pool is None or self._key != key or epoch % self.refresh_every == 0
        self._train_x, self._train_y, self._key = train_x, train_y, key
        if not stale:
            return
        if size == n:
            self.pool = torch.arange(n, device=train_x.device)
        else:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(epoch))
            self.pool = torch.randperm(n, generator=g)[:size].sort().values.to(train_x.device)
        self._codes = None
        if model.test_distances:
            xp = train_x.index_select(0, self.pool)
            self._codes = torch.cat([model.code(c) for c in xp.split(self.chunk_size)])

    def set_pool(self, model: nn.Module, train_x: Tensor, train_y: Tensor, pool: Tensor) -> None:
        """Use the explicit training ids ``pool [P]`` (e.g. the batch itself in tests)."""
        self.pool_size = int(pool.numel())
        self.refresh_every = 1 << 30
        self.on_epoch_start(model, train_x, train_y, 0)
        self.pool = pool.to(_flat(train_x).device).long()
        if model.test_distances:
            with torch.no_grad():
                self._codes = model.code(self._train_x.index_select(0, self.pool))

    # ------------------------------------------------------------------ steps
    @torch.no_grad()
    def _rank(self, model: nn.Module, code_b: Tensor, index: Tensor, k: int) -> Tensor:
        """Training ids ``[B, k]`` of each row's ``k`` nearest pool samples (own id excluded)."""
        best_d = best_i = None
        for a in range(0, self.pool.numel(), self.chunk_size):
            ids = self.pool[a:a + self.chunk_size]
            cols = None if self._codes is None else self._codes[a:a + self.chunk_size]
            d = _mask_own(model.dist(code_b, cols, ids), ids, index)
            i = ids.view(1, -1).expand_as(d)
            if best_d is not None:
                d, i = torch.cat([best_d, d], 1), torch.cat([best_i, i], 1)
            kk = min(k, d.size(1))
            best_d, pos = torch.topk(d, kk, dim=1, largest=False, sorted=False)
            best_i = i.gather(1, pos)
        return best_i

    def __call__(self, model: nn.Module, x: Tensor, y: Tensor, index: Tensor) -> TrainingGraph:
        if self.pool is None:
            raise RuntimeError("TrainingPool: call on_epoch_start(model, train_x, train_y, epoch) "
                               "before building training graphs")
        x = _flat(x)
        b = x.size(0)
        if not isinstance(index, Tensor) or index.shape != (b,):
            raise ValueError(f"index must be a [{b}] tensor of training ids (one per row of x)")
        index = index.long()
        train_x = self._train_x
        s = model.s
        code_b = model.code(x)
        cand = self._rank(model, code_b.detach(), index, s + 1)            # [B, s+1] ids
        # 2. exact distances with grad to the selected samples
        uniq, inv = torch.unique(cand, return_inverse=True)
        code_u = model.code(train_x.index_select(0, uniq)) if model.test_distances else None
        d = model.dist(code_b, code_u, uniq).gather(1, inv)               # [B, s+1]
        order = torch.argsort(cand, dim=1)                                 # ties by id
        cand, d = cand.gather(1, order), d.gather(1, order)
        order = torch.argsort(d.detach(), dim=1, stable=True)
        cand, d = cand.gather(1, order), d.gather(1, order)
        if not torch.isfinite(d).all():
            raise ValueError("a batch row has fewer than s + 1 pool samples other than itself; "
                             "enlarge pool_size")
        w = simplex_weights(d, s)
        cand = cand[:, :s]
        # 3. nodes: the batch, then the selected pool samples outside it
        lookup = torch.full((train_x.size(0),), -1, dtype=torch.long, device=x.device)
        lookup[index] = torch.arange(b, device=x.device)
        sel = torch.unique(cand)
        extra = sel[lookup[sel] < 0]
        lookup[extra] = torch.arange(b, b + extra.numel(), device=x.device)
        n_nodes = b + extra.numel()
        cols = lookup[cand]
        feats = torch.cat([x, train_x.index_select(0, extra)]) if extra.numel() else x
        node_index = torch.cat([index, extra])
        # 4. edges
        if self.symmetric:
            edge_index, edge_weight = topk_to_edges(cols, w, num_nodes=n_nodes, symmetrize=True)
        else:
            edge_index, edge_weight = topk_to_edges(cols, w, num_nodes=n_nodes, symmetrize=False)
            if self.pool_edges and extra.numel() >= 3:
                pos = torch.searchsorted(uniq, extra)
                code_e = code_u[pos] if code_u is not None else None
                d_ee = model.dist(model.code(feats[b:]) if code_e is None else code_e, code_e, extra)
                se = effective_sparsity(s, extra.numel() - 1, what="other extra pool nodes")
                idx_e, w_e = sparse_simplex_topk(d_ee, se, exclude_self=True, validate=False)
                ei_e, ew_e = topk_to_edges(idx_e + b, w_e, row_offset=b, num_nodes=n_nodes)
                edge_index = torch.cat([edge_index, ei_e], 1)
                edge_weight = torch.cat([edge_weight, ew_e])
        aux: dict[str, Tensor] = {}
        if self.nca_weight > 0:
            aux["nca"] = self.nca_weight * self._nca(model, code_b, y, index)
        return TrainingGraph(feats, edge_index, edge_weight, b, aux, node_index)

    def _nca(self, model: nn.Module, code_b: Tensor, y: Tensor, index: Tensor) -> Tensor:
        p = self.pool.numel()
        if p > self.nca_size:
            pos = torch.randperm(p, generator=self._gen)[:self.nca_size].to(self.pool.device)
        else:
            pos = torch.arange(p, device=self.pool.device)
        ids = self.pool[pos]
        cols = None if self._codes is None else self._codes[pos]           # memory bank: no grad
        d = _mask_own(model.dist(code_b, cols, ids), ids, index)
        return pool_nca_loss(d, y, self._train_y[ids], self.nca_tau)

    def __repr__(self) -> str:
        return (f"TrainingPool(pool_size={self.pool_size}, refresh_every={self.refresh_every}, "
                f"symmetric={self.symmetric}, nca_weight={self.nca_weight}, seed={self.seed})")
