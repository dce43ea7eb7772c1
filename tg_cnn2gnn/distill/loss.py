r"""The heterogeneous distillation objective (paper Eq. 6 and 7).

.. math::
    \mathcal{L} = \frac{1}{|\mathcal{B}|}\sum_{i \in \mathcal{B}}
        \mathrm{CE}\big(z^{s}_i, y_i\big)
      + \alpha \cdot c \cdot \frac{1}{|\mathcal{B}|}\sum_{i \in \mathcal{B}}
        \mathrm{KL}\big(q(z^{t}_i, \tau) \,\|\, q(z^{s}_i, \tau)\big),
    \qquad q(z, \tau)_k = \frac{\exp(z_k / \tau)}{\sum_j \exp(z_j / \tau)},

with :math:`z^{s}` the GNN student's logits, :math:`z^{t}` the CNN teacher's
logits and :math:`c = \tau^2` (``kd_scale="tau2"``, Hinton et al.'s convention,
which keeps the soft-target gradients on the scale of the hard-target ones) or
:math:`c = 1` (``kd_scale="none"``, Eq. 7 read literally).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tg_cnn2gnn.functional._checks import check_choice

#: Accepted values of ``kd_scale``.
KD_SCALES: tuple[str, ...] = ("tau2", "none")


def check_alpha(alpha: object) -> float:
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not math.isfinite(alpha) \
            or alpha < 0:
        raise ValueError(f"alpha must be a finite number >= 0, got {alpha!r}")
    return float(alpha)


def check_tau(tau: object) -> float:
    if isinstance(tau, bool) or not isinstance(tau, (int, float)) or not math.isfinite(tau) or tau <= 0:
        raise ValueError(f"tau must be a finite number > 0, got {tau!r}")
    return float(tau)


def kd_divergence(student_logits: Tensor, teacher_logits: Tensor, tau: float,
                  kd_scale: str = "tau2") -> Tensor:
    r""":math:`c \cdot \frac{1}{B}\sum_i \mathrm{KL}(q(z^t_i,\tau)\,\|\,q(z^s_i,\tau))`
    (``batchmean``), with :math:`c = \tau^2` for ``kd_scale="tau2"`` and ``1`` for ``"none"``.

    Args:
        student_logits: ``[B, C]``.
        teacher_logits: ``[B, C]`` (treated as a constant: no gradient flows into it).
        tau: temperature > 0.
        kd_scale: ``"tau2"`` or ``"none"``.

    Returns:
        a scalar tensor (float32 or the logits' dtype if wider).
    """
    tau = check_tau(tau)
    check_choice("kd_scale", kd_scale, KD_SCALES)
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    log_q_s = F.log_softmax(student_logits.to(dtype) / tau, dim=-1)
    log_q_t = F.log_softmax(teacher_logits.detach().to(dtype) / tau, dim=-1)
    kd = F.kl_div(log_q_s, log_q_t, reduction="batchmean", log_target=True)
    if kd_scale == "tau2":
        kd = kd * (tau * tau)
    return kd


def distillation_loss(student_logits: Tensor, teacher_logits: Tensor | None, labels: Tensor,
                      alpha: float = 1.0, tau: float = 4.0, kd_scale: str = "tau2"
                      ) -> tuple[Tensor, dict[str, Tensor]]:
    r"""The CNN2GNN student objective (paper Eq. 6) for one mini-batch.

    ``loss = mean_i CE(student_i, y_i) + alpha * c * KL(q(teacher/tau) || q(student/tau))``,
    KL averaged over the batch (``batchmean``), ``c = tau^2`` (``kd_scale="tau2"``)
    or ``1`` (``"none"``). With ``alpha = 0`` the loss *is* the cross-entropy (the KD
    term is then only reported, or ``NaN`` when ``teacher_logits`` is ``None``).

    Args:
        student_logits: ``[B, C]`` logits of the GNN student.
        teacher_logits: ``[B, C]`` logits of the CNN teacher (no gradient), or ``None``
            when ``alpha == 0``.
        labels: ``[B]`` integer class labels in ``[0, C)``.
        alpha: weight of the KD term, ``>= 0`` (paper: 1).
        tau: temperature ``> 0``.
        kd_scale: ``"tau2"`` or ``"none"``.

    Returns:
        ``(loss, parts)``: the scalar loss (differentiable w.r.t. ``student_logits``)
        and detached scalars ``parts = {"loss", "ce", "kd"}``, where ``kd`` includes the
        ``c`` factor but not ``alpha``.
    """
    alpha = check_alpha(alpha)
    tau = check_tau(tau)
    check_choice("kd_scale", kd_scale, KD_SCALES)
    if not isinstance(student_logits, Tensor) or student_logits.dim() != 2:
        raise ValueError("student_logits must be a 2-D tensor [B, C], got "
                         f"{tuple(student_logits.shape) if isinstance(student_logits, Tensor) else type(student_logits).__name__}")
    if not isinstance(labels, Tensor) or labels.dim() != 1 or labels.numel() != student_logits.size(0):
        raise ValueError(f"labels must be a 1-D tensor with {student_logits.size(0)} entries (one per row "
                         f"of student_logits), got "
                         f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    if labels.is_floating_point() or labels.dtype == torch.bool:
        raise TypeError(f"labels must be an integer tensor, got dtype {labels.dtype}")
    if teacher_logits is None:
        if alpha != 0.0:
            raise ValueError(f"teacher_logits is None but alpha={alpha}; teacher logits are needed when alpha > 0")
    elif not isinstance(teacher_logits, Tensor) or teacher_logits.shape != student_logits.shape:
        raise ValueError(f"teacher_logits must have the shape of student_logits {tuple(student_logits.shape)}, got "
                         f"{tuple(teacher_logits.shape) if isinstance(teacher_logits, Tensor) else type(teacher_logits).__name__}")

    terms, kd = distillation_terms(student_logits, teacher_logits, labels, alpha, tau, kd_scale)
    loss = terms["ce"] if "kd" not in terms else terms["ce"] + terms["kd"]
    return loss, {"loss": loss.detach(), "ce": terms["ce"].detach(), "kd": kd.detach()}


def distillation_terms(student_logits: Tensor, teacher_logits: Tensor | None, labels: Tensor,
                       alpha: float, tau: float, kd_scale: str) -> tuple[dict[str, Tensor], Tensor]:
    r"""The weighted terms of Eq. 6 (unchecked arguments; :func:`distillation_loss` checks them).

    Returns:
        ``(terms, kd)``: ``terms = {"ce": CE, "kd": alpha * c * KL}`` (differentiable; ``"kd"``
        only when ``alpha > 0``; their sum is the loss) and the unweighted ``kd = c * KL``
        (computed without gradient when ``alpha == 0``; ``NaN`` without teacher logits).
    """
    dtype = torch.promote_types(student_logits.dtype, torch.float32)
    ce = F.cross_entropy(student_logits.to(dtype), labels.long())
    if teacher_logits is None:
        return {"ce": ce}, torch.full((), float("nan"), dtype=dtype, device=student_logits.device)
    if alpha == 0.0:
        with torch.no_grad():
            return {"ce": ce}, kd_divergence(student_logits, teacher_logits, tau, kd_scale)
    kd = kd_divergence(student_logits, teacher_logits, tau, kd_scale)
    return {"ce": ce, "kd": alpha * kd}, kd


class DistillationLoss(nn.Module):
    r"""Module form of :func:`distillation_loss` (Eq. 6) with fixed ``alpha``, ``tau``, ``kd_scale``.

    ``forward(student_logits [B, C], teacher_logits [B, C] | None, labels [B]) -> (loss, parts)``.
    """

    def __init__(self, alpha: float = 1.0, tau: float = 4.0, kd_scale: str = "tau2") -> None:
        super().__init__()
        self.alpha = check_alpha(alpha)
        self.tau = check_tau(tau)
        self.kd_scale = check_choice("kd_scale", kd_scale, KD_SCALES)

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None, labels: Tensor
                ) -> tuple[Tensor, dict[str, Tensor]]:
        return distillation_loss(student_logits, teacher_logits, labels, self.alpha, self.tau, self.kd_scale)

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, tau={self.tau}, kd_scale={self.kd_scale!r}"


def relation_loss(edge_index: Tensor, edge_weight: Tensor, teacher_logits: Tensor, tau: float = 1.0) -> Tensor:
    r"""Teacher-relation term for the learned graph (ours, beyond the paper; issue 7).

    The paper trains the graph head only through the student's loss. This term tells the
    head directly which samples are alike according to the teacher: with
    :math:`q_i = \mathrm{softmax}(z^t_i / \tau)`,

    .. math::
        \mathcal{L}_{rel} = \frac{1}{B} \sum_{(j \to i) \in E} A_{ij}\,
            \big(1 - \langle q_i, q_j \rangle\big),

    the edge-weighted rate at which a node's neighbours are, in the teacher's eyes, of
    another class. Rows of Eq. 3 sum to 1, so :math:`\mathcal{L}_{rel} \in [0, 1]` for a
    symmetrised graph without self-loops. The gradient reaches the graph head through
    ``edge_weight``; the teacher is detached.

    Args:
        edge_index: ``[2, E]`` batch graph (edge ``j -> i``).
        edge_weight: ``[E]`` its weights :math:`A_{ij}` (differentiable).
        teacher_logits: ``[B, C]`` teacher logits of the batch's nodes.
        tau: temperature of the teacher's probabilities, ``> 0``. (default: :obj:`1.0`)

    Returns:
        A scalar tensor.
    """
    tau = check_tau(tau)
    if not isinstance(teacher_logits, Tensor) or teacher_logits.dim() != 2:
        raise ValueError("teacher_logits must be a 2-D tensor [B, C], got "
                         f"{tuple(teacher_logits.shape) if isinstance(teacher_logits, Tensor) else type(teacher_logits).__name__}")
    if edge_index.dim() != 2 or edge_index.size(0) != 2 or edge_weight.shape != (edge_index.size(1),):
        raise ValueError(f"edge_index must be [2, E] and edge_weight [E], got {tuple(edge_index.shape)} "
                         f"and {tuple(edge_weight.shape)}")
    q = F.softmax(teacher_logits.detach().float() / tau, dim=-1)
    src, dst = edge_index[0], edge_index[1]
    alike = (q[src] * q[dst]).sum(-1)
    return (edge_weight.float() * (1.0 - alike)).sum() / teacher_logits.size(0)
