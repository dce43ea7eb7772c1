r"""CNN2GNN (learned graph head + GNN student) and fixed-graph baselines, with inductive inference.

Inference mechanisms (``predict(x, mechanism=...)``; DESIGN §3). ``B`` is a fixed bank of
``bank_size`` training samples drawn once from ``seed`` (or passed as ``bank``), so a
prediction never depends on the order of the test set; ``s`` is capped at the number of
candidates minus one, exactly as for small training batches.

``"one_by_one"`` (paper, Mechanism 1)
    Each test sample ``t`` forms its own graph with the bank, ``(1 + |B|)`` nodes. Row
    ``t`` of Eq. 3 uses ``t``'s distances to the bank (anchor head: ``head(x_t)[B]``);
    bank row ``i`` uses ``head(x_i)[B]`` (the training-style graph among the bank) and,
    when the model can measure distances to a test sample (embedding head, fixed-graph
    baselines; all symmetric), also ``d(i, t) = d(t, i)``. The anchor head cannot measure a
    distance from a training sample to a test sample, so there ``p_it = 0`` and ``t`` is
    connected through :math:`A_{ti} = A_{it} = p_{ti}/2`. The GNN runs on that graph and
    ``t``'s output is read. Many test samples are run at once as disjoint graphs, with the
    same result as one at a time.

``"batch"`` (paper, Mechanism 2; learned heads)
    For a test batch ``T`` (``batch_size`` samples) and the training batch ``R = B``,
    ``P_TR`` follows Eq. 3 from ``head(x_T)[:, R]``; each test sample ``k`` takes as proxy
    the training sample ``r(k)`` with the largest ``p_kr``; test-test distances are
    approximated by ``d(i, k) = head(x_i)[r(k)]``; Eq. 3 over ``T`` (self excluded),
    :math:`A = (P+P^\top)/2` and the GNN over ``T``. A prediction depends on the other
    samples of its test batch (transductive inside a batch). A tail batch of fewer than 3
    samples is merged into the previous batch. For the fixed-graph baselines, which measure
    test-test distances directly, ``"batch"`` is Eq. 3 over the test batch's features.

``"direct"`` (embedding head and baselines)
    Eq. 3 over the true test-test distances of each test batch; the GNN over the batch.

``"bank"`` (ours)
    Nodes: the bank ``B`` plus test samples. Bank-bank edges: the training-style graph
    among the bank, Eq. 3 over ``d(B, B)`` (self excluded) symmetrised. Test node ``t``:
    Eq. 3 over its distances to the bank gives ``p_tj`` for its ``s`` nearest bank
    samples; each becomes a *directed* edge ``j -> t`` with weight ``p_tj`` (the row sums
    to 1, the mean in-weight of a training node). Test nodes send no messages, so bank
    nodes' states -- and GCN's degrees, which count incoming weight -- never depend on
    the test nodes, and the output of ``t`` depends on ``x_t``, the bank and the weights
    only. To make it *bit*-identical under any batching, shuffling or batch size (1
    included), the float arithmetic of a sample must not depend on its neighbours in the
    batch either: BLAS ``gemm`` may round a row differently depending on its position and
    on the matrix shape. Inside ``"bank"`` and ``"one_by_one"`` every product of sample
    features with a weight matrix (the head's MLP and distances, the student's ``Linear``
    layers) is computed row by row (:mod:`tg_cnn2gnn.nn._invariant`, about 2-3x a ``gemm``),
    and the student runs on the edge list (each node sums its own messages in edge order),
    never on a dense matrix. Everything else is element-wise or per row. (Guaranteed for
    convs whose weights act through ``Linear`` layers -- all of :data:`CONVS` except
    ``"arma"``; for a fixed device and thread count.) ``"one_by_one"`` works the same way.
"""
from __future__ import annotations

from collections.abc import Iterator

import torch
from torch import Tensor, nn

