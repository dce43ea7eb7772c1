"""Hinton knowledge distillation (Hinton et al., 2015) into any student, e.g. an MLP."""
from __future__ import annotations

from typing import Any

from torch import Tensor, nn

from tg_cnn2gnn.distill.distillers.base import Distiller, TrainBatch
from tg_cnn2gnn.distill.loss import DistillationLoss, distillation_terms


class KDDistiller(Distiller):
    r"""``CE(student, y) + alpha * c * KL(q(teacher / tau) || q(student / tau))`` (the paper's
    "KD" rows; the same Eq. 6 as :class:`CNN2GNNDistiller`, without a graph).

    The student is any module on flat node features ``[B, F]`` -> ``[B, C]`` (e.g.
    :class:`~tg_cnn2gnn.nn.mlp.MLP`), or a CNN2GNN-style model (then on its batch graph).
    Terms: ``"ce"`` and ``"kd"`` (``alpha * c * KL``, when ``alpha > 0``); diagnostic
    ``"kd"`` (unweighted) when ``alpha == 0``.

    Args:
        teacher: the teacher (required when ``alpha > 0``).
        student: the student.
        alpha, tau, kd_scale: as :class:`~tg_cnn2gnn.distill.DistillationLoss`.
    """

    name = "kd"

    def __init__(self, teacher: nn.Module | None, student: nn.Module, *, alpha: float = 1.0, tau: float = 4.0,
                 kd_scale: str = "tau2") -> None:
        criterion = DistillationLoss(alpha, tau, kd_scale)
        if teacher is None and criterion.alpha != 0.0:
            raise ValueError(f"teacher is None but alpha={alpha}; KD needs a teacher (or use 'ce')")
        super().__init__(teacher, student)
        self.criterion = criterion

    @property
    def alpha(self) -> float:
        return self.criterion.alpha

    @property
    def tau(self) -> float:
        return self.criterion.tau

    @property
    def uses_teacher(self) -> bool:
        return self.teacher is not None and self.alpha > 0

    def hparams(self) -> dict[str, Any]:
        return {"distiller": self.name, "alpha": self.alpha, "tau": self.tau, "kd_scale": self.criterion.kd_scale}

    def forward_train(self, batch: TrainBatch, epoch: int) -> tuple[Tensor, dict[str, Tensor]]:
        t_logits = self.batch_teacher_logits(batch)
        logits = self.student_logits(batch)
        c = self.criterion
        terms, kd = distillation_terms(logits.float(), t_logits, batch.labels, c.alpha, c.tau, c.kd_scale)
        self.metrics = {} if "kd" in terms else {"kd": kd.detach()}
        return logits, terms
