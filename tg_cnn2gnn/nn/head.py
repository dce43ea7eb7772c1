r"""The differentiable sparse graph head (paper §3.2, DESIGN §2)."""
from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tg_cnn2gnn.functional._checks import check_choice, check_dropout, check_positive_int
from tg_cnn2gnn.functional.graph import topk_to_edges
from tg_cnn2gnn.functional.simplex import sparse_simplex_topk
from tg_cnn2gnn.nn import _invariant as inv

#: Forms of :class:`LearnedGraphHead`.
HEAD_FORMS = ("anchor", "embedding")


def effective_sparsity(s: int, candidates: int, *, what: str = "candidates") -> int:
    """``min(s, candidates - 1)``: Eq. 3 needs the ``(s+1)``-th nearest of ``candidates``.

    Raises ``ValueError`` when fewer than 2 candidates exist (no graph can be built).
    """
    if candidates < 2:
        raise ValueError(f"Eq. 3 needs at least 2 {what} per node (s >= 1 plus the (s+1)-th), "
                         f"got {candidates}")
    return min(s, candidates - 1)


def check_index(index: object, n: int, num_train: int, name: str = "index") -> Tensor:
    """``index`` must be a 1-D integer tensor of ``n`` training-sample ids in ``[0, num_train)``."""
    if not isinstance(index, Tensor):
        raise TypeError(f"{name} must be a 1-D torch.long tensor of training-sample indices, "
                        f"got {type(index).__name__}")
    if index.dim() != 1 or index.numel() != n:
        raise ValueError(f"{name} must have shape [{n}] (one training index per row of x), "
                         f"got {tuple(index.shape)}")
    if index.dtype.is_floating_point or index.dtype == torch.bool or index.is_complex():
        raise TypeError(f"{name} must be an integer tensor, got dtype {index.dtype}")
    if n:
        bad = (index < 0) | (index >= num_train)
        if bool(bad.any()):
            vals = index[bad][:5].tolist()
            raise ValueError(f"{name} has value(s) {vals} outside [0, num_train={num_train}); "
                             f"the anchor head has one output per training sample")
    return index.long()


