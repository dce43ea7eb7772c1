r"""Decoupled knowledge distillation (DKD; Zhao et al., CVPR 2022) into any student."""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tg_cnn2gnn.distill.distillers.base import Distiller, TrainBatch
from tg_cnn2gnn.distill.loss import check_alpha, check_tau


def dkd_loss(student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, alpha: float = 1.0,
             beta: float = 8.0, tau: float = 4.0) -> tuple[Tensor, Tensor, Tensor]:
    r"""Decoupled knowledge distillation (Zhao et al., CVPR 2022, Eq. 1-3).

    With :math:`p = \mathrm{softmax}(z/\tau)` for teacher and student, ``t`` the target class,

    .. math::
        b = (p_t,\ 1 - p_t), \qquad \hat p_{k} = \frac{p_k}{1 - p_t}\ (k \ne t),

        \mathrm{TCKD} = \mathrm{KL}(b^{T} \,\|\, b^{S}), \qquad
        \mathrm{NCKD} = \mathrm{KL}(\hat p^{T} \,\|\, \hat p^{S}),

        \mathrm{DKD} = \tau^2 \cdot \frac{1}{B}\sum_i \big(\alpha\,\mathrm{TCKD}_i + \beta\,\mathrm{NCKD}_i\big),

    the :math:`\tau^2` factor and batch mean as in the authors' code (mdistiller).
    :math:`\hat p` is computed as a softmax over the non-target logits (numerically the
    same as the ratio, without dividing by a vanishing :math:`1 - p_t`).

    Args:
        student_logits: ``[B, C]``.
        teacher_logits: ``[B, C]`` (no gradient flows into them).
        labels: ``[B]`` target classes.
        alpha: TCKD weight. beta: NCKD weight. tau: temperature.

    Returns:
        ``(dkd, tckd, nckd)``: the weighted loss and its two parts (each including
        :math:`\tau^2`, not the weights).
    """
    tau = check_tau(tau)
    if student_logits.dim() != 2 or teacher_logits.shape != student_logits.shape:
        raise ValueError(f"student_logits and teacher_logits must both be [B, C], got "
                         f"{tuple(student_logits.shape)} and {tuple(teacher_logits.shape)}")
    if labels.dim() != 1 or labels.numel() != student_logits.size(0):
        raise ValueError(f"labels must be [B] with B={student_logits.size(0)}, got {tuple(labels.shape)}")
    if student_logits.size(1) < 2:
        raise ValueError("DKD needs at least 2 classes")
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    zs = student_logits.to(dtype) / tau
    zt = teacher_logits.detach().to(dtype) / tau
    gt = F.one_hot(labels.long(), zs.size(1)).bool()
    # binary (target, non-target) distributions, in log space: log p_t and log(1 - p_t)
    ls, lt = F.log_softmax(zs, 1), F.log_softmax(zt, 1)
    ls_t = ls.masked_select(gt)
    lt_t = lt.masked_select(gt)
    ls_o = torch.logsumexp(ls.masked_fill(gt, -math.inf), 1)
    lt_o = torch.logsumexp(lt.masked_fill(gt, -math.inf), 1)
    log_bs = torch.stack([ls_t, ls_o], 1)
    log_bt = torch.stack([lt_t, lt_o], 1)
    tckd = (log_bt.exp() * (log_bt - log_bs)).sum(1).mean()
    # non-target distributions: softmax over the non-target logits
    ls_n = F.log_softmax(zs.masked_fill(gt, -math.inf), 1)
    lt_n = F.log_softmax(zt.masked_fill(gt, -math.inf), 1)
    pt_n = lt_n.exp()
    nckd = (pt_n * (lt_n - ls_n)).masked_fill(gt, 0.0).sum(1).mean()
    scale = tau * tau
    tckd, nckd = tckd * scale, nckd * scale
    return alpha * tckd + beta * nckd, tckd, nckd


