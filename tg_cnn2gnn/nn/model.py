r"""CNN2GNN (learned graph head + GNN student) and fixed-graph baselines, with inductive inference.

The inference mechanisms (``predict(x, mechanism=...)``; DESIGN §3) live in
:mod:`tg_cnn2gnn.inference`, one module each, listed by
:data:`tg_cnn2gnn.inference.registry.REGISTRY`: ``"bank"`` (ours, batch-invariant),
``"batch"`` (paper Mechanism 2), ``"one_by_one"`` (paper Mechanism 1), ``"direct"``
(models with test-test distances) and the ``"isolated"`` edge-removal ablation. ``B`` is a
fixed bank of ``bank_size`` training samples drawn once from ``seed`` (or passed as
``bank``), so a prediction never depends on the order of the test set; ``s`` is capped at
the number of candidates minus one, exactly as for small training batches.
:meth:`InductiveGraphModel.bank_predictor` precomputes everything the bank contributes
and returns a :class:`~tg_cnn2gnn.inference.BankPredictor` that does per-sample work only.

Bit-identity: ``"bank"`` and ``"one_by_one"`` run inside the row-invariant context
(:mod:`tg_cnn2gnn.nn._invariant`: every product of sample features with a weight matrix
is computed row by row, about 2-3x a ``gemm``) and the student runs on the edge list, so
their output does not depend on the batching, shuffling or batch size (1 included) --
for convs whose weights act through ``Linear`` layers (all of :data:`CONVS` except
``"arma"``), for a fixed device and thread count.
"""
from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import Tensor, nn

