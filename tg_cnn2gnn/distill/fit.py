r"""Back-compat: ``HeteroDistiller(teacher, model, ...).fit(x, y, ...)``, the package's first API.

A thin layer over :class:`~tg_cnn2gnn.distill.CNN2GNNDistiller` and
:class:`~tg_cnn2gnn.distill.Trainer`, kept so that existing scripts run unchanged and bit
for bit: the constructor takes the device and joins the process group (as before),
``fit`` carves ``val_fraction`` of the training data for validation (stratified,
``split_seed``) when no ``val`` is given and writes ``out_dir/summary.json``. New code
should build the distiller with :func:`~tg_cnn2gnn.distill.build_distiller`, pass its own
validation split to a :class:`~tg_cnn2gnn.distill.Trainer` and write results itself.
"""
from __future__ import annotations

import functools
import operator
import os
from pathlib import Path
from typing import Any, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from tg_cnn2gnn.distill import _checks as C
from tg_cnn2gnn.distill._data import DatasetSource, as_eval_data, materialize
from tg_cnn2gnn.distill._engine import warn_cpu_amp
from tg_cnn2gnn.distill._evaluate import accuracy
from tg_cnn2gnn.distill.ddp import setup_distributed
from tg_cnn2gnn.distill.distillers.base import TrainBatch
from tg_cnn2gnn.distill.distillers.cnn2gnn import CNN2GNNDistiller
from tg_cnn2gnn.distill.distillers.dkd import DKDDistiller
from tg_cnn2gnn.distill.metrics import write_json
from tg_cnn2gnn.distill.teacher import freeze, load_teacher, pretrain_teacher
from tg_cnn2gnn.distill.trainer import OPTIMIZERS, Trainer


