r"""Files of a :class:`~tg_cnn2gnn.inference.BankPredictor`: a safe checkpoint and a ``torch.export`` program.

* :func:`save_predictor` / :func:`load_predictor`: the predictor's JSON-able spec, its
  tensors and a ``meta`` dict (class names, normalisation, ...) in one ``torch.save``
  archive, written atomically and read back with ``torch.load(weights_only=True)``
  (:mod:`tg_cnn2gnn.distill.checkpoint`): loading never executes code, and the module is
  rebuilt from data. Needs this package to run.
* :func:`export_predictor` / :func:`load_exported`: a ``torch.export`` program (``.pt2``)
  with a dynamic batch dimension, runnable without the training code (``torch.export.load``
  then ``.module()``); ``meta`` is stored as an extra JSON file inside the archive. Every
  freezable conv (:data:`~tg_cnn2gnn.inference.FREEZABLE_CONVS`: gcn, graph, sg, ssg, tag,
  le) exports, in both modes: the predictor is tensors, ``F.linear``/``bmm``, ``topk`` and
  element-wise operations only. ``cheb``/``arma`` have no predictor and therefore no export.

Both searches (``spec["search"]``: ``"exact"`` or ``"ivf"``) round-trip: the IVF index is
buffers (``ivf_*``) and ``spec["ivf"]``; an exported program keeps the search it was
exported with (``F.embedding_bag`` and ``topk`` for ``"ivf"``). Spec version 2 (with the
search) is written; version-1 files, written before the search existed, load as exact.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tg_cnn2gnn.distill.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tg_cnn2gnn.distill.metrics import atomic_write
from tg_cnn2gnn.inference.bank_predictor import BankPredictor

#: ``kind`` of predictor checkpoints.
KIND = "bank-predictor"
_META_FILE = "tg_cnn2gnn_meta.json"


def _check_meta(meta: object) -> dict[str, Any]:
    if meta is None:
        return {}
    if not isinstance(meta, dict):
        raise TypeError(f"meta must be a dict of plain values (str, numbers, lists), got {type(meta).__name__}")
    try:
        json.dumps(meta)
    except (TypeError, ValueError) as e:
        raise TypeError(f"meta must be JSON-serialisable (plain values only): {e}") from None
    return meta


def save_predictor(pred: BankPredictor, path: str | os.PathLike, meta: dict | None = None) -> Path:
    """Atomically write ``pred`` (spec + tensors) and ``meta`` to ``path``; returns the path."""
    if not isinstance(pred, BankPredictor):
        raise TypeError(f"pred must be a BankPredictor, got {type(pred).__name__}")
    obj = {"spec": pred.spec, "tensors": dict(pred.state_dict()), "meta": _check_meta(meta),
           "deterministic": pred.deterministic, "neighbour_chunk": pred.neighbour_chunk}
    return save_checkpoint(obj, path, kind=KIND)


def load_predictor(path: str | os.PathLike, map_location: str | torch.device = "cpu"
                   ) -> tuple[BankPredictor, dict[str, Any]]:
    """``(predictor, meta)`` from a file of :func:`save_predictor`; never executes code.

    Raises:
        CheckpointError: missing, corrupt, unsafe or foreign file (the message names it).
    """
    obj = load_checkpoint(path, kind=KIND, map_location=map_location)
    try:
        tensors = obj["tensors"]
        if not all(isinstance(v, Tensor) for v in tensors.values()):
            raise ValueError("non-tensor entries in tensors")
        pred = BankPredictor(obj["spec"], tensors, deterministic=bool(obj.get("deterministic", False)),
                             neighbour_chunk=int(obj.get("neighbour_chunk", 65536)))
    except (KeyError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"predictor file {str(path)!r} is not a valid bank predictor ({e})") from None
    return pred.eval(), dict(obj.get("meta") or {})


def export_predictor(pred: BankPredictor, path: str | os.PathLike, example_x: Tensor,
                     meta: dict | None = None) -> Path:
    """``torch.export`` ``pred`` with a dynamic batch dimension and atomically save it to ``path``
    (``.pt2``). ``example_x [T, F]`` (``T >= 2``) fixes dtype and feature size."""
    if not isinstance(pred, BankPredictor):
        raise TypeError(f"pred must be a BankPredictor, got {type(pred).__name__}")
    if not isinstance(example_x, Tensor) or example_x.dim() != 2 or example_x.size(0) < 2:
        shape = tuple(example_x.shape) if isinstance(example_x, Tensor) else type(example_x).__name__
        raise ValueError(f"example_x must be a [T, F] tensor with T >= 2 (the batch dimension is "
                         f"exported as dynamic), got {shape}")
    extra = json.dumps(_check_meta(meta))
    example_x = example_x.detach().clone()     # a view would save its whole storage as the sample input
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        ep = torch.export.export(pred.eval(), (example_x,), dynamic_shapes={"x": {0: batch}})
    return atomic_write(path, lambda f: torch.export.save(ep, f, extra_files={_META_FILE: extra}),
                        binary=True)


def load_exported(path: str | os.PathLike) -> tuple[torch.nn.Module, dict[str, Any]]:
    """``(module, meta)`` of a file of :func:`export_predictor`: ``module(x [T, F])`` -> logits."""
    path = Path(path)
    if not path.is_file():
        raise ValueError(f"exported predictor {str(path)!r} does not exist or is not a file")
    extra = {_META_FILE: ""}
    try:
        ep = torch.export.load(path, extra_files=extra)
    except Exception as e:  # noqa: BLE001 - one clear error for every failure
        raise ValueError(f"{str(path)!r} is not a torch.export program ({type(e).__name__}: "
                         f"{str(e).strip()[:200]})") from None
    meta = json.loads(extra[_META_FILE]) if extra[_META_FILE] else {}
    return ep.module(), meta
