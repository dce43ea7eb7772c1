"""Inductive inference: the mechanisms by name, the frozen-bank predictor, its files and image input.

* :mod:`~tg_cnn2gnn.inference.registry` -- ``MECHANISMS``, :func:`get_mechanism`; one module
  per mechanism (``bank``, ``batch``, ``one_by_one``, ``direct``, ``isolated``).
* :class:`BankPredictor` -- ``model.bank_predictor(train_x)``: ``"bank"`` inference with the
  bank precomputed (:mod:`~tg_cnn2gnn.inference.frozen` holds the per-conv layers); neighbour
  search exact (default) or ``search="ivf"`` (:mod:`~tg_cnn2gnn.inference.ivf`, approximate,
  for large banks); :data:`SEARCHES` names them.
* :func:`save_predictor` / :func:`load_predictor` (never executes code),
  :func:`export_predictor` / :func:`load_exported` (``torch.export``).
* :func:`read_images`, :func:`format_topk`; :mod:`~tg_cnn2gnn.inference.commands` for the CLI.
"""
from tg_cnn2gnn.inference._common import proxy_distances, select_bank
from tg_cnn2gnn.inference.bank_predictor import SEARCHES, BankPredictor
from tg_cnn2gnn.inference.frozen import FREEZABLE_CONVS
from tg_cnn2gnn.inference.images import ImageBatch, format_topk, read_images
from tg_cnn2gnn.inference.registry import ABLATIONS, MECHANISMS, REGISTRY, Mechanism, get_mechanism
from tg_cnn2gnn.inference.serialize import export_predictor, load_exported, load_predictor, save_predictor

__all__ = [
    "ABLATIONS", "BankPredictor", "FREEZABLE_CONVS", "ImageBatch", "MECHANISMS", "Mechanism",
    "REGISTRY", "SEARCHES", "export_predictor", "format_topk", "get_mechanism", "load_exported",
    "load_predictor", "proxy_distances", "read_images", "save_predictor", "select_bank",
]