from tg_cnn2gnn.functional._checks import check_choice, check_positive_int
from tg_cnn2gnn.nn import _invariant as inv
from tg_cnn2gnn.functional.graph import topk_to_edges
from tg_cnn2gnn.functional.simplex import sparse_simplex_topk
from tg_cnn2gnn.nn.head import LearnedGraphHead, check_index, effective_sparsity
from tg_cnn2gnn.nn.student import GraphStudent

#: All inference mechanisms (each model lists the ones it supports in ``.mechanisms``).
MECHANISMS = ("bank", "batch", "one_by_one", "direct")


def select_bank(num_train: int, bank_size: int, seed: int = 0) -> Tensor:
    """``bank_size`` distinct training indices drawn from ``seed`` (sorted), independent of any test data."""
    check_positive_int("bank_size", bank_size)
    if bank_size > num_train:
        raise ValueError(f"bank_size={bank_size} exceeds the number of training samples ({num_train})")
    gen = torch.Generator().manual_seed(int(seed))
    return torch.randperm(num_train, generator=gen)[:bank_size].sort().values


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
    idx, w = sparse_simplex_topk(d_tr, s)
    proxy = idx.gather(1, w.argmax(dim=1, keepdim=True)).squeeze(1)
    return proxy, d_tr.index_select(1, proxy)


def _flat(x: Tensor) -> Tensor:
    return x.flatten(1) if x.dim() > 2 else x


def _batches(n: int, size: int, min_last: int = 1) -> list[tuple[int, int]]:
    """``[start, stop)`` ranges of ``size``; a tail shorter than ``min_last`` joins the previous one."""
    out = [(a, min(n, a + size)) for a in range(0, n, size)]
    if len(out) > 1 and out[-1][1] - out[-1][0] < min_last:
        out[-2] = (out[-2][0], n)
        out.pop()
    return out


