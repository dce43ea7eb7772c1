r"""CNN2GNN heterogeneous distillation (paper §3.3, Eq. 6 and 7): a CNN teacher into a
learned graph head + GNN student."""
from __future__ import annotations

from typing import Any, Protocol

import torch
from torch import Tensor, nn

from tg_cnn2gnn.distill._checks import check_weight
from tg_cnn2gnn.distill.batch import DistillData
from tg_cnn2gnn.distill.distillers.base import Distiller, TrainBatch
from tg_cnn2gnn.distill.loss import DistillationLoss, check_tau, distillation_terms, relation_loss


class TrainingGraph(Protocol):
    """What a ``graph_builder`` returns for one mini-batch."""

    x: Tensor                       # [N, F] node features, the batch's B rows first
    edge_index: Tensor              # [2, E]
    edge_weight: Tensor             # [E] (differentiable w.r.t. whatever should learn the graph)
    num_batch: int                  # B: the logits of the first B nodes enter the loss
    aux_losses: dict[str, Tensor]   # already weighted; added to the loss and to the terms
    node_index: Tensor | None       # [N] training id of every node (optional: pool nodes' teacher logits)


class CNN2GNNDistiller(Distiller):
    r"""The CNN2GNN objective (paper Eq. 6/7) for a graph head + GNN student model.

    For a mini-batch :math:`\mathcal{B}` of training samples,

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{B}|}\sum_{i\in\mathcal{B}}\mathrm{CE}(f(v_i; A), y_i)
          + \alpha\, c\, \mathrm{KL}\big(q(f_T(x_i), \tau)\,\|\,q(f(v_i; A), \tau)\big)
          + \lambda_{rel}\, \mathcal{L}_{rel},

    KL averaged over the batch, :math:`c=\tau^2` (``kd_scale="tau2"``) or 1 (``"none"``),
    :math:`\mathcal{L}_{rel}` the optional teacher-relation term
    (:func:`~tg_cnn2gnn.distill.relation_loss`; ours, not in the paper). Terms: ``"ce"``,
    ``"kd"`` (``alpha * c * KL``, when ``alpha > 0``), ``"relation"`` (when
    ``relation_weight > 0``) and the graph builder's ``aux_losses``. Diagnostics
    (:attr:`metrics`): the unweighted ``"kd"`` when ``alpha == 0`` (``NaN`` without
    teacher logits), the unweighted ``"rel"`` when ``relation_weight > 0``.

    The mini-batch travels as a PyG :class:`~tg_cnn2gnn.distill.DistillData` to
    :meth:`student_forward` (override it to run another PyG model on the ``Data`` graph).

    Args:
        teacher: the CNN teacher, or ``None`` when ``alpha == 0`` and ``relation_weight == 0``.
        model: a :class:`~tg_cnn2gnn.nn.CNN2GNN` or any module with ``graph(x [B, F], index [B])
            -> (edge_index, edge_weight)``, ``student(x, edge_index, edge_weight) -> logits`` and
            ``predict(x, mechanism=..., train_x=...)``.
        alpha, tau, kd_scale: the KD term (paper: alpha 1).
        relation_weight, relation_tau: the teacher-relation term (0: the paper's objective).
        graph_builder: ``None`` (the model's batch-internal ``model.graph(x, index)``), or a
            callable ``(model, x [B, F], y [B], index [B]) -> TrainingGraph`` (e.g. a graph over
            the batch plus other nodes); its ``on_epoch_start(model, train_x, train_y, epoch)``
            is called before each epoch when it has one, with the training set's node features
            ``train_x [n_train, F]`` (flattened, row ``k`` = training id ``k``) and labels.

    With a graph builder whose graphs hold nodes beyond the batch (``num_batch < N``, e.g.
    :class:`~tg_cnn2gnn.nn.pool_graph.TrainingPool`) the relation term runs over every node whose
    teacher logits are known: those of :attr:`teacher_cache` (``[n_train, C]``, set by the trainer
    through :meth:`set_teacher_cache` when it caches the teacher's logits) looked up by the graph's
    ``node_index``, else the latest logits seen for each training id (a sample's logits are known
    once its own batch has run); edges touching a node without logits are left out.
    """

    name = "cnn2gnn"

    def __init__(self, teacher: nn.Module | None, model: nn.Module, *, alpha: float = 1.0, tau: float = 4.0,
                 kd_scale: str = "tau2", relation_weight: float = 0.0, relation_tau: float = 1.0,
                 graph_builder: Any = None) -> None:
        criterion = DistillationLoss(alpha, tau, kd_scale)
        try:
            relation_weight = check_weight("relation_weight", relation_weight)
        except ValueError:
            raise ValueError(f"relation_weight must be a finite number >= 0, got {relation_weight!r}") from None
        relation_tau = check_tau(relation_tau)
        if teacher is None:
            if criterion.alpha != 0.0:
                raise ValueError(f"teacher is None but alpha={alpha}; pass a teacher or alpha=0")
            if relation_weight != 0.0:
                raise ValueError(f"teacher is None but relation_weight={relation_weight}; the relation "
                                 "term needs a teacher")
        elif not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module (or None with alpha=0), got {type(teacher).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module (e.g. tg_cnn2gnn.nn.CNN2GNN), got {type(model).__name__}")
        missing = [a for a in ("graph", "student", "predict") if not hasattr(model, a)]
        if missing:
            raise TypeError(f"model {type(model).__name__} lacks {missing}; it must provide graph(x, index), "
                            "a student(x, edge_index, edge_weight) and predict(x, mechanism=..., train_x=...) "
                            "like tg_cnn2gnn.nn.CNN2GNN")
        if graph_builder is not None and not callable(graph_builder):
            raise TypeError(f"graph_builder must be callable (model, x, y, index) -> graph, got "
                            f"{type(graph_builder).__name__}")
        super().__init__(teacher, model)
        self.criterion = criterion
        self.relation_weight = relation_weight
        self.relation_tau = relation_tau
        self.graph_builder = graph_builder
        self.teacher_cache: Tensor | None = None      # [n_train, C] exact teacher logits by training id
        self._seen: Tensor | None = None              # [n_train, C] latest teacher logits seen (no cache)
        self._known: Tensor | None = None             # [n_train] bool: row of _seen filled
        self._n_train: int | None = None

    @property
    def model(self) -> nn.Module:
        """The trained model (graph head + GNN student); the same module as :attr:`student`."""
        return self.student

    @property
    def alpha(self) -> float:
        return self.criterion.alpha

    @property
    def tau(self) -> float:
        return self.criterion.tau

    @property
    def kd_scale(self) -> str:
        return self.criterion.kd_scale

    @property
    def uses_teacher(self) -> bool:
        """Whether training needs the teacher's logits (KD term or relation term)."""
        return self.teacher is not None and (self.alpha > 0 or self.relation_weight > 0)

    def hparams(self) -> dict[str, Any]:
        return {"distiller": self.name, "alpha": self.alpha, "tau": self.tau, "relation_weight": self.relation_weight,
                "relation_tau": self.relation_tau, "kd_scale": self.kd_scale}

    def set_teacher_cache(self, logits: Tensor | None) -> None:
        """The teacher's logits ``[n_train, C]`` by training id (used for pool nodes' relation edges)."""
        self.teacher_cache = None if logits is None else logits.detach()

    def on_epoch_start(self, epoch: int, train_x: Tensor, train_y: Tensor) -> None:
        self._n_train = int(train_x.size(0))
        hook = getattr(self.graph_builder, "on_epoch_start", None)
        if hook is not None:
            hook(self.student, train_x, train_y, epoch)

    def forward_train(self, batch: TrainBatch, epoch: int) -> tuple[Tensor, dict[str, Tensor]]:
        t_logits = self.batch_teacher_logits(batch)
        aux: dict[str, Tensor] = {}
        if self.graph_builder is None:
            data = self.make_batch(batch.nodes, batch.labels, batch.index, t_logits)
            logits = self.student_forward(data)
            edge_index, edge_weight = data.edge_index, data.edge_weight
        else:
            g = self.graph_builder(self.student, batch.nodes, batch.labels, batch.index)
            b = int(g.num_batch)
            data = DistillData(x=g.x, y=batch.labels, index=batch.index, edge_index=g.edge_index,
                               edge_weight=g.edge_weight)
            logits = self.student_forward(data)[:b]
            if self.relation_weight > 0:
                edge_index, edge_weight, node_logits = self._relation_graph(g, b, batch.index, t_logits)
            aux = dict(getattr(g, "aux_losses", None) or {})
        if self.graph_builder is None or self.relation_weight == 0:
            node_logits = t_logits
        terms, kd = distillation_terms(logits.float(), t_logits, batch.labels, self.alpha, self.tau, self.kd_scale)
        metrics: dict[str, Tensor] = {}
        if "kd" not in terms:
            metrics["kd"] = kd.detach()
        if self.relation_weight > 0:
            rel = relation_loss(edge_index, edge_weight, node_logits, self.relation_tau)
            terms["relation"] = self.relation_weight * rel
            metrics["rel"] = rel.detach()
        for k, v in aux.items():
            if k in terms:
                raise ValueError(f"graph_builder aux loss {k!r} collides with a loss term of the distiller")
            terms[k] = v
        self.metrics = metrics
        return logits, terms

    def _relation_graph(self, g: Any, b: int, index: Tensor, t_logits: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``(edge_index [2, E], edge_weight [E], node_logits [N', C])`` of the relation term on a
        builder's graph: every node with known teacher logits (``N' = N``), or the batch alone
        (``N' = B``) when the graph has no ``node_index``. Edges are masked, not filtered (no host sync)."""
        n = g.x.size(0)
        node_index = getattr(g, "node_index", None)
        if n == b or node_index is None:
            inside = (g.edge_index < b).all(0)
            return torch.where(inside, g.edge_index, 0), g.edge_weight * inside, t_logits
        node_index = node_index.long()
        t_logits = t_logits.detach().float()
        if self.teacher_cache is not None:
            node_logits = self.teacher_cache.index_select(0, node_index).float()
            known = torch.ones(n, dtype=torch.bool, device=node_logits.device)
        else:
            n_train = max(self._n_train or 0, int(node_index.max()) + 1)
            if self._seen is None or self._seen.size(0) < n_train or self._seen.size(1) != t_logits.size(1) \
                    or self._seen.device != t_logits.device:
                self._seen = t_logits.new_zeros(n_train, t_logits.size(1))
                self._known = torch.zeros(n_train, dtype=torch.bool, device=t_logits.device)
            self._seen[index] = t_logits
            self._known[index] = True
            node_logits = self._seen.index_select(0, node_index)
            known = self._known.index_select(0, node_index)
        node_logits = torch.cat([t_logits, node_logits[b:]])             # the batch: this step's logits
        keep = known.clone()
        keep[:b] = True
        ok = keep[g.edge_index].all(0)
        return torch.where(ok, g.edge_index, 0), g.edge_weight * ok, node_logits

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, tau={self.tau}, kd_scale={self.kd_scale!r}, relation_weight={self.relation_weight}"
