"""Plain cross-entropy training of the student (no teacher): the "no distillation" baseline."""
from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from tg_cnn2gnn.distill.distillers.base import Distiller, TrainBatch


class CEDistiller(Distiller):
    r"""``CE(student(x), y)``, averaged over the batch; the only term is ``"ce"``.

    A teacher may be passed (it stays frozen and unused in training; a trainer still reports
    its test accuracy) or be ``None``. The student is any module on node features
    ``[B, F]``, or a CNN2GNN-style model (then on its batch graph: the paper's GNN trained
    without a teacher).
    """

    name = "ce"

    def __init__(self, teacher: nn.Module | None, student: nn.Module) -> None:
        super().__init__(teacher, student)

    @property
    def uses_teacher(self) -> bool:
        return False

    def hparams(self) -> dict[str, Any]:
        return {"distiller": self.name}

    def forward_train(self, batch: TrainBatch, epoch: int) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student_logits(batch)
        self.metrics = {}
        return logits, {"ce": F.cross_entropy(logits.float(), batch.labels.long())}