class DKDLoss(nn.Module):
    r"""The DKD student objective: ``ce_weight * CE + alpha * warmup * (dkd_alpha * TCKD + dkd_beta * NCKD)``.

    The criterion of :class:`DKDDistiller`:
    ``forward(student_logits, teacher_logits, labels) -> (loss, parts)`` with ``parts`` =
    detached ``loss``, ``ce`` (weighted), ``kd`` (the warmed-up, weighted DKD term), ``tckd``, ``nckd``.
    ``alpha``, ``tau`` and ``kd_scale`` are the attributes the distiller reads (``alpha`` is
    the weight of the whole distillation term, 1 in DKD; ``kd_scale`` is always ``"tau2"``).
    ``warmup`` (in ``[0, 1]``) is the linear warm-up factor of the authors' code, set per
    epoch by :class:`DKDDistiller` (:meth:`DKDDistiller.on_epoch_start`); mdistiller's CIFAR defaults: ``dkd_alpha=1``,
    ``dkd_beta=8``, ``tau=4``, 20 warm-up epochs.
    """

    kd_scale = "tau2"

    def __init__(self, dkd_alpha: float = 1.0, dkd_beta: float = 8.0, tau: float = 4.0, *, alpha: float = 1.0,
                 ce_weight: float = 1.0) -> None:
        super().__init__()
        self.dkd_alpha = check_alpha(dkd_alpha)
        self.dkd_beta = check_alpha(dkd_beta)
        self.tau = check_tau(tau)
        self.alpha = check_alpha(alpha)
        self.ce_weight = check_alpha(ce_weight)
        self.warmup = 1.0

    def terms(self, student_logits: Tensor, teacher_logits: Tensor | None, labels: Tensor
              ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """``(terms, diagnostics)``: weighted ``{"ce": ce_weight * CE, "kd": alpha * warmup * DKD}``
        (``"kd"`` absent without teacher logits) whose sum is the loss, and detached ``tckd``, ``nckd``."""
        dtype = torch.promote_types(student_logits.dtype, torch.float32)
        ce = F.cross_entropy(student_logits.to(dtype), labels.long())
        if teacher_logits is None:
            if self.alpha != 0:
                raise ValueError("DKDLoss needs teacher_logits when alpha > 0")
            nan = torch.full((), float("nan"), dtype=dtype, device=student_logits.device)
            return {"ce": self.ce_weight * ce}, {"kd": nan, "tckd": nan, "nckd": nan}
        dkd, tckd, nckd = dkd_loss(student_logits, teacher_logits, labels, self.dkd_alpha, self.dkd_beta, self.tau)
        return ({"ce": self.ce_weight * ce, "kd": self.alpha * self.warmup * dkd},
                {"tckd": tckd.detach(), "nckd": nckd.detach()})

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None, labels: Tensor
                ) -> tuple[Tensor, dict[str, Tensor]]:
        terms, diag = self.terms(student_logits, teacher_logits, labels)
        loss = terms["ce"] if "kd" not in terms else terms["ce"] + terms["kd"]
        parts = {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}, **diag}
        return loss, parts

    def extra_repr(self) -> str:
        return (f"dkd_alpha={self.dkd_alpha}, dkd_beta={self.dkd_beta}, tau={self.tau}, alpha={self.alpha}, "
                f"ce_weight={self.ce_weight}")


class DKDDistiller(Distiller):
    r"""``ce_weight * CE + warmup(epoch) * (alpha * TCKD + beta * NCKD)`` (:class:`DKDLoss`).

    The DKD term is ramped up linearly over the first ``warmup_epochs`` epochs: factor
    ``min((epoch + 1) / warmup_epochs, 1)`` in epoch ``epoch`` (0-based; mdistiller's
    ``min(epoch / warmup, 1)`` with 1-based epochs), ``warmup_epochs=0`` disables the ramp.
    The factor depends on the epoch only, so a resumed run uses the same values.
    Terms: ``"ce"``, ``"kd"``; diagnostics ``"tckd"``, ``"nckd"`` (each with :math:`\tau^2`).

    Args:
        teacher: the teacher (required).
        student: any module on node features ``[B, F]`` (e.g. the MLP) or a CNN2GNN-style model.
        alpha, beta, tau: DKD's TCKD weight, NCKD weight and temperature (mdistiller's CIFAR
            defaults 1, 8, 4).
        warmup_epochs: length of the linear warm-up (default 20, as mdistiller).
        ce_weight: weight of the cross-entropy term.
    """

    name = "dkd"

    def __init__(self, teacher: nn.Module, student: nn.Module, *, alpha: float = 1.0, beta: float = 8.0,
                 tau: float = 4.0, warmup_epochs: int = 20, ce_weight: float = 1.0) -> None:
        if teacher is None:
            raise ValueError("DKDDistiller needs a teacher")
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        criterion = DKDLoss(alpha, beta, tau, alpha=1.0, ce_weight=ce_weight)
        super().__init__(teacher, student)
        self.criterion = criterion
        self.warmup_epochs = warmup_epochs

    @property
    def alpha(self) -> float:
        """Weight of the whole distillation term (1, as in DKD)."""
        return self.criterion.alpha

    @property
    def tau(self) -> float:
        return self.criterion.tau

    def warmup(self, epoch: int) -> float:
        """The warm-up factor of epoch ``epoch`` (0-based)."""
        return 1.0 if self.warmup_epochs == 0 else min((epoch + 1) / self.warmup_epochs, 1.0)

    def hparams(self) -> dict[str, Any]:
        c = self.criterion
        return {"distiller": self.name, "dkd_alpha": c.dkd_alpha, "dkd_beta": c.dkd_beta, "tau": c.tau,
                "warmup_epochs": self.warmup_epochs, "ce_weight": c.ce_weight}

    def on_epoch_start(self, epoch: int, train_x: Tensor, train_y: Tensor) -> None:
        self.criterion.warmup = self.warmup(epoch)

    def forward_train(self, batch: TrainBatch, epoch: int) -> tuple[Tensor, dict[str, Tensor]]:
        self.criterion.warmup = self.warmup(epoch)
        t_logits = self.batch_teacher_logits(batch)
        logits = self.student_logits(batch)
        terms, self.metrics = self.criterion.terms(logits.float(), t_logits, batch.labels)
        return logits, terms

    def extra_repr(self) -> str:
        c = self.criterion
        return f"dkd_alpha={c.dkd_alpha}, dkd_beta={c.dkd_beta}, tau={c.tau}, warmup_epochs={self.warmup_epochs}"
