r"""Knowledge-distillation baselines of the paper's Tables 1-2, as package options.

* :class:`MLPStudent` -- an MLP with the GNN student's widths (``F -> hidden -> C``, the
  same weight shapes as a 2-layer :class:`~tg_cnn2gnn.nn.GraphStudent`) that plugs into
  :class:`~tg_cnn2gnn.distill.HeteroDistiller` exactly where a
  :class:`~tg_cnn2gnn.nn.CNN2GNN` goes: it has ``graph(x, index)`` (an empty graph),
  ``student(x, edge_index, edge_weight)`` (the graph is ignored), ``forward(x, index)``
  and ``predict(x, mechanism=..., train_x=...)`` (every mechanism name is accepted and
  gives the same, per-sample output: an MLP has no graph to build at test time).
* **KD** (Hinton et al., 2015) is the distiller's own loss,
  :class:`~tg_cnn2gnn.distill.DistillationLoss`: ``HeteroDistiller(teacher, MLPStudent(...))``
  is the "KD" row.
* **DKD** (Decoupled KD, Zhao et al., CVPR 2022): :func:`dkd_loss`, :class:`DKDLoss` and
  :class:`DKDDistiller`, a :class:`~tg_cnn2gnn.distill.HeteroDistiller` whose criterion
  is ``CE + warmup * (alpha * TCKD + beta * NCKD)``.

Example::

    from tg_cnn2gnn.baselines import DKDDistiller, MLPStudent
    mlp = MLPStudent(784, 256, 10)
    kd = HeteroDistiller(teacher, mlp, alpha=1.0, tau=4.0)           # Hinton KD
    dkd = DKDDistiller(teacher, MLPStudent(784, 256, 10), dkd_alpha=1.0, dkd_beta=8.0, tau=4.0)
    dkd.fit(x, y, epochs=20, cache_teacher_logits=True)
"""
from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tg_cnn2gnn.distill import HeteroDistiller
from tg_cnn2gnn.distill.loss import check_alpha, check_tau
from tg_cnn2gnn.functional._checks import check_choice, check_dropout, check_positive_int
from tg_cnn2gnn.nn.model import MECHANISMS
from tg_cnn2gnn.nn.student import layer_sizes

__all__ = ["MLP", "MLPStudent", "dkd_loss", "DKDLoss", "DKDDistiller"]