from tg_cnn2gnn.functional._checks import check_choice, check_positive_int
from tg_cnn2gnn.functional.graph import topk_to_edges
from tg_cnn2gnn.functional.simplex import sparse_simplex_topk
from tg_cnn2gnn.inference._common import flat as _flat
from tg_cnn2gnn.inference._common import proxy_distances, resolve_bank, select_bank  # noqa: F401  (re-exported)
from tg_cnn2gnn.inference.registry import MECHANISMS, get_mechanism
from tg_cnn2gnn.nn import _invariant as inv
from tg_cnn2gnn.nn.head import LearnedGraphHead, effective_sparsity
from tg_cnn2gnn.nn.student import as_student


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

    def __init__(self, student: nn.Module, s: int) -> None:
        super().__init__()
        student = as_student(student)
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
                or ``"direct"`` (models with test-test distances); see
                :mod:`tg_cnn2gnn.inference`.
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
        if mechanism == "batch" and self.batch_is_direct:
            mechanism = "direct"
        mech = get_mechanism(mechanism)
        was_training = self.training
        self.eval()
        try:
            if mech.needs_train:
                train_x = self._check_train_x(mechanism, train_x)
                bank = resolve_bank(train_x.size(0), bank_size=bank_size, bank=bank, seed=seed,
                                    device=x.device)
            with inv.row_invariant(self) if mech.row_invariant else nullcontext():
                return mech.run(self, x, train_x=train_x, bank=bank, batch_size=batch_size,
                                chunk_size=chunk_size, progress=progress)
        finally:
            self.train(was_training)

    @torch.no_grad()
    def predict_isolated(self, x: Tensor, *, chunk_size: int = 1024) -> Tensor:
        r"""Edge-removal ablation (:mod:`tg_cnn2gnn.inference.isolated`): logits ``[T, C]`` of
        the student on test samples ``x [T, F]`` with *no* edges. Not a mechanism of the paper."""
        check_positive_int("chunk_size", chunk_size)
        x = self._check_features("x", x)
        was_training = self.training
        self.eval()
        try:
            return get_mechanism("isolated").run(self, x, chunk_size=chunk_size)
        finally:
            self.train(was_training)

    def bank_predictor(self, train_x: Tensor, *, bank_size: int | None = None,
                       bank: Tensor | None = None, seed: int = 0, deterministic: bool = False,
                       neighbour_chunk: int = 65536, search: str = "exact", nlist: int | None = None,
                       nprobe: int | None = None, train_y: Tensor | None = None, label_vote: float = 0.0):
        r"""A :class:`~tg_cnn2gnn.inference.BankPredictor` for ``mechanism="bank"``: the bank's
        codes, graph and per-layer states computed once from ``train_x [n_train, F]``, so a
        call does only each test sample's own work. Same bank arguments as :meth:`predict`
        (``bank_size`` up to ``n_train``). ``search="ivf"`` (opt-in, approximate) searches the
        neighbours in an inverted file of ``nlist`` k-means lists, ``nprobe`` probed per query
        (k-means seeded by ``seed``). ``train_y [n_train]`` and ``label_vote`` (``beta > 0``) add
        the bank neighbours' label vote (:mod:`tg_cnn2gnn.inference.label_vote`). See
        :mod:`tg_cnn2gnn.inference.bank_predictor`."""
        from tg_cnn2gnn.inference.bank_predictor import BankPredictor
        train_x = self._check_train_x("bank", train_x)
        bank = resolve_bank(train_x.size(0), bank_size=bank_size, bank=bank, seed=seed,
                            device=train_x.device)
        return BankPredictor.from_model(self, train_x, bank, deterministic=deterministic,
                                        neighbour_chunk=neighbour_chunk, search=search, nlist=nlist,
                                        nprobe=nprobe, index_seed=seed, train_y=train_y, label_vote=label_vote)

    def set_num_train(self, num_train: int) -> None:
        """Size the anchor head for ``num_train`` training samples (lazy sizing; no-op for
        heads whose parameters do not depend on it, such as the fixed graphs of InGNN/EucGNN)."""
        from tg_cnn2gnn.functional._checks import check_positive_int
        check_positive_int("num_train", num_train)

    def _check_train_x(self, mechanism: str, train_x: object) -> Tensor:
        if train_x is None:
            raise ValueError(f"mechanism={mechanism!r} needs train_x, the training samples "
                             f"[n_train, F] (row j = training id j)")
        train_x = self._check_features("train_x", train_x)
        if self.num_train is not None and train_x.size(0) != self.num_train:
            raise ValueError(f"train_x has {train_x.size(0)} rows but the anchor head has "
                             f"num_train={self.num_train} outputs; pass the full training set "
                             f"in the order of its indices")
        return train_x

    def _check_features(self, name: str, x: object) -> Tensor:
        if not isinstance(x, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
        x = _flat(x)
        if x.dim() != 2 or not x.is_floating_point():
            raise ValueError(f"{name} must be a floating [N, F] tensor, got shape {tuple(x.shape)} "
                             f"dtype {x.dtype}")
        f = getattr(self.student, "in_channels", None)
        if isinstance(f, int) and f > 0 and x.size(1) != f:
            raise ValueError(f"{name} has {x.size(1)} features but the student expects {f}")
        from tg_cnn2gnn.functional._checks import check_finite
        return check_finite(name, x)      # a NaN row would give NaN logits, argmax'ed to class 0


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
        student (nn.Module): the GNN: a :class:`GraphStudent`, a PyG model such as
            ``torch_geometric.nn.models.GCN``, or any module ``forward(x, edge_index, edge_weight)``.

    Example::

        head = LearnedGraphHead(784, s=50)                    # sized below (or by the distiller)
        model = CNN2GNN(head, GraphStudent(784, 256, 10))     # or torch_geometric.nn.models.GCN(784, 256, 2, 10)
        model.set_num_train(55000)
        opt = torch.optim.Adam(model.parameters(), lr=0.01)   # or make_optimizer + sparse_grad=True
        logits = model(x_batch, idx_batch)                    # [100, 10]
        test_logits = model.predict(x_test, mechanism="bank", train_x=x_train)
    """

    def __init__(self, head: LearnedGraphHead, student: nn.Module) -> None:
        if not isinstance(head, LearnedGraphHead):
            raise TypeError(f"head must be a LearnedGraphHead, got {type(head).__name__}")
        super().__init__(student, head.s)
        f = getattr(student, "in_channels", None)
        if f is not None and f != head.in_channels:
            raise ValueError(f"head.in_channels={head.in_channels} differs from "
                             f"student.in_channels={f}; both read the same sample features")
        self.head = head
        self.test_distances = head.form == "embedding"
        self.mechanisms = (MECHANISMS if self.test_distances
                           else tuple(m for m in MECHANISMS if m != "direct"))

    @property
    def num_train(self) -> int | None:  # type: ignore[override]
        """The anchor head's number of training samples (``None``: embedding head, or not sized yet)."""
        return self.head.num_train if self.head.form == "anchor" else None

    def set_num_train(self, num_train: int) -> None:
        """Size the anchor head's decision layer for ``num_train`` training samples
        (:meth:`LearnedGraphHead.set_num_train`; the embedding head only records it). Call it
        before building the optimiser."""
        self.head.set_num_train(num_train)

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
        student (nn.Module): the GNN: a :class:`GraphStudent`, a PyG model such as
            ``torch_geometric.nn.models.GCN``, or any module ``forward(x, edge_index, edge_weight)``.
        s (int): sparsity. (default: :obj:`50`)
        metric (str): ``"inner"`` (:math:`-x_i^\top x_j`), ``"euclidean"``,
            ``"sqeuclidean"`` or ``"cosine"``.
    """

    mechanisms = ("bank", "batch", "one_by_one", "direct")
    test_distances = True
    batch_is_direct = True

    def __init__(self, student: nn.Module, s: int = 50, metric: str = "inner") -> None:
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

    def __init__(self, student: nn.Module, s: int = 50) -> None:
        super().__init__(student, s, metric="inner")


class EucGNN(FixedGraphGNN):
    r"""Baseline: Eq. 3 graph from Euclidean distances of the raw features, :math:`\lVert x_i - x_j\rVert`."""

    def __init__(self, student: nn.Module, s: int = 50) -> None:
        super().__init__(student, s, metric="euclidean")