def _split(labels: Tensor, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    from tg_cnn2gnn.data import train_val_split
    return train_val_split(labels, val_fraction, seed=seed)


class LegacyFit:
    """The old distiller surface (device, ``fit``, ``evaluate``, teacher helpers) for any Distiller."""

    def _place(self, device: str | torch.device | None, amp: bool, distributed: bool | str) -> None:
        self.ctx = setup_distributed(distributed, device)
        self._distributed = distributed
        self.amp = bool(amp)
        warn_cpu_amp(self.amp, self.ctx.device)
        self.to(self.ctx.device)
        self.train_features: Tensor | None = None   # set by fit: [n_train, F] (row k = training id k)
        self.teacher_cache: Tensor | None = None

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    def forward(self, images: Tensor, labels: Tensor, index: Tensor, teacher_logits: Tensor | None = None,
                features: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One step's ``(loss, parts, logits)``; ``parts`` = detached ``loss``, the terms and the diagnostics."""
        logits, terms = self.forward_train(TrainBatch(images, labels, index, features, teacher_logits), 0)
        loss = functools.reduce(operator.add, terms.values())
        return loss, {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}, **self.metrics}, logits

    def pretrain_teacher(self, x: Tensor | Dataset, y: Tensor | None = None, **kwargs: Any) -> dict[str, Any]:
        """:func:`tg_cnn2gnn.distill.pretrain_teacher` on this distiller's teacher (frozen again after)."""
        if self.teacher is None:
            raise ValueError("this distiller has no teacher")
        kwargs.setdefault("device", self.device)
        kwargs.setdefault("amp", self.amp)
        try:
            return pretrain_teacher(self.teacher, x, y, **kwargs)
        finally:
            freeze(self.teacher)

    def load_teacher(self, path: str | os.PathLike, *, strict: bool = True) -> "LegacyFit":
        """Load teacher weights (``weights_only=True``) and freeze."""
        if self.teacher is None:
            raise ValueError("this distiller has no teacher")
        load_teacher(self.teacher, path, strict=strict)
        freeze(self.teacher.to(self.device))
        self.teacher_cache = None
        return self

    @staticmethod
    def num_train_for(labels: Tensor | Dataset, val_fraction: float | None = 0.1, split_seed: int = 0) -> int:
        """How many training samples :meth:`fit` keeps after carving ``val_fraction`` for validation."""
        from tg_cnn2gnn.data import get_labels
        y = get_labels(labels)
        return int(y.numel()) if not val_fraction else int(_split(y, val_fraction, split_seed)[0].numel())

    def fit(self, x: Tensor | Dataset, y: Tensor | None = None, *, val: Any = None,
            val_fraction: float | None = 0.1, split_seed: int = 0, test: Any = None,
            test_mechanisms: str | Sequence[str] = ("bank", "batch"), features: Tensor | None = None,
            out_dir: str | os.PathLike | None = None, eval_dataset: Dataset | None = None,
            **trainer_kwargs: Any) -> dict[str, Any]:
        """The old ``fit``: :class:`~tg_cnn2gnn.distill.Trainer` arguments plus ``val_fraction``,
        ``split_seed`` (carving) and ``eval_dataset``; writes ``out_dir/summary.json``."""
        if val_fraction is not None and val_fraction != 0:
            C.check_float("val_fraction", val_fraction, inclusive=False)
            if val_fraction >= 1:
                raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        trainer = Trainer(self, out_dir=out_dir, device=self.device, amp=self.amp, distributed=self._distributed,
                          **trainer_kwargs)     # all argument checks before any data work
        carve = val is None and bool(val_fraction)
        val_data = as_eval_data("val", val) if val is not None else None
        if isinstance(x, Dataset):
            if y is not None or features is not None or trainer.augment is not None:
                raise ValueError("with Dataset input, y, features and augment must be None (labels and "
                                 "augmentation come from the dataset)")
            from tg_cnn2gnn.data import get_labels
            labels = get_labels(eval_dataset if eval_dataset is not None else x)
            tr = torch.arange(labels.numel())
            if carve:
                tr, va = _split(labels, val_fraction, split_seed)
                val_data = materialize(eval_dataset if eval_dataset is not None else x, va,
                                       trainer.num_workers) + (None,)
            train: Any = DatasetSource(x, tr, trainer.num_workers, eval_dataset)
        else:
            x = C.check_images("x", x)
            y = C.check_labels("y", y, x.size(0))
            features = C.check_features("features", features, x.size(0))
            if carve:
                tr, va = _split(y, val_fraction, split_seed)
                val_data = (x[va], y[va], None if features is None else features[va])
                x, y = x[tr], y[tr]
                features = None if features is None else features[tr]
            train = (x, y)
        n_train = len(train) if isinstance(train, DatasetSource) else int(y.numel())
        num_train = getattr(self.student, "num_train", None)
        if num_train is not None and num_train != n_train and not hasattr(self.student, "set_num_train"):
            raise ValueError(f"the model's anchor head has num_train={num_train} outputs but the training part "
                             f"has {n_train} samples"
                             + (f" ({n_train + len(val_data[1])} minus {len(val_data[1])} carved for validation "
                                f"with val_fraction={val_fraction}, split_seed={split_seed})" if carve else "")
                             + f"; build the head with num_train={n_train} (HeteroDistiller.num_train_for)")
        trainer.fingerprint = {"val_fraction": val_fraction if carve else None, "split_seed": split_seed}
        summary = trainer.fit(train, val_data, test, features=features, test_mechanisms=test_mechanisms)
        self.train_features = trainer.train_features.cpu() if trainer.train_features is not None else None
        self.teacher_cache = trainer.teacher_cache
        if out_dir is not None and self.ctx.is_main:
            write_json(Path(out_dir) / "summary.json", summary)
        return summary

    @torch.no_grad()
    def predict(self, x: Tensor, *, mechanism: str = "bank", train_x: Tensor | None = None, **kwargs: Any) -> Tensor:
        """As :meth:`Distiller.predict`; ``train_x`` defaults to the training features of the last :meth:`fit`."""
        train_x = self.train_features if train_x is None else train_x
        if train_x is None and mechanism != "direct" and hasattr(self.student, "graph"):
            raise ValueError(f"mechanism={mechanism!r} needs train_x, the training features [n_train, F] "
                             "(they are remembered after fit())")
        return super().predict(x, mechanism=mechanism, train_x=train_x, **kwargs)  # type: ignore[misc]

    def evaluate(self, x: Tensor | Dataset, y: Tensor | None = None, *, mechanism: str | Sequence[str] = "bank",
                 train_x: Tensor | None = None, features: Tensor | None = None, batch_size: int = 100,
                 bank_size: int = 100, seed: int = 0) -> dict[str, float]:
        """``{mechanism: test accuracy}`` of the student for images ``x`` (with ``y``) or a Dataset."""
        mechs = (mechanism,) if isinstance(mechanism, str) else tuple(mechanism)
        for m in mechs:
            C.check_choice("mechanism", m, self.mechanisms)
        data = as_eval_data("x", x) if isinstance(x, Dataset) else as_eval_data("(x, y)", (x, y))
        if features is not None:
            data = (data[0], data[1], C.check_features("features", features, data[0].size(0)))
        train_x = train_x if train_x is not None else self.train_features
        return {m: accuracy(self, data, m, train_x, batch_size, bank_size, seed) for m in mechs}


class HeteroDistiller(LegacyFit, CNN2GNNDistiller):
    r"""The CNN2GNN distiller with the old constructor (``device``, ``amp``, ``distributed``)
    and ``fit(x, y, ...)``; see :class:`~tg_cnn2gnn.distill.CNN2GNNDistiller` for the objective."""

    def __init__(self, teacher: nn.Module | None, model: nn.Module, *, alpha: float = 1.0, tau: float = 4.0,
                 kd_scale: str = "tau2", device: str | torch.device | None = None, amp: bool = False,
                 distributed: bool | str = "auto", relation_weight: float = 0.0, relation_tau: float = 1.0,
                 graph_builder: Any = None) -> None:
        CNN2GNNDistiller.__init__(self, teacher, model, alpha=alpha, tau=tau, kd_scale=kd_scale,
                                  relation_weight=relation_weight, relation_tau=relation_tau,
                                  graph_builder=graph_builder)
        self._place(device, amp, distributed)

    def extra_repr(self) -> str:
        return f"{CNN2GNNDistiller.extra_repr(self)}, device={self.device}"


class LegacyDKDDistiller(LegacyFit, DKDDistiller):
    """DKD with the old surface: ``(teacher, model, dkd_alpha=, dkd_beta=, tau=, ce_weight=, device=)``
    and ``fit(..., warmup_epochs=0)`` (``tg_cnn2gnn.baselines.DKDDistiller``)."""

    def __init__(self, teacher: nn.Module, model: nn.Module, *, dkd_alpha: float = 1.0, dkd_beta: float = 8.0,
                 tau: float = 4.0, ce_weight: float = 1.0, device: str | torch.device | None = None,
                 amp: bool = False, distributed: bool | str = "auto") -> None:
        DKDDistiller.__init__(self, teacher, model, alpha=dkd_alpha, beta=dkd_beta, tau=tau, warmup_epochs=0,
                              ce_weight=ce_weight)
        self._place(device, amp, distributed)

    def fit(self, *args: Any, warmup_epochs: int = 0, **kwargs: Any) -> dict[str, Any]:
        if isinstance(warmup_epochs, bool) or not isinstance(warmup_epochs, int) or warmup_epochs < 0:
            raise ValueError(f"warmup_epochs must be an int >= 0, got {warmup_epochs!r}")
        self.warmup_epochs = warmup_epochs
        try:
            return super().fit(*args, **kwargs)
        finally:
            self.criterion.warmup = 1.0


__all__ = ["HeteroDistiller", "LegacyDKDDistiller", "LegacyFit", "OPTIMIZERS"]
