"""Back-compat shim: the KD baselines moved.

* :class:`MLP`, :class:`MLPStudent` -> :mod:`tg_cnn2gnn.nn.mlp`;
* :func:`dkd_loss`, :class:`DKDLoss` -> :mod:`tg_cnn2gnn.distill.distillers.dkd`; Hinton KD is
  :class:`tg_cnn2gnn.distill.KDDistiller`, DKD :class:`tg_cnn2gnn.distill.DKDDistiller`
  (``build_distiller("kd" | "dkd", teacher, MLP(...))`` with a :class:`~tg_cnn2gnn.distill.Trainer`).

``DKDDistiller`` here is the old surface (``dkd_alpha=``, ``dkd_beta=``, ``device=``,
``fit(x, y, ..., warmup_epochs=0)``), :class:`tg_cnn2gnn.distill.fit.LegacyDKDDistiller`.
"""
from tg_cnn2gnn.distill.distillers.dkd import DKDLoss, dkd_loss
from tg_cnn2gnn.distill.fit import LegacyDKDDistiller as DKDDistiller
from tg_cnn2gnn.nn.mlp import MLP, MLPStudent

__all__ = ["MLP", "MLPStudent", "dkd_loss", "DKDLoss", "DKDDistiller"]
