r"""The distiller base class (in the spirit of mdistiller's ``distillers/_base.py``).

A :class:`Distiller` owns a teacher and a student and knows one thing: the loss of a
training mini-batch. It owns no data, no optimiser, no device and no process group
(:class:`~tg_cnn2gnn.distill.Trainer` does); constructing one has no side effect beyond
freezing the teacher it is given.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from tg_cnn2gnn.distill.batch import DistillData
from tg_cnn2gnn.distill.teacher import freeze

#: Mechanism names accepted for students without their own (every name gives the same output).
PLAIN_MECHANISMS: tuple[str, ...] = ("bank", "batch", "one_by_one", "direct")


@dataclass
class TrainBatch:
    r"""One training mini-batch as the trainer hands it to :meth:`Distiller.forward_train`.

    Attributes:
        images: ``[B, C, H, W]`` the teacher's input (after any augmentation).
        labels: ``[B]`` class labels.
        index: ``[B]`` training-sample positions ``0 .. n_train-1`` (anchor head neurons).
        features: ``[B, F]`` node features for the student instead of ``images.flatten(1)``.
        teacher_logits: ``[B, C]`` cached teacher logits, or ``None`` (computed when needed).
    """

    images: Tensor
    labels: Tensor
    index: Tensor
    features: Tensor | None = None
    teacher_logits: Tensor | None = None

    @property
    def nodes(self) -> Tensor:
        """``[B, F]`` what the student reads: ``features`` or the flattened images."""
        return self.features if self.features is not None else self.images.flatten(1)


class Distiller(nn.Module):
    r"""Teacher + student + the loss of one mini-batch.

    * the teacher (any ``nn.Module`` images ``[B, C, H, W]`` -> logits ``[B, C]``, or ``None``)
      is frozen: ``requires_grad=False``, eval mode, kept in eval mode by :meth:`train`;
    * :meth:`learnable_parameters` are the student's trainable parameters only;
    * :meth:`forward_train` returns the student's logits and the *weighted* loss terms,
      whose sum is the loss; :attr:`metrics` holds detached diagnostics of the last call
      that are logged but are not part of the loss (e.g. an unweighted KD divergence);
    * :meth:`on_epoch_start` is called by the trainer before each epoch (schedules, graphs);
    * :meth:`predict` delegates to the student (``student.predict`` when it has one).

    Args:
        teacher: the frozen teacher, or ``None`` (objectives that need none).
        student: the trained model.
    """

    #: The registry name (set by subclasses).
    name: str = "base"

    def __init__(self, teacher: nn.Module | None, student: nn.Module) -> None:
        super().__init__()
        if teacher is not None and not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module or None, got {type(teacher).__name__}")
        if not isinstance(student, nn.Module):
            raise TypeError(f"student must be an nn.Module, got {type(student).__name__}")
        self.teacher = freeze(teacher) if teacher is not None else None
        self.student = student
        self.metrics: dict[str, Tensor] = {}

    # ------------------------------------------------------------------ properties
    @property
    def uses_teacher(self) -> bool:
        """Whether a training step needs the teacher's logits."""
        return self.teacher is not None

    @property
    def mechanisms(self) -> tuple[str, ...]:
        """Inference mechanisms of the student (all names, equivalent, for a plain module)."""
        return tuple(getattr(self.student, "mechanisms", PLAIN_MECHANISMS))

    @property
    def num_classes(self) -> int | None:
        """Number of classes ``C`` read from the student (``out_channels``), when it says."""
        for m in (self.student, getattr(self.student, "student", None)):
            c = getattr(m, "out_channels", None)
            if isinstance(c, int):
                return c
        return None

    def hparams(self) -> dict[str, Any]:
        """Settings that change the loss: stored in checkpoints (a resume must match) and summaries."""
        return {"distiller": self.name}

    def train(self, mode: bool = True) -> "Distiller":
        """Set the student's mode; the teacher always stays in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def learnable_parameters(self) -> list[nn.Parameter]:
        """The parameters an optimiser sees: the student's, never the teacher's."""
        return [p for p in self.student.parameters() if p.requires_grad]

    # ------------------------------------------------------------------ training
    @torch.no_grad()
    def teacher_logits(self, images: Tensor) -> Tensor:
        """The frozen teacher's float32 logits ``[B, C]`` for ``images [B, C, H, W]`` (eval, no grad;
        under the trainer's autocast when mixed precision is on)."""
        if self.teacher is None:
            raise ValueError(f"this {type(self).__name__} has no teacher")
        self.teacher.eval()
        return self.teacher(images).float()

    def batch_teacher_logits(self, batch: TrainBatch) -> Tensor | None:
        """``batch.teacher_logits`` (cached), else the teacher's when :attr:`uses_teacher`, else ``None``."""
        if batch.teacher_logits is not None:
            return batch.teacher_logits
        return self.teacher_logits(batch.images) if self.uses_teacher else None

    def student_logits(self, batch: TrainBatch) -> Tensor:
        """Logits ``[B, C]`` of the student on the batch: a CNN2GNN-style model (``graph(x, index)``
        and ``student(x, edge_index, edge_weight)``) runs on its mini-batch graph
        (:meth:`make_batch`, :meth:`student_forward`); any other module on the node features ``[B, F]``."""
        if hasattr(self.student, "graph") and hasattr(self.student, "student"):
            return self.student_forward(self.make_batch(batch.nodes, batch.labels, batch.index))
        return self.student(batch.nodes)

    def make_batch(self, x: Tensor, y: Tensor, index: Tensor, teacher_logits: Tensor | None = None) -> DistillData:
        r"""The mini-batch graph of a CNN2GNN-style model: node features ``x [B, F]``, labels
        ``y [B]``, training indices ``index [B]``, ``teacher_logits [B, C]`` and the model's
        learned graph ``edge_index [2, E]``, ``edge_weight [E]`` (computed in float32, differentiable)."""
        x = x.flatten(1) if x.dim() > 2 else x
        with torch.autocast(x.device.type, enabled=False):
            edge_index, edge_weight = self.student.graph(x.float(), index)
        data = DistillData(x=x, y=y, index=index, edge_index=edge_index, edge_weight=edge_weight)
        if teacher_logits is not None:
            data.teacher_logits = teacher_logits
        return data

    def student_forward(self, data: DistillData) -> Tensor:
        """Logits ``[B, C]`` of a CNN2GNN-style model's GNN on the mini-batch graph (override to swap it)."""
        return self.student.student(data.x, data.edge_index, data.edge_weight)

    def forward_train(self, batch: TrainBatch, epoch: int) -> tuple[Tensor, dict[str, Tensor]]:
        """``(logits [B, C], terms)``: the weighted loss terms, whose sum is the loss."""
        raise NotImplementedError

    def forward(self, batch: TrainBatch, epoch: int = 0) -> tuple[Tensor, dict[str, Tensor]]:
        return self.forward_train(batch, epoch)

    def on_epoch_start(self, epoch: int, train_x: Tensor, train_y: Tensor) -> None:
        """Hook before epoch ``epoch`` (0-based) with the training set ``train_x [N, F]``, ``train_y [N]``."""

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(self, x: Tensor, *, mechanism: str = "bank", train_x: Tensor | None = None,
                features: Tensor | None = None, batch_size: int = 100, bank_size: int = 100, seed: int = 0,
                **kwargs: Any) -> Tensor:
        """Student logits ``[T, C]`` for ``x [T, ...]`` (or node ``features [T, F]``), on the
        student's device. ``student.predict(nodes, mechanism=..., train_x=..., batch_size=...,
        bank_size=..., seed=..., **kwargs)`` when the student has it; otherwise the student's
        forward in eval mode, ``batch_size`` rows at a time (every mechanism the same)."""
        nodes = features if features is not None else x.flatten(1)
        dev = next((p.device for p in self.student.parameters()), nodes.device)
        if hasattr(self.student, "predict"):
            return self.student.predict(nodes.to(dev), mechanism=mechanism,
                                        train_x=None if train_x is None else train_x.to(dev),
                                        batch_size=batch_size, bank_size=bank_size, seed=seed, **kwargs)
        if mechanism not in self.mechanisms:
            raise ValueError(f"mechanism={mechanism!r} is not supported; allowed values: "
                             f"{', '.join(map(repr, self.mechanisms))}")
        was_training = self.student.training
        self.student.eval()
        try:
            outs = [self.student(nodes[a:a + batch_size].to(dev)) for a in range(0, nodes.size(0), batch_size)]
            return torch.cat(outs)
        finally:
            self.student.train(was_training)