class LearnedGraphHead(nn.Module):
    r"""The paper's differentiable sparse graph head :math:`f^g_*` plus an inductive variant.

    An MLP (``hidden_channels``, ReLU) maps a sample :math:`x_i` to learned distances;
    the graph of a batch follows Eq. 3 (sparsity ``s``, self excluded) and is
    symmetrised as :math:`A = (P + P^\top)/2`:

    .. math::
        p_{ij} = \Big(\frac{d_{i,(s+1)} - d_{ij}}{\sum_{h=1}^{s} d_{i,(s+1)} - d_{i,(h)}}\Big)_+ ,
        \qquad A_{ij} = \tfrac12 (p_{ij} + p_{ji}).

    * ``form="anchor"`` (the paper): the last layer has ``num_train`` outputs,
      :math:`d_{ij} = f^g_*(x_i)_j = h(x_i)^\top w_j + b_j`: the learned distance from
      sample :math:`i` to training sample :math:`j`. A training batch with indices
      ``index`` uses the ``[B, B]`` sub-matrix ``f(x_B)[:, index]``. Only the batch's
      rows :math:`w_j, b_j` are gathered (``O(B * hidden)`` per step, never the
      ``num_train`` outputs), and with ``sparse_grad=True`` their gradient is row-sparse:
      train with :func:`~tg_cnn2gnn.nn.make_optimizer` so that the optimiser step does not
      grow with ``num_train`` either.
    * ``form="embedding"`` (ours, beyond the paper): the MLP ends in an embedding
      :math:`e(x) \in \mathbb{R}^{\text{embedding\_channels}}` and
      :math:`d_{ij} = \lVert e(x_i) - e(x_j)\rVert^2`. Distances exist between any two
      samples (train or test) and the parameter count does not depend on ``num_train``.

    When a batch has fewer than ``s + 2`` samples, ``s`` is reduced to ``B - 2`` for that
    batch (Eq. 3 needs an ``(s+1)``-th neighbour other than the node itself).

    Args:
        in_channels (int): input size ``F`` (flattened samples).
        num_train (int, optional): number of training samples ``n_train`` (anchor form).
            :obj:`None` leaves the anchor layer unsized until :meth:`set_num_train` (the
            distiller calls it with the size of the split it trains on; loading a
            ``state_dict`` sizes it too). Ignored by the embedding form.
        s (int): sparsity of Eq. 3. (default: :obj:`50`)
        hidden_channels (sequence of int): MLP widths; may be empty (a linear head).
            (default: :obj:`(512, 256)`, the paper's)
        form (str): ``"anchor"`` or ``"embedding"``. (default: :obj:`"anchor"`)
        embedding_channels (int): embedding size of the embedding form. (default: :obj:`64`)
        code_scale (float): embedding form: if positive, the codes are L2-normalised and
            scaled, :math:`e(x) = c\, z(x) / \lVert z(x) \rVert`, so every squared distance
            lies in :math:`[0, 4c^2]` (a cosine distance with temperature :math:`1/c^2` for
            the NCA and relation terms; Eq. 3 itself is scale-invariant). Without it a
            label term can push codes to norms of hundreds while a class's codes collapse
            below float32 resolution of the distance. :obj:`0` keeps the raw codes.
            (default: :obj:`0.0`)
        dropout (float): dropout after every hidden layer. (default: :obj:`0.0`)
        bias (bool): bias of the decision layer (anchor: one :math:`b_j` per training
            sample, as in ``nn.Linear``) or of the embedding projection. (default: :obj:`True`)
        sparse_grad (bool): anchor form: row-sparse gradient for the last layer, so a step
            costs ``O(batch x hidden)`` whatever ``num_train`` -- opt-in, it needs
            :class:`~tg_cnn2gnn.nn.LazyAdam` / :func:`~tg_cnn2gnn.nn.make_optimizer` (stock
            ``torch.optim.Adam`` rejects sparse gradients). :obj:`False` gives an ordinary
            dense gradient (``num_train x hidden`` per step) that any stock optimiser takes.
            (default: :obj:`False`)

    Shapes:
        - **input:** ``x [B, F]``, ``index [B]`` (training-sample ids; anchor form)
        - **output:** ``edge_index [2, E]``, ``edge_weight [E]`` over the ``B`` batch
          nodes (edge ``j -> i`` carries :math:`A_{ij}`), ``B s <= E <= 2 B s``;
          and ``P [B, B]`` with ``return_dense=True``.
    """

    def __init__(self, in_channels: int, num_train: int | None = None, s: int = 50,
                 hidden_channels: Sequence[int] = (512, 256), form: str = "anchor",
                 embedding_channels: int = 64, dropout: float = 0.0,
                 sparse_grad: bool = False, bias: bool = True, code_scale: float = 0.0) -> None:
        super().__init__()
        check_choice("form", form, HEAD_FORMS)
        check_positive_int("in_channels", in_channels)
        check_positive_int("s", s)
        if isinstance(hidden_channels, int):
            hidden_channels = (hidden_channels,)
        hidden_channels = tuple(hidden_channels)
        for h in hidden_channels:
            check_positive_int("hidden_channels[i]", h)
        check_dropout(dropout)
        if isinstance(code_scale, bool) or not isinstance(code_scale, (int, float)) \
                or not math.isfinite(code_scale) or code_scale < 0:
            raise ValueError(f"code_scale must be a finite number >= 0 (0 = raw codes), got {code_scale!r}")
        if code_scale and form != "embedding":
            raise ValueError(f"code_scale={code_scale!r} needs form='embedding' (the anchor form has no codes to "
                             f"normalise); got form={form!r}")
        self.code_scale = float(code_scale)
        self.in_channels = in_channels
        self.s = s
        self.form = form
        self.hidden_channels = hidden_channels
        self.dropout = float(dropout)
        self.sparse_grad = bool(sparse_grad)

        layers: list[nn.Module] = []
        width = in_channels
        for h in hidden_channels:
            layers.append(nn.Linear(width, h))
            layers.append(nn.ReLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
            width = h
        self.body = nn.Sequential(*layers)
        self.bias = bool(bias)
        self.out_width = width
        if form == "anchor":
            self.num_train = None
            self.embedding_channels = None
            self.register_parameter("anchor_weight", None)
            self.register_parameter("anchor_bias", None)
            self.proj = None
            if num_train is not None:
                self.set_num_train(num_train, _init=False)
        else:
            check_positive_int("embedding_channels", embedding_channels)
            self.num_train = num_train
            self.embedding_channels = embedding_channels
            self.proj = nn.Linear(width, embedding_channels, bias=bias)
            self.register_parameter("anchor_weight", None)
            self.register_parameter("anchor_bias", None)
        self.reset_parameters()
        self._register_load_state_dict_pre_hook(self._size_from_state_dict)

    def set_num_train(self, num_train: int, _init: bool = True) -> None:
        """Size the anchor form's decision layer for ``num_train`` training samples.

        A no-op when already of that size; a different size re-creates (and re-initialises)
        the layer with a warning. The embedding form only records ``num_train``. Call it
        before building the optimiser, which must see the new parameters.
        """
        check_positive_int("num_train", num_train)
        if self.form != "anchor":
            self.num_train = num_train
            return
        if self.num_train == num_train:
            return
        if self.num_train is not None:
            import warnings
            warnings.warn(f"LearnedGraphHead: re-sizing the anchor layer from num_train="
                          f"{self.num_train} to {num_train}; its rows are re-initialised",
                          stacklevel=2)
        like = self.body[0].weight if len(self.body) else None
        kw = {} if like is None else {"device": like.device, "dtype": like.dtype}
        self.num_train = num_train
        # The decision layer nn.Linear(width, num_train), stored row-per-sample so a
        # batch gathers its rows (F.embedding gives a row-sparse gradient).
        self.anchor_weight = nn.Parameter(torch.empty(num_train, self.out_width, **kw))
        self.anchor_bias = nn.Parameter(torch.empty(num_train, 1, **kw)) if self.bias else None
        if _init:
            self._init_anchor()

    def _size_from_state_dict(self, state_dict, prefix, *args) -> None:
        w = state_dict.get(prefix + "anchor_weight")
        if self.form == "anchor" and self.num_train is None and isinstance(w, Tensor) and w.dim() == 2:
            self.set_num_train(w.size(0), _init=False)

    def _check_sized(self) -> None:
        if self.form == "anchor" and self.num_train is None:
            raise ValueError("LearnedGraphHead(form='anchor') is not sized yet (num_train=None): call "
                             "head.set_num_train(n) or model.set_num_train(n) with the number of "
                             "training samples before use (HeteroDistiller.fit does it)")

    def _init_anchor(self) -> None:
        bound = 1.0 / math.sqrt(self.out_width)   # nn.Linear's default init
        nn.init.uniform_(self.anchor_weight, -bound, bound)
        if self.anchor_bias is not None:
            nn.init.uniform_(self.anchor_bias, -bound, bound)

    def reset_parameters(self) -> None:
        for m in self.body:
            if isinstance(m, nn.Linear):
                m.reset_parameters()
        if self.form == "anchor":
            if self.num_train is not None:
                self._init_anchor()
        else:
            self.proj.reset_parameters()

    # ------------------------------------------------------------------ distances
    def encode(self, x: Tensor) -> Tensor:
        """``x [N, F]`` -> the MLP output ``[N, H]`` (anchor: last hidden layer; embedding: e(x))."""
        h = self.body(x.flatten(1) if x.dim() > 2 else x)
        if self.proj is None:
            return h
        e = self.proj(h)
        return self.code_scale * F.normalize(e, dim=1) if self.code_scale else e

    def anchor_rows(self, index: Tensor) -> tuple[Tensor, Tensor | None]:
        """The decision-layer rows of training samples ``index [M]``: ``w [M, H]``, ``b [M, 1]``
        (``None`` without bias). Gathered rows only, never the ``num_train`` outputs."""
        if self.form != "anchor":
            raise ValueError("anchor_rows is only defined for form='anchor'")
        self._check_sized()
        b = self.anchor_bias
        if self.sparse_grad:
            return (F.embedding(index, self.anchor_weight, sparse=True),
                    None if b is None else F.embedding(index, b, sparse=True))
        return (self.anchor_weight.index_select(0, index),
                None if b is None else b.index_select(0, index))

    def distances_from_code(self, code: Tensor, code_cols: Tensor | None = None,
                            index: Tensor | None = None) -> Tensor:
        """Distances ``[N, M]`` from encoded rows ``code [N, H]`` to columns.

        Anchor form: columns are training samples ``index [M]`` (``code_cols`` unused).
        Embedding form: columns are encoded samples ``code_cols [M, E]`` (``index`` unused).
        """
        if self.form == "anchor":
            w, b = self.anchor_rows(index)
            if inv.active():
                return inv.rowwise_linear(code, w, None if b is None else b.view(-1))
            return code @ w.t() if b is None else torch.addmm(b.view(1, -1), code, w.t())
        return inv.pairwise_distance(code, code_cols, "sqeuclidean")

    def cross_distances(self, x: Tensor, x_cols: Tensor | None = None,
                        index: Tensor | None = None) -> Tensor:
        r"""Learned distances ``[N, M]`` from samples ``x [N, F]`` (any, train or test) to
        ``M`` column samples.

        Anchor form: the columns must be training samples, given by ``index [M]``
        (``head(x)[:, index]``); ``x_cols`` is ignored. Embedding form: the columns are
        given by their features ``x_cols [M, F]``; ``index`` is ignored.
        """
        if self.form == "anchor":
            self._check_sized()
            if index is None:
                raise ValueError("form='anchor' measures distances to training samples only: "
                                 "pass their indices as index")
            index = check_index(index, index.numel() if isinstance(index, Tensor) else -1,
                                self.num_train)
            return self.distances_from_code(self.encode(x), index=index)
        if x_cols is None:
            raise ValueError("form='embedding' needs the column samples' features x_cols")
        return inv.pairwise_distance(self.encode(x), self.encode(x_cols), "sqeuclidean")

    def distances(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        r"""The ``[B, B]`` learned distance matrix of a batch ``x [B, F]``.

        Anchor form: ``head(x)[:, index]`` for the batch's training indices ``index [B]``
        (``ValueError`` naming any index outside ``[0, num_train)``). Embedding form:
        :math:`\lVert e_i - e_j \rVert^2` (``index`` is ignored). The diagonal is kept
        (it is excluded when Eq. 3 is applied).
        """
        if self.form == "anchor":
            self._check_sized()
            if index is None:
                raise ValueError("form='anchor' needs index: the training-sample indices "
                                 "of the batch rows")
            index = check_index(index, x.size(0), self.num_train)
            return self.distances_from_code(self.encode(x), index=index)
        code = self.encode(x)
        return inv.pairwise_distance(code, code, "sqeuclidean")

    # ------------------------------------------------------------------ graph
    def topk(self, dist: Tensor, exclude_self: bool = True) -> tuple[Tensor, Tensor]:
        """Eq. 3 rows of a ``[B, B]`` distance matrix with ``s`` capped at ``B - 2``."""
        candidates = dist.size(1) - (1 if exclude_self else 0)
        s = effective_sparsity(self.s, candidates, what="candidate samples in the batch")
        return sparse_simplex_topk(dist, s, exclude_self=exclude_self)

    def forward(self, x: Tensor, index: Tensor | None = None, return_dense: bool = False
                ) -> tuple[Tensor, Tensor] | tuple[Tensor, Tensor, Tensor]:
        r"""The learned graph of a batch.

        Args:
            x: ``[B, F]`` batch features.
            index: ``[B]`` training-sample ids of the rows (anchor form; required).
            return_dense: also return the dense row-stochastic ``P [B, B]`` of Eq. 3.

        Returns:
            ``(edge_index [2, E], edge_weight [E])`` of :math:`A = (P + P^\top)/2`
            (``edge_weight`` is differentiable w.r.t. every head parameter), plus ``P``
            when ``return_dense``.
        """
        dist = self.distances(x, index)
        idx, w = self.topk(dist, exclude_self=True)
        edge_index, edge_weight = topk_to_edges(idx, w, num_nodes=dist.size(0))
        if return_dense:
            return edge_index, edge_weight, torch.zeros_like(dist).scatter(1, idx, w)
        return edge_index, edge_weight

    def __repr__(self) -> str:
        extra = (f"num_train={self.num_train}" if self.form == "anchor"
                 else f"embedding_channels={self.embedding_channels}"
                 + (f", code_scale={self.code_scale:g}" if self.code_scale else ""))
        return (f"{self.__class__.__name__}({self.in_channels}, form={self.form!r}, s={self.s}, "
                f"hidden_channels={self.hidden_channels}, {extra})")