class InductiveGraphModel(nn.Module):
    r"""Base of the models: a graph over samples plus a :class:`GraphStudent`.

    Subclasses provide ``graph(x, index)`` for training batches and the distance
    interface used at inference: ``code(x)`` (per-sample encoding) and
    ``dist(code_rows, code_cols, index_cols)`` (distances ``[N, M]``; for a model that can
    only measure distances to training samples, the columns are the training ids
    ``index_cols``).
    """

    #: mechanisms ``predict`` accepts.
    mechanisms: tuple[str, ...] = ("bank", "batch", "one_by_one")
    #: whether distances between two arbitrary (e.g. test) samples exist.
    test_distances: bool = False
    #: if set, ``predict`` requires ``train_x`` with exactly this many rows.
    num_train: int | None = None
    #: ``"batch"`` means Eq. 3 over the test batch's own distances (no proxy rule).
    batch_is_direct: bool = False

    def __init__(self, student: GraphStudent, s: int) -> None:
        super().__init__()
        if not isinstance(student, nn.Module):
            raise TypeError(f"student must be an nn.Module (e.g. GraphStudent), got {type(student).__name__}")
        check_positive_int("s", s)
        self.student = student
        self.s = s

    # interface -------------------------------------------------------------------
    def batch_topk(self, x: Tensor, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """Eq. 3 rows ``(index [B, s], weight [B, s])`` of a training batch (self excluded)."""
        raise NotImplementedError

    def graph(self, x: Tensor, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        r"""The graph of a training batch ``x [B, F]``: ``(edge_index, edge_weight)`` of
        :math:`A = (P + P^\top)/2`."""
        x = _flat(x)
        idx, w = self.batch_topk(x, index)
        return topk_to_edges(idx, w, num_nodes=x.size(0))

    def dense_graph(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        r"""The same graph as a dense ``[B, B]`` matrix :math:`A = (P + P^\top)/2`."""
        x = _flat(x)
        idx, w = self.batch_topk(x, index)
        p = w.new_zeros(x.size(0), x.size(0)).scatter(1, idx, w)
        return 0.5 * (p + p.t())

    def code(self, x: Tensor) -> Tensor:
        raise NotImplementedError

    def dist(self, code_rows: Tensor, code_cols: Tensor, index_cols: Tensor | None) -> Tensor:
        raise NotImplementedError

    # training ---------------------------------------------------------------------
    def forward(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        """Training batch ``x [B, F]`` (training ids ``index [B]``) -> logits ``[B, C]``.

        With a GCN student and a batch of at most ``student.dense_max_nodes`` samples the
        graph goes to the student as a dense matrix (:meth:`GraphStudent.forward_dense`,
        the same math as ``GCNConv`` on the edges, no edge list is built)."""
        x = _flat(x)
        use_dense = getattr(self.student, "use_dense", None)
        if use_dense is not None and use_dense(x.size(0)):
            return self.student.forward_dense(x, self.dense_graph(x, index))
        edge_index, edge_weight = self.graph(x, index)
        return self.student(x, edge_index, edge_weight)

    # inference --------------------------------------------------------------------
    @torch.no_grad()
    def predict(self, x: Tensor, *, mechanism: str = "bank", train_x: Tensor | None = None,
                batch_size: int = 100, bank_size: int | None = None, bank: Tensor | None = None,
                seed: int = 0, chunk_size: int = 128, progress: bool = False) -> Tensor:
        r"""Logits ``[T, C]`` for unseen samples ``x [T, F]`` (eval mode, no grad).

        Args:
            x: ``[T, F]`` test samples (flattened if more than 2-D).
            mechanism: ``"bank"``, ``"batch"`` (Mechanism 2), ``"one_by_one"`` (Mechanism 1)
                or ``"direct"`` (models with test-test distances); see the module docstring.
            train_x: ``[n_train, F]`` training samples, row ``j`` = training id ``j``
                (needed by every mechanism but ``"direct"``).
            batch_size: test batch size of ``"batch"`` and ``"direct"``.
            bank_size: size of the training bank (``"bank"``, ``"one_by_one"``, and the
                training batch ``R`` of ``"batch"``). (default: ``min(100, n_train)``;
                100 is the paper's batch size)
            bank: explicit ``[bank_size]`` training ids instead of a seeded draw.
            seed: seed of the bank draw.
            chunk_size: test samples per chunk of ``"bank"``/``"one_by_one"`` (memory and
                speed only; the output does not depend on it, bit for bit).
            progress: show a tqdm bar.
        """
        check_choice("mechanism", mechanism, self.mechanisms)
        check_positive_int("batch_size", batch_size)
        check_positive_int("chunk_size", chunk_size)
        x = self._check_features("x", x)
        was_training = self.training
        self.eval()
        try:
            if mechanism == "direct" or (mechanism == "batch" and self.batch_is_direct):
                return self._predict_direct(x, batch_size, progress)
            if train_x is None:
                raise ValueError(f"mechanism={mechanism!r} needs train_x, the training samples "
                                 f"[n_train, F] (row j = training id j)")
            train_x = self._check_features("train_x", train_x)
            if self.num_train is not None and train_x.size(0) != self.num_train:
                raise ValueError(f"train_x has {train_x.size(0)} rows but the anchor head has "
                                 f"num_train={self.num_train} outputs; pass the full training set "
                                 f"in the order of its indices")
            if bank is None:
                if bank_size is None:
                    bank_size = min(100, train_x.size(0))
                bank = select_bank(train_x.size(0), bank_size, seed)
            else:
                bank = check_index(bank, bank.numel() if isinstance(bank, Tensor) else 0,
                                   train_x.size(0), name="bank")
                if bank.unique().numel() != bank.numel():
                    raise ValueError("bank contains duplicate training indices")
            bank = bank.to(x.device)
            if bank.numel() < 3:
                raise ValueError(f"the bank needs at least 3 training samples, got {bank.numel()}")
            if mechanism == "bank":
                with inv.row_invariant(self):
                    return self._predict_bank(x, train_x, bank, chunk_size, progress)
            if mechanism == "one_by_one":
                with inv.row_invariant(self):
                    return self._predict_one_by_one(x, train_x, bank, chunk_size, progress)
            return self._predict_batch(x, train_x, bank, batch_size, progress)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def predict_isolated(self, x: Tensor, *, chunk_size: int = 1024) -> Tensor:
        r"""Edge-removal ablation: logits ``[T, C]`` of the student on test samples ``x [T, F]``
        with *no* edges, so every node sees only itself (``GCNConv`` adds its self-loop and
        becomes a per-sample MLP). Compared with :meth:`predict`, it measures how much of
        the accuracy the graph carries. Not an inference mechanism of the paper."""
        check_positive_int("chunk_size", chunk_size)
        x = self._check_features("x", x)
        was_training = self.training
        self.eval()
        try:
            empty = torch.empty(2, 0, dtype=torch.long, device=x.device)
            no_weight = x.new_empty(0)
            return torch.cat([self.student(xc, empty, no_weight) for xc in x.split(chunk_size)])
        finally:
            self.train(was_training)

    def _check_features(self, name: str, x: object) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        x = _flat(x)
        if x.dim() != 2 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating [N, F] tensor, got shape {tuple(x.shape)} "
                             f"dtype {x.dtype}")
        f = getattr(self.student, "in_channels", None)
        if f is not None and x.size(1) != f:
            raise ValueError(f"{name} has {x.size(1)} features but the student expects {f}")
        return x

    @staticmethod
    def _iter(ranges: list, progress: bool, desc: str) -> Iterator:
        if not progress:
            return iter(ranges)
        from tqdm.auto import tqdm
        return iter(tqdm(ranges, desc=desc))

    def _bank_graph(self, train_x: Tensor, bank: Tensor, *, mask_diag: bool
                    ) -> tuple[Tensor, Tensor, Tensor]:
        xb = train_x.index_select(0, bank)
        cb = self.code(xb)
        d_bb = self.dist(cb, cb, bank)
        if mask_diag:
            d_bb = d_bb.clone()
            d_bb.fill_diagonal_(float("inf"))
        return xb, cb, d_bb

    def _predict_bank(self, x: Tensor, train_x: Tensor, bank: Tensor, chunk: int,
                      progress: bool) -> Tensor:
        nb = bank.numel()
        xb, cb, d_bb = self._bank_graph(train_x, bank, mask_diag=False)
        s_bank = effective_sparsity(self.s, nb - 1, what="other bank samples")
        idx, w = sparse_simplex_topk(d_bb, s_bank, exclude_self=True, validate=False)
        ei_bb, ew_bb = topk_to_edges(idx, w, num_nodes=nb)
        s_test = effective_sparsity(self.s, nb, what="bank samples")
        outs = []
        for a, b in self._iter(_batches(x.size(0), chunk), progress, "bank"):
            xc = x[a:b]
            d_tb = self.dist(self.code(xc), cb, bank)                    # [c, nb]
            ti, tw = sparse_simplex_topk(d_tb, s_test, validate=False)
            target = torch.arange(nb, nb + (b - a), device=x.device).repeat_interleave(s_test)
            ei = torch.cat([ei_bb, torch.stack([ti.reshape(-1), target])], dim=1)
            ew = torch.cat([ew_bb, tw.reshape(-1)])
            out = self._student_on_edges(torch.cat([xb, xc]), ei, ew)
            outs.append(out[nb:])
        return torch.cat(outs) if outs else x.new_zeros(0, self._out_channels())

    def _predict_one_by_one(self, x: Tensor, train_x: Tensor, bank: Tensor, chunk: int,
                            progress: bool) -> Tensor:
        nb = bank.numel()
        g = nb + 1
        xb, cb, d_bb = self._bank_graph(train_x, bank, mask_diag=True)
        # Bank rows see nb - 1 other bank samples (+ the test sample when measurable).
        s1 = effective_sparsity(self.s, nb if self.test_distances else nb - 1,
                                what="candidates of a bank row")
        outs = []
        for a, b in self._iter(_batches(x.size(0), chunk), progress, "one_by_one"):
            xc = x[a:b]
            c = b - a
            d_tb = self.dist(self.code(xc), cb, bank)                    # [c, nb]
            dist = d_tb.new_full((c, g, g), float("inf"))
            dist[:, 0, 1:] = d_tb
            dist[:, 1:, 1:] = d_bb
            if self.test_distances:                                     # symmetric metrics
                dist[:, 1:, 0] = d_tb
            idx, w = sparse_simplex_topk(dist.view(c * g, g), s1, validate=False)
            offs = (torch.arange(c, device=x.device) * g).repeat_interleave(g).unsqueeze(1)
            ei, ew = topk_to_edges(idx + offs, w, num_nodes=c * g)
            feats = torch.cat([xc.unsqueeze(1), xb.unsqueeze(0).expand(c, nb, xb.size(1))],
                              dim=1).reshape(c * g, -1)
            out = self._student_on_edges(feats, ei, ew).view(c, g, -1)[:, 0]
            outs.append(out)
        return torch.cat(outs) if outs else x.new_zeros(0, self._out_channels())

    def _predict_batch(self, x: Tensor, train_x: Tensor, bank: Tensor, batch_size: int,
                       progress: bool) -> Tensor:
        if x.size(0) < 3:
            raise ValueError(f"mechanism='batch' builds a graph over each test batch and needs at "
                             f"least 3 test samples, got {x.size(0)}; use mechanism='bank'")
        xb = train_x.index_select(0, bank)
        cb = self.code(xb)
        outs = []
        for a, b in self._iter(_batches(x.size(0), batch_size, 3), progress, "batch"):
            xt = x[a:b]
            _, d_tt = proxy_distances(self.dist(self.code(xt), cb, bank), self.s)
            outs.append(self._run_batch(xt, d_tt))
        return torch.cat(outs)

    def _predict_direct(self, x: Tensor, batch_size: int, progress: bool) -> Tensor:
        if x.size(0) < 3:
            raise ValueError(f"mechanism='direct' builds a graph over each test batch and needs at "
                             f"least 3 test samples, got {x.size(0)}")
        outs = []
        for a, b in self._iter(_batches(x.size(0), batch_size, 3), progress, "direct"):
            xt = x[a:b]
            ct = self.code(xt)
            outs.append(self._run_batch(xt, self.dist(ct, ct, None)))
        return torch.cat(outs)

    def _run_batch(self, xt: Tensor, d_tt: Tensor) -> Tensor:
        s = effective_sparsity(self.s, xt.size(0) - 1, what="other samples in the test batch")
        idx, w = sparse_simplex_topk(d_tt, s, exclude_self=True, validate=False)
        ei, ew = topk_to_edges(idx, w, num_nodes=xt.size(0))
        return self.student(xt, ei, ew)

    def _student_on_edges(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor) -> Tensor:
        """The student on an edge list, never through a dense matrix: a dense product mixes a
        node's terms with the (zero) terms of unconnected nodes in an order that depends on
        their positions, which would break bit-identity across batchings."""
        if isinstance(self.student, GraphStudent):
            return self.student(x, edge_index, edge_weight, dense=False)
        return self.student(x, edge_index, edge_weight)

    def _out_channels(self) -> int:
        return int(getattr(self.student, "out_channels", 0))


class CNN2GNN(InductiveGraphModel):
    r"""The CNN2GNN student model: a :class:`LearnedGraphHead` and a :class:`GraphStudent`.

    ``forward(x, index)`` is the training path (paper Eq. 4): the head's graph over the
    batch (training ids ``index``) and the student on it, differentiable end to end.
    ``predict(x, mechanism=..., train_x=...)`` is inductive inference on unseen samples
    (see the module docstring for the exact graphs): ``"bank"`` (default, ours;
    batch-invariant), ``"batch"`` (Mechanism 2, the paper's default), ``"one_by_one"``
    (Mechanism 1), and ``"direct"`` for the embedding head.

    Node features are the samples themselves (``x.flatten(1)``); the head reads the same
    features.

    Args:
        head (LearnedGraphHead): the graph head (its ``s`` is the model's sparsity).
        student (GraphStudent): the GNN.

    Example::

        head = LearnedGraphHead(784, num_train=55000, s=50)
        model = CNN2GNN(head, GraphStudent(784, 256, 10))
        opt = make_optimizer(model, lr=0.01)
        logits = model(x_batch, idx_batch)                    # [100, 10]
        test_logits = model.predict(x_test, mechanism="bank", train_x=x_train)
    """

    def __init__(self, head: LearnedGraphHead, student: GraphStudent) -> None:
        if not isinstance(head, LearnedGraphHead):
            raise TypeError(f"head must be a LearnedGraphHead, got {type(head).__name__}")
        super().__init__(student, head.s)
        f = getattr(student, "in_channels", None)
        if f is not None and f != head.in_channels:
            raise ValueError(f"head.in_channels={head.in_channels} differs from "
                             f"student.in_channels={f}; both read the same sample features")
        self.head = head
        self.test_distances = head.form == "embedding"
        self.mechanisms = (("bank", "batch", "one_by_one", "direct") if self.test_distances
                           else ("bank", "batch", "one_by_one"))
        self.num_train = head.num_train if head.form == "anchor" else None

    @property
    def s(self) -> int:  # type: ignore[override]
        return self.head.s

    @s.setter
    def s(self, value: int) -> None:
        if "head" in self._modules:
            self.head.s = value

    def batch_topk(self, x: Tensor, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        return self.head.topk(self.head.distances(x, index), exclude_self=True)

    def code(self, x: Tensor) -> Tensor:
        return self.head.encode(x)

    def dist(self, code_rows: Tensor, code_cols: Tensor, index_cols: Tensor | None) -> Tensor:
        return self.head.distances_from_code(code_rows, code_cols, index_cols)


class FixedGraphGNN(InductiveGraphModel):
    r"""A student on a fixed sparse simplex graph of the raw features (paper Table 3 baselines).

    The graph of a batch is Eq. 3 over ``metric`` distances of the features (``s``
    neighbours, self excluded), :math:`A = (P + P^\top)/2`; nothing about the graph is
    learned. ``index`` is accepted and ignored (same call as :class:`CNN2GNN`).
    Inference: ``"batch"`` (and its alias ``"direct"``) is Eq. 3 over each test batch;
    ``"bank"`` and ``"one_by_one"`` as for :class:`CNN2GNN` with feature distances.

    Args:
        student (GraphStudent): the GNN.
        s (int): sparsity. (default: :obj:`50`)
        metric (str): ``"inner"`` (:math:`-x_i^\top x_j`), ``"euclidean"``,
            ``"sqeuclidean"`` or ``"cosine"``.
    """

    mechanisms = ("bank", "batch", "one_by_one", "direct")
    test_distances = True
    batch_is_direct = True

    def __init__(self, student: GraphStudent, s: int = 50, metric: str = "inner") -> None:
        super().__init__(student, s)
        check_choice("metric", metric, ("inner", "euclidean", "sqeuclidean", "cosine"))
        self.metric = metric

    def batch_topk(self, x: Tensor, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        d = inv.pairwise_distance(x, x, self.metric)
        s = effective_sparsity(self.s, x.size(0) - 1, what="other samples in the batch")
        return sparse_simplex_topk(d, s, exclude_self=True)

    def code(self, x: Tensor) -> Tensor:
        return x

    def dist(self, code_rows: Tensor, code_cols: Tensor, index_cols: Tensor | None) -> Tensor:
        return inv.pairwise_distance(code_rows, code_cols, self.metric)

    def extra_repr(self) -> str:
        return f"s={self.s}, metric={self.metric!r}"


class InGNN(FixedGraphGNN):
    r"""Baseline: Eq. 3 graph from inner products of the raw features, :math:`d_{ij} = -x_i^\top x_j`."""

    def __init__(self, student: GraphStudent, s: int = 50) -> None:
        super().__init__(student, s, metric="inner")


class EucGNN(FixedGraphGNN):
    r"""Baseline: Eq. 3 graph from Euclidean distances of the raw features, :math:`\lVert x_i - x_j\rVert`."""

    def __init__(self, student: GraphStudent, s: int = 50) -> None:
        super().__init__(student, s, metric="euclidean")
