r"""The frozen-bank predictor: ``"bank"`` inference at one sample's marginal cost.

Everything the bank contributes to ``predict(mechanism="bank")`` is fixed once the model
is trained: the bank samples' codes (as distance columns), the bank graph and the bank
nodes' per-layer states that a test node reads (test nodes only receive messages). A
:class:`BankPredictor` holds them as buffers and does, per test sample ``x_t``: the head
MLP on ``x_t`` (``O(F H)``), its distances to the ``|B|`` bank columns (``O(H |B|)``), Eq. 3
over its ``s`` nearest, and each student layer for its own node (``O(s H + F H)``,
:mod:`~tg_cnn2gnn.inference.frozen`). Nothing is ever computed over the bank.

Modes (both give ``predict(mechanism="bank")``'s logits to float tolerance: the bank part
is computed once instead of per call, and sums run in a different order):

* ``deterministic=False`` (default): every product is one ``gemm`` over the call's rows --
  fastest, but BLAS may round a row differently depending on the batch shape, so logits
  may change in the last bits with the batch size.
* ``deterministic=True``: every product of sample features with a weight matrix is
  computed row by row (:mod:`tg_cnn2gnn.nn._invariant`) and neighbour aggregation is one
  product per node, so the logits are bit-identical under any batching (batch size 1
  included) for a fixed device and thread count; about 2-3x the time of the ``gemm``
  mode on a large batch, about the same at batch size 1.

Per call, a sample costs about 35 small operations (60 before these shortcuts; batch of 1: under the width-16
simple-cnn teacher's time, ``benchmarks/predictor_latency.py``), because the arithmetic is
arranged once, at construction (:meth:`BankPredictor._derive`):

* the head's first product and a first ``GCNConv``'s own-node product are one stacked
  ``[H0 + F1, F]`` product;
* with normalised codes (``code_scale``) the search ranks ``p @ col_w`` on the head's output
  ``p`` before normalisation (every bank code has the same norm, so ranking and Eq. 3 are
  unchanged);
* Eq. 3 weights sum to 1, so a test node's GCN degree is the constant ``fill + 1``;
* neighbour sums are one ``embedding_bag`` per layer; Eq. 3 is :func:`eq3_weights`.

Neighbour search over a large bank runs in column chunks of ``neighbour_chunk`` bank
samples, merging the running ``s + 1`` nearest, so memory stays ``O(T x chunk)``.

Search (``search=``, stored in :attr:`spec`): ``"exact"`` (default) scores all ``|B|``
columns; ``"ivf"`` scores the members of the ``nprobe`` nearest of ``nlist`` k-means lists
(:mod:`~tg_cnn2gnn.inference.ivf`): approximate (recall of the ``s`` nearest below 1 unless
``nprobe = nlist``), about ``nlist + nprobe x L`` column products instead of ``|B|``, for
large banks. Both modes above apply to both searches.

Construction: ``model.bank_predictor(train_x, bank_size=..., seed=...)``. The predictor is
a plain module of tensors plus a JSON-able :attr:`spec`, so it saves without pickled code
(:func:`~tg_cnn2gnn.inference.save_predictor`) and exports with ``torch.export``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tg_cnn2gnn.functional.simplex import simplex_weights
from tg_cnn2gnn.inference._common import effective_sparsity, flat
from tg_cnn2gnn.inference.bank import bank_graph_chunked
from tg_cnn2gnn.inference.frozen import freeze_conv, frozen_forward
from tg_cnn2gnn.inference.ivf import IVF_BUFFERS, build_ivf, check_nprobe, ivf_search, list_sizes
from tg_cnn2gnn.inference.label_vote import VOTE_EPS, check_label_vote, neighbour_vote, with_label_vote
from tg_cnn2gnn.nn import _invariant as inv

#: Layout version of :attr:`BankPredictor.spec` (2: ``search`` and ``ivf`` keys; version-1
#: specs, without them, still load as ``search="exact"``; 3: the optional ``vote`` key).
SPEC_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
#: Neighbour searches of :class:`BankPredictor`.
SEARCHES = ("exact", "ivf")


def _check_search(name: str, value: object) -> str:
    if value not in SEARCHES:
        raise ValueError(f"{name}={value!r} is not a neighbour search; allowed: {', '.join(map(repr, SEARCHES))}")
    return value  # type: ignore[return-value]


def _plain_lin(x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
    return F.linear(x, w, b)


def _student_convs(student: nn.Module) -> list[nn.Module]:
    """The convs of a :class:`GraphStudent` or of a plain PyG ``BasicGNN`` (ReLU, no norm, no JK)."""
    from tg_cnn2gnn.nn.student import GraphStudent
    if isinstance(student, GraphStudent):
        return list(student.convs)
    from torch_geometric.nn.models.basic_gnn import BasicGNN
    if isinstance(student, BasicGNN):
        plain_norm = all(isinstance(n, nn.Identity) for n in (student.norms or []))
        if isinstance(student.act, nn.ReLU) and plain_norm and student.jk_mode is None:
            return list(student.convs)
        raise ValueError("bank_predictor supports PyG BasicGNN students with act='relu', no norm "
                         "and no jumping knowledge; use model.predict(mechanism='bank')")
    raise ValueError(f"bank_predictor needs a GraphStudent or a PyG BasicGNN student to freeze "
                     f"layer by layer, got {type(student).__name__}; use model.predict(mechanism='bank')")


def _head_tensors(model, xb: Tensor, cb: Tensor, bank: Tensor) -> tuple[dict, dict[str, Tensor]]:
    """The per-sample encoder and the bank's distance columns, ``d = f([c', 1] @ col_wb)``."""
    from tg_cnn2gnn.nn.model import CNN2GNN, FixedGraphGNN
    t: dict[str, Tensor] = {}
    if isinstance(model, CNN2GNN):
        head = model.head
        lins = [m for m in head.body if isinstance(m, nn.Linear)]
        if any(not isinstance(m, (nn.Linear, nn.ReLU, nn.Dropout)) for m in head.body):
            raise ValueError("bank_predictor supports heads made of Linear/ReLU/Dropout layers")
        for i, m in enumerate(lins):
            t[f"head_w{i}"], t[f"head_b{i}"] = m.weight.detach().clone(), m.bias.detach().clone()
        scale = float(getattr(head, "code_scale", 0.0) or 0.0)
        spec = {"layers": len(lins), "proj": head.proj is not None, "normalise": bool(scale)}
        if scale:
            spec["scale"] = scale
        if head.proj is not None:
            t["head_proj_w"] = head.proj.weight.detach().clone()
            if head.proj.bias is not None:
                t["head_proj_b"] = head.proj.bias.detach().clone()
        if head.form == "anchor":
            w, b = head.anchor_rows(bank)
            t["col_w"], spec["metric"] = w.detach().t().contiguous(), "linear"
            t["col_b"] = (b.detach().view(-1) if b is not None else w.new_zeros(bank.numel())).clone()
            return spec, _fold_bias(t)
        metric = "sqeuclidean"
    elif isinstance(model, FixedGraphGNN):
        spec = {"layers": 0, "proj": False, "normalise": model.metric == "cosine"}
        metric = model.metric
    else:
        raise ValueError(f"bank_predictor supports CNN2GNN and FixedGraphGNN models, got {type(model).__name__}")
    if metric == "inner":
        t["col_w"], t["col_b"], metric = -cb.t(), cb.new_zeros(cb.size(0)), "linear"
    elif metric == "cosine":
        t["col_w"], t["col_b"], metric = -F.normalize(cb, dim=1).t(), cb.new_ones(cb.size(0)), "linear"
    else:
        t["col_w"], t["col_b"] = -2.0 * cb.t(), (cb * cb).sum(1)
    spec["metric"] = metric
    return spec, _fold_bias(t)


def _fold_bias(t: dict[str, Tensor]) -> dict[str, Tensor]:
    """Store the columns as one ``[K + 1, |B|]`` matrix whose last row is ``col_b``, so that
    ``[c, 1] @ col_wb`` gives the distances in one product (no ``[T, |B|]`` element-wise pass,
    which costs as much as the product at batch size 1)."""
    t["col_wb"] = torch.cat([t.pop("col_w"), t.pop("col_b").unsqueeze(0)]).contiguous()
    return t


class BankPredictor(nn.Module):
    r"""``"bank"`` inference with the bank precomputed: ``x [T, F]`` (or images ``[T, ...]``)
    -> logits ``[T, C]`` equal to ``model.predict(x, mechanism="bank", ...)`` for the same
    bank (see the module docstring for the two modes and their cost).

    Build it with :meth:`from_model` (``model.bank_predictor(train_x, ...)``); :attr:`spec`
    (JSON-able) and the buffers describe it completely.

    Args:
        spec (dict): layout (``in_channels``, ``out_channels``, ``s``, ``num_bank``, head and
            layer specs).
        tensors (dict): every tensor, registered as buffers under the same names.
        deterministic (bool): row-invariant arithmetic (bit-identical under any batching).
        neighbour_chunk (int): bank columns per chunk of the exact neighbour search.

    ``spec["search"]`` (``"exact"`` or ``"ivf"``; version-1 specs: ``"exact"``) picks the
    neighbour search; an ``"ivf"`` spec carries ``spec["ivf"]`` (``nlist``, ``nprobe``, ...)
    and the ``ivf_*`` buffers. :attr:`search` and :attr:`nprobe` can be changed afterwards
    (an IVF predictor can search exactly; ``nprobe`` trades recall for time).
    """

    def __init__(self, spec: dict, tensors: dict[str, Tensor], *, deterministic: bool = False,
                 neighbour_chunk: int = 65536) -> None:
        super().__init__()
        if not isinstance(spec, dict) or spec.get("version") not in _READABLE_VERSIONS:
            raise ValueError(f"spec must be a BankPredictor spec of version "
                             f"{' or '.join(map(str, _READABLE_VERSIONS))}, got version "
                             f"{spec.get('version') if isinstance(spec, dict) else spec!r}")
        search = _check_search("spec['search']", spec.get("search", "exact"))
        if search == "ivf":
            missing = [k for k in IVF_BUFFERS if k not in tensors]
            if missing or not isinstance(spec.get("ivf"), dict):
                raise ValueError(f"an 'ivf' spec needs spec['ivf'] and the tensors {list(IVF_BUFFERS)}; "
                                 f"missing {missing or ['spec[ivf]']}")
        if isinstance(neighbour_chunk, bool) or not isinstance(neighbour_chunk, int) or neighbour_chunk < 1:
            raise ValueError(f"neighbour_chunk must be a positive int, got {neighbour_chunk!r}")
        self.spec = spec
        self.deterministic = bool(deterministic)
        self.neighbour_chunk = neighbour_chunk
        for k, v in tensors.items():
            self.register_buffer(k, v.detach())
        # (short name, buffer name) per layer, looked up once instead of per call.
        self._layer_keys = [[(k[len(f"layer{i}_"):], k) for k in tensors if k.startswith(f"layer{i}_")]
                            for i in range(len(spec.get("layers", [])))]
        if search == "ivf":
            self.nprobe = spec["ivf"]["nprobe"]          # checked against the stored lists
        if "vote" in spec:
            if "vote_labels" not in tensors or not isinstance(spec["vote"], dict):
                raise ValueError("a spec with a label vote needs spec['vote'] and the tensor 'vote_labels'")
            self.label_vote = spec["vote"].get("beta")   # checked
        self._derive()

    # ------------------------------------------------------------------ search settings
    @property
    def search(self) -> str:
        """``"exact"`` or ``"ivf"``; settable (``"ivf"`` only on a predictor built with an index)."""
        return self.spec.get("search", "exact")

    @search.setter
    def search(self, value: str) -> None:
        _check_search("search", value)
        if value == "ivf" and not hasattr(self, "ivf_ids"):
            raise ValueError("search='ivf' needs an IVF index: build the predictor with "
                             "model.bank_predictor(..., search='ivf')")
        self.spec["search"] = value

    @property
    def nprobe(self) -> int | None:
        """Lists probed per query by the IVF search (``None`` without an index); settable."""
        return self.spec["ivf"]["nprobe"] if "ivf" in self.spec else None

    @nprobe.setter
    def nprobe(self, value: int) -> None:
        if not hasattr(self, "ivf_ids"):
            raise ValueError("nprobe needs an IVF index: build the predictor with search='ivf'")
        sizes = list_sizes(self.ivf_ids)
        self.spec["ivf"]["nprobe"] = check_nprobe(value, sizes, self.spec["s"] + 1)

    @property
    def label_vote(self) -> float:
        """Weight ``beta`` of the bank neighbours' label vote (:mod:`~tg_cnn2gnn.inference.label_vote`;
        0 = the student alone); settable on a predictor built with the bank's labels."""
        return self.spec["vote"]["beta"] if "vote" in self.spec else 0.0

    @label_vote.setter
    def label_vote(self, value: float) -> None:
        value = check_label_vote(value)
        if not hasattr(self, "vote_labels"):
            if value:
                raise ValueError("label_vote needs the bank's labels: build the predictor with "
                                 "model.bank_predictor(train_x, train_y=..., label_vote=...)")
            return
        self.spec.setdefault("vote", {"eps": VOTE_EPS})["beta"] = value

    @classmethod
    @torch.no_grad()
    def from_model(cls, model, train_x: Tensor, bank: Tensor, *, deterministic: bool = False,
                   neighbour_chunk: int = 65536, search: str = "exact", nlist: int | None = None,
                   nprobe: int | None = None, index_seed: int = 0, train_y: Tensor | None = None,
                   label_vote: float = 0.0) -> "BankPredictor":
        """Precompute the bank of ``model`` from ``train_x [n_train, F]`` and bank ids ``bank [|B|]``.

        Cost, once: the head on the bank, ``|B|^2`` distances in row chunks (never a
        ``[|B|, |B|]`` matrix), the student over the bank graph; with ``search="ivf"`` also
        k-means over the bank's distance columns (``nlist`` lists, default about
        ``4 sqrt(|B|)``; ``nprobe`` probed per query, default about ``sqrt(nlist)``;
        seeded by ``index_seed``; see :mod:`~tg_cnn2gnn.inference.ivf`). ``train_y [n_train]``
        (the training labels) stores the bank's labels for the label vote of weight
        ``label_vote`` (:mod:`~tg_cnn2gnn.inference.label_vote`)."""
        _check_search("search", search)
        label_vote = check_label_vote(label_vote)
        if label_vote and train_y is None:
            raise ValueError(f"label_vote={label_vote} needs train_y, the training labels [n_train]")
        if search == "exact" and (nlist is not None or nprobe is not None):
            raise ValueError(f"nlist={nlist!r} / nprobe={nprobe!r} are IVF settings: pass search='ivf' with them")
        convs = _student_convs(model.student)
        # the labels are checked before the bank's (possibly long) precomputation
        labels = None if train_y is None else _bank_labels(train_y, flat(train_x).size(0), bank,
                                                           int(convs[-1].out_channels))
        was_training = model.training
        model.eval()
        try:
            xb = flat(train_x).index_select(0, bank)
            cb = model.code(xb)
            ei, ew = bank_graph_chunked(model, cb, bank)
            head_spec, t = _head_tensors(model, xb, cb, bank)
            layers, h = [], xb
            for i, conv in enumerate(convs):
                spec, lt = freeze_conv(conv, h, ei, ew, _plain_lin)
                layers.append(spec)
                t.update({f"layer{i}_{k}": v for k, v in lt.items()})
                h = conv(h, ei, ew)
                if i < len(convs) - 1:
                    h = torch.relu(h)
        finally:
            model.train(was_training)
        t["bank_index"] = bank.detach().clone().long()
        vote = None
        if labels is not None:
            t["vote_labels"], vote = labels, {"beta": label_vote, "eps": VOTE_EPS}
        spec = {"version": SPEC_VERSION, "in_channels": int(xb.size(1)),
                "out_channels": int(layers and t[_last_out(len(layers) - 1, layers[-1])].size(0)),
                "s": effective_sparsity(model.s, bank.numel(), what="bank samples"),
                "num_bank": int(bank.numel()), "head": head_spec, "layers": layers, "search": search}
        if vote is not None:
            spec["vote"] = vote
        if search == "ivf":
            spec["ivf"], ivf_t = build_ivf(t["col_wb"], head_spec["metric"], spec["s"] + 1, nlist=nlist,
                                           nprobe=nprobe, seed=index_seed)
            t.update(ivf_t)
        return cls(spec, {k: v.contiguous() for k, v in t.items()}, deterministic=deterministic,
                   neighbour_chunk=neighbour_chunk)

    # -------------------------------------------------------------------- per-sample work
    def _derive(self) -> None:
        """Derived tensors of the per-call fast path, registered as non-persistent buffers
        (they move with ``.to()``, export with the module, and are never saved: a loaded
        predictor rebuilds them from the stored tensors).

        ``_x_w``/``_x_b``: when the first student layer is a ``gcn`` and the head has a
        hidden layer, the head's first weight and that layer's own-node weight stacked
        into one ``[H0 + F1, F]`` matrix, so a sample's features go through one product
        instead of two (``_x_split = H0`` rows belong to the head).

        ``_direction_search``: the head normalises its codes (``code_scale``) under the
        squared Euclidean metric. Every bank code then has the same norm, so with
        ``c = scale p / |p|`` (``p``: the head's output) the distance to bank code ``b_j`` is
        ``|c|^2 + |b_j|^2 - 2 c.b_j = const - (2 scale / |p|) p.b_j``: ranking and Eq. 3
        weights (invariant to a row's shift and scale) follow from ``p @ col_w = -2 p.b_j``
        alone, so the exact search skips the normalisation and the column bias."""
        hs, layers = self.spec["head"], self.spec.get("layers", [])
        self._direction_search = bool(hs["normalise"] and "scale" in hs and hs["metric"] == "sqeuclidean")
        self._x_split = 0
        first = layers[0] if layers else {}
        if hs["layers"] >= 1 and first.get("kind") == "gcn" and first["normalize"] and first["fill"] > 0:
            w0, b0, lw = self.head_w0, self.head_b0, self.layer0_lin_w
            self.register_buffer("_x_w", torch.cat([w0, lw]).contiguous(), persistent=False)
            self.register_buffer("_x_b", torch.cat([b0, b0.new_zeros(lw.size(0))]), persistent=False)
            self._x_split = int(w0.size(0))

    def _lin(self, x: Tensor, w: Tensor, b: Tensor | None) -> Tensor:
        return inv.rowwise_linear(x, w, b) if self.deterministic else F.linear(x, w, b)

    def _t(self, i: int) -> dict[str, Tensor]:
        return {short: getattr(self, full) for short, full in self._layer_keys[i]}

    def _encode(self, x: Tensor, normalise: bool = True) -> tuple[Tensor, Tensor | None]:
        """``(code [T, K], own [T, F1] or None)``: the head's code (``normalise=False``: before
        the normalisation of a ``code_scale`` head) and, on the fused path, the first layer's
        own-node product of ``x`` (see :meth:`_derive`)."""
        hs = self.spec["head"]
        own, first = None, 0
        if self._x_split:
            z = self._lin(x, self._x_w, self._x_b)
            x, own, first = torch.relu(z[:, :self._x_split]), z[:, self._x_split:], 1
        for i in range(first, hs["layers"]):
            x = torch.relu(self._lin(x, getattr(self, f"head_w{i}"), getattr(self, f"head_b{i}")))
        if hs["proj"]:
            x = self._lin(x, self.head_proj_w, getattr(self, "head_proj_b", None))
        return (self._normalise(x) if normalise else x), own

    def _normalise(self, x: Tensor) -> Tensor:
        hs = self.spec["head"]
        if not hs["normalise"]:
            return x
        x = F.normalize(x, dim=1)
        return hs["scale"] * x if "scale" in hs else x

    def encode(self, x: Tensor) -> Tensor:
        """The head's code ``[T, K]`` of samples ``x [T, F]`` (the features themselves for
        fixed-graph models)."""
        return self._encode(x)[0]

    def neighbours(self, code: Tensor) -> tuple[Tensor, Tensor]:
        """Bank positions ``[T, s]`` of each sample's ``s`` nearest and their Eq. 3 weights ``[T, s]``.

        The search ranks ``score = code @ col_w + col_b``, the distance less the query's own
        ``|c|^2`` (a per-row constant, which changes neither the ranking nor Eq. 3's gaps);
        only the ``"euclidean"`` metric adds it back, for its square root."""
        return self._neighbours(code, raw=False)

    def _neighbours(self, q: Tensor, raw: bool) -> tuple[Tensor, Tensor]:
        """:meth:`neighbours` of codes ``q``, or (``raw``) of the head's output before the
        normalisation of a ``code_scale`` head: the exact search then ranks it directly
        (``_direction_search``, see :meth:`_derive`); the IVF search normalises it first."""
        s, metric = self.spec["s"], self.spec["head"]["metric"]
        if raw and self.search == "exact":
            vals, pos = self._exact_search(q, bias=False)
            return pos[:, :s], eq3_weights(vals, s)
        code = self._normalise(q) if raw else q
        if self.search == "ivf":
            code1 = torch.cat([code, torch.ones_like(code[:, :1])], dim=1)      # [T, K + 1]
            t = {k: getattr(self, k) for k in IVF_BUFFERS}
            mm = inv.rowwise_mm if self.deterministic else torch.matmul
            vals, pos = ivf_search(code1, None, t, self.spec["ivf"]["nprobe"], s + 1, mm)
        else:
            vals, pos = self._exact_search(code)
        if metric == "euclidean":
            vals = (vals + (code * code).sum(1, keepdim=True)).clamp_min(0).sqrt()
        return pos[:, :s], eq3_weights(vals, s)

    def _exact_search(self, code: Tensor, bias: bool = True) -> tuple[Tensor, Tensor]:
        """The ``s + 1`` smallest scores ``[T, s + 1]`` over all bank columns (in chunks of
        ``neighbour_chunk``, merging the running best) and their bank positions ``[T, s + 1]``
        (``bias=False``: ``code @ col_w`` alone, see :meth:`_derive`)."""
        s, nb = self.spec["s"], self.spec["num_bank"]
        col_w, col_b = self.col_wb[:-1], self.col_wb[-1]
        mm = inv.rowwise_mm if self.deterministic else torch.mm
        best_v = best_i = None
        for a in range(0, nb, self.neighbour_chunk):
            b = min(nb, a + self.neighbour_chunk)
            cw, cb = (col_w, col_b) if b - a == nb else (col_w[:, a:b], col_b[a:b])
            if not bias:
                d = mm(code, cw)
            else:
                d = (mm(code, cw) + cb) if self.deterministic else torch.addmm(cb, code, cw)
            val, idx = torch.topk(d, min(s + 1, b - a), dim=1, largest=False, sorted=True)
            if best_v is None:
                best_v, best_i = val, idx if a == 0 else idx + a
            else:
                cand_v, cand_i = torch.cat([best_v, val], 1), torch.cat([best_i, idx + a], 1)
                best_v, pos = torch.topk(cand_v, s + 1, dim=1, largest=False, sorted=True)
                best_i = cand_i.gather(1, pos)
        return best_v, best_i

    def forward(self, x: Tensor) -> Tensor:
        """``x [T, F]`` (or ``[T, C, H, W]``, flattened) -> logits ``[T, C]``."""
        x = flat(x)
        if x.dim() != 2 or x.size(1) != self.spec["in_channels"]:
            raise ValueError(f"x must be [T, {self.spec['in_channels']}] (or samples that flatten "
                             f"to it), got shape {tuple(x.shape)}")
        # a NaN or inf anywhere makes the sum non-finite (one cheap reduction; an overflowing
        # sum of finite values is rechecked element-wise); skipped while torch.export traces
        if not torch.compiler.is_compiling() and not math.isfinite(x.sum().item()):
            bad = (~torch.isfinite(x)).any(1).nonzero().flatten().tolist()
            if bad:
                raise ValueError(f"x holds NaN or infinite values in rows {bad[:5]}{'...' if len(bad) > 5 else ''} "
                                 f"of {x.size(0)}; the predictor needs finite samples")
        p, own = self._encode(x, normalise=not self._direction_search)
        nbr, w = self._neighbours(p, raw=self._direction_search)
        h = x
        for i, spec in enumerate(self.spec["layers"]):
            if i > 0:
                h = torch.relu(h)
            h = frozen_forward(spec, self._t(i), h, nbr, w, self._lin, own=own if i == 0 else None)
        beta = self.label_vote
        if beta:
            h = with_label_vote(h, neighbour_vote(nbr, w, self.vote_labels, h.size(1)), beta)
        return h

    def extra_repr(self) -> str:
        kinds = ",".join(l["kind"] for l in self.spec["layers"])
        ivf = self.spec.get("ivf")
        search = self.search + (f"(nlist={ivf['nlist']}, nprobe={ivf['nprobe']})" if ivf else "")
        vote = f", label_vote={self.label_vote:g}" if self.label_vote else ""
        return (f"in={self.spec['in_channels']}, out={self.spec['out_channels']}, "
                f"bank={self.spec['num_bank']}, s={self.spec['s']}, layers=[{kinds}], "
                f"search={search}, deterministic={self.deterministic}{vote}")