class MLP(nn.Module):
    r"""``num_layers`` linear layers with ReLU and dropout between them (no activation at the
    end); the widths of a :class:`~tg_cnn2gnn.nn.GraphStudent` with the same arguments.

    ``forward(x [N, F], edge_index=None, edge_weight=None) -> [N, C]``: the graph arguments
    are accepted and ignored, so the module can stand where a GNN student stands.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        sizes = layer_sizes(in_channels, hidden_channels, out_channels, num_layers)
        check_dropout(dropout)
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers = num_layers
        self.dropout = float(dropout)

    def forward(self, x: Tensor, edge_index: Tensor | None = None, edge_weight: Tensor | None = None) -> Tensor:
        x = x.flatten(1) if x.dim() > 2 else x
        for i, lin in enumerate(self.lins):
            if i > 0:
                x = F.relu(x)
                x = F.dropout(x, p=self.dropout, training=self.training)
            x = lin(x)
        return x

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers})")


class MLPStudent(nn.Module):
    r"""The KD baselines' student: an :class:`MLP` with the distiller's model interface.

    It has the widths (and the parameter count) of a ``GraphStudent(in_channels,
    hidden_channels, out_channels, num_layers)``; layer ``l`` is ``Linear`` followed, except
    for the last, by ReLU and dropout -- the GCN student without the graph aggregation.
    To :class:`~tg_cnn2gnn.distill.HeteroDistiller` it looks like a
    :class:`~tg_cnn2gnn.nn.CNN2GNN`:

    * ``graph(x, index)`` returns an empty graph (``edge_index [2, 0]``, ``edge_weight [0]``),
    * ``student(x, edge_index, edge_weight)`` is the MLP (the graph is ignored),
    * ``forward(x, index)`` = ``student(x)`` (``index`` ignored),
    * ``predict(x, mechanism=..., train_x=..., batch_size=...)`` returns the MLP's logits
      in eval mode, ``batch_size`` samples at a time. Every name of
      :data:`~tg_cnn2gnn.nn.MECHANISMS` is accepted (so a distiller's default
      ``val_mechanism="bank"`` / ``test_mechanisms=("bank", "batch")`` work) and all of them
      give the same output: the prediction of a sample depends on that sample only.

    Args:
        in_channels (int): flattened input size ``F``.
        hidden_channels (int): hidden width.
        out_channels (int): number of classes.
        num_layers (int): number of linear layers. (default: :obj:`2`, as the paper's GNN)
        dropout (float): dropout before every layer but the first. (default: :obj:`0.5`)
    """

    mechanisms: tuple[str, ...] = MECHANISMS
    num_train: int | None = None

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.student = MLP(in_channels, hidden_channels, out_channels, num_layers, dropout)

    def graph(self, x: Tensor, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """An empty graph over the batch: ``edge_index [2, 0]`` (long), ``edge_weight [0]``."""
        return (torch.empty(2, 0, dtype=torch.long, device=x.device),
                torch.empty(0, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device))

    def forward(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        """``x [B, F]`` (or images, flattened) -> logits ``[B, C]``; ``index`` is ignored."""
        return self.student(x.flatten(1) if x.dim() > 2 else x)

    @torch.no_grad()
    def predict(self, x: Tensor, *, mechanism: str = "bank", train_x: Tensor | None = None,
                batch_size: int = 100, **kwargs: Any) -> Tensor:
        """Logits ``[T, C]`` for ``x [T, F]`` in eval mode; every mechanism gives the same result
        (``train_x``, ``bank_size``, ``seed`` and other keyword arguments are accepted and unused)."""
        check_choice("mechanism", mechanism, self.mechanisms)
        check_positive_int("batch_size", batch_size)
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        x = x.flatten(1) if x.dim() > 2 else x
        if x.size(1) != self.student.in_channels:
            raise ValueError(f"x has {x.size(1)} features but the MLP expects {self.student.in_channels}")
        was_training = self.training
        self.eval()
        try:
            outs = [self.student(x[a:a + batch_size]) for a in range(0, x.size(0), batch_size)]
            return torch.cat(outs) if outs else x.new_zeros(0, self.student.out_channels)
        finally:
            self.train(was_training)

    def extra_repr(self) -> str:
        return "graph=none"


# --------------------------------------------------------------------------------------- DKD
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

    A drop-in ``criterion`` of :class:`~tg_cnn2gnn.distill.HeteroDistiller`:
    ``forward(student_logits, teacher_logits, labels) -> (loss, parts)`` with ``parts`` =
    detached ``loss``, ``ce``, ``kd`` (the warmed-up, weighted DKD term), ``tckd``, ``nckd``.
    ``alpha``, ``tau`` and ``kd_scale`` are the attributes the distiller reads (``alpha`` is
    the weight of the whole distillation term, 1 in DKD; ``kd_scale`` is always ``"tau2"``).
    ``warmup`` (in ``[0, 1]``) is the linear warm-up factor of the authors' code, set per
    epoch by :class:`DKDDistiller`; mdistiller's CIFAR defaults: ``dkd_alpha=1``,
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

    def forward(self, student_logits: Tensor, teacher_logits: Tensor | None, labels: Tensor
                ) -> tuple[Tensor, dict[str, Tensor]]:
        dtype = torch.promote_types(student_logits.dtype, torch.float32)
        ce = F.cross_entropy(student_logits.to(dtype), labels.long())
        if teacher_logits is None:
            if self.alpha != 0:
                raise ValueError("DKDLoss needs teacher_logits when alpha > 0")
            nan = torch.full((), float("nan"), dtype=dtype, device=student_logits.device)
            loss = self.ce_weight * ce
            return loss, {"loss": loss.detach(), "ce": ce.detach(), "kd": nan, "tckd": nan, "nckd": nan}
        dkd, tckd, nckd = dkd_loss(student_logits, teacher_logits, labels, self.dkd_alpha, self.dkd_beta, self.tau)
        kd = self.alpha * self.warmup * dkd
        loss = self.ce_weight * ce + kd
        return loss, {"loss": loss.detach(), "ce": ce.detach(), "kd": kd.detach(), "tckd": tckd.detach(),
                      "nckd": nckd.detach()}

    def extra_repr(self) -> str:
        return (f"dkd_alpha={self.dkd_alpha}, dkd_beta={self.dkd_beta}, tau={self.tau}, alpha={self.alpha}, "
                f"ce_weight={self.ce_weight}")


class DKDDistiller(HeteroDistiller):
    r"""A :class:`~tg_cnn2gnn.distill.HeteroDistiller` trained with :class:`DKDLoss`.

    Everything else (teacher handling, cached logits, validation, checkpoints, ``predict``,
    ``evaluate``) is the parent's. ``fit(..., warmup_epochs=W)`` ramps the DKD term
    linearly: factor ``min((epoch + 1) / W, 1)`` in epoch ``epoch`` (0-based), as
    mdistiller's ``min(epoch / warmup, 1)`` with 1-based epochs; ``W = 0`` disables it.
    (On ``resume`` the factor restarts from the first resumed epoch's value.)

    Args:
        teacher, model, device, amp, distributed: as for the parent.
        dkd_alpha, dkd_beta, tau: DKD's TCKD weight, NCKD weight and temperature.
        ce_weight: weight of the cross-entropy term.
    """

    def __init__(self, teacher: nn.Module, model: nn.Module, *, dkd_alpha: float = 1.0, dkd_beta: float = 8.0,
                 tau: float = 4.0, ce_weight: float = 1.0, **kwargs: Any) -> None:
        if teacher is None:
            raise ValueError("DKDDistiller needs a teacher")
        super().__init__(teacher, model, alpha=1.0, tau=tau, kd_scale="tau2", **kwargs)
        self.criterion = DKDLoss(dkd_alpha, dkd_beta, tau, alpha=1.0, ce_weight=ce_weight)

    def fit(self, *args: Any, warmup_epochs: int = 0, callbacks: Any = (), resume: bool = False,
            **kwargs: Any) -> dict[str, Any]:
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        crit = self.criterion

        def factor(epoch: int) -> float:
            return 1.0 if warmup_epochs == 0 else min((epoch + 1) / warmup_epochs, 1.0)

        start = 0
        if resume and kwargs.get("out_dir") is not None:
            from pathlib import Path
            ckpt = Path(kwargs["out_dir"]) / "checkpoint.pt"
            if ckpt.is_file():
                try:
                    from tg_cnn2gnn.distill import load_checkpoint
                    start = int(load_checkpoint(ckpt, kind=None)["epoch"]) + 1
                except Exception:  # pragma: no cover - the parent reports a bad checkpoint
                    start = 0
        crit.warmup = factor(start)

        def set_warmup(epoch: int, row: dict[str, Any]) -> None:
            crit.warmup = factor(epoch + 1)

        try:
            return super().fit(*args, callbacks=[set_warmup, *callbacks], resume=resume, **kwargs)
        finally:
            crit.warmup = 1.0

    def extra_repr(self) -> str:
        c = self.criterion
        return f"DKD(dkd_alpha={c.dkd_alpha}, dkd_beta={c.dkd_beta}), tau={c.tau}, device={self.device}"