def eq3_weights(vals: Tensor, s: int) -> Tensor:
    """Eq. 3 weights ``[T, s]`` from the ``s + 1`` smallest scores ``vals [T, s + 1]``
    (ascending): :func:`~tg_cnn2gnn.functional.simplex.simplex_weights` in fewer operations
    for the predictor's one call per sample (no rescaling of the row: the scores are
    distances of finite codes; a row whose ``s + 1`` scores are equal is uniform)."""
    gap = (vals[:, s:] - vals[:, :s]).clamp_min_(0)
    # a row of equal scores has gap 0 everywhere: 0 / 0 = NaN only there -> uniform 1 / s
    return gap.div_(gap.sum(1, keepdim=True)).nan_to_num_(1.0 / s)


def _bank_labels(train_y: object, n_train: int, bank: Tensor, num_classes: int) -> Tensor:
    """The bank's labels ``[|B|]`` from the training labels, checked (shape, integer, range)."""
    if not isinstance(train_y, Tensor) or train_y.dim() != 1 or train_y.size(0) != n_train \
            or train_y.dtype.is_floating_point or train_y.dtype == torch.bool:
        got = (f"{tuple(train_y.shape)} {train_y.dtype}" if isinstance(train_y, Tensor) else type(train_y).__name__)
        raise ValueError(f"train_y must be integer class labels of shape [{n_train}] (one per row of "
                         f"train_x), got {got}")
    labels = train_y.index_select(0, bank.to(train_y.device)).long()
    if labels.numel() and (int(labels.min()) < 0 or int(labels.max()) >= num_classes):
        raise ValueError(f"train_y holds labels outside [0, {num_classes}) (the student's "
                         f"{num_classes} classes): min {int(labels.min())}, max {int(labels.max())}")
    return labels.clone()


def _last_out(i: int, spec: dict) -> str:
    """Name of a tensor of layer ``i`` whose first dim is the layer's output width."""
    kind = spec["kind"]
    name = {"gcn": "lin_w", "sg": "lin_w", "ssg": "lin_w", "tag": "lins0_w", "graph": "rel_w",
            "le": "lin3_w"}[kind]
    return f"layer{i}_{name}"
