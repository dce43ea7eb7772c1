r"""CLI-agnostic bodies of ``cnn2gnn export`` and ``cnn2gnn predict`` (the flags live in ``cli.py``).

``cnn2gnn export RUN_DIR --out FILE``: the run layer loads the trained model and its
training features, then calls :func:`export_run`. ``FILE`` ending in ``.pt2`` is a
``torch.export`` program (runs without this package); anything else is the safe
checkpoint of :func:`~tg_cnn2gnn.inference.save_predictor` (needs this package, never
executes code on load).

``cnn2gnn predict RUN_DIR_OR_FILE IMAGES...``: a file goes through
:func:`load_for_predict`; a run directory through ``model.bank_predictor(train_x)`` and
:func:`predictor_meta`; then :func:`predict_images` reads the images (bad files are
reported, the others predicted) and returns printable lines.

``meta`` keys (all plain values): ``class_names`` (list of ``C`` str), ``channels``,
``image_size``, ``mean``, ``std`` (the dataset's normalisation), ``dataset``, plus
anything the run layer adds (``run_dir``, ``mechanism``, ``bank_size``, ``seed``).
"""
from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from tg_cnn2gnn.inference.images import format_topk, read_images
from tg_cnn2gnn.inference.serialize import export_predictor, load_exported, load_predictor, save_predictor

_REQUIRED = ("channels", "image_size", "mean", "std")


def predictor_meta(info: Any, class_names: Sequence[str] | None, **extra: Any) -> dict[str, Any]:
    """``meta`` from a :class:`tg_cnn2gnn.data.DatasetInfo` (``channels``, ``image_size``,
    ``mean``, ``std``, ``name``), the class names (``None`` if unknown) and ``extra`` values."""
    meta = {"dataset": info.name, "channels": int(info.channels), "image_size": int(info.image_size),
            "mean": [float(v) for v in info.mean], "std": [float(v) for v in info.std],
            "class_names": None if class_names is None else [str(c) for c in class_names]}
    meta.update(extra)
    return meta


def export_run(model, train_x: Tensor, meta: dict[str, Any], out: str | os.PathLike, *,
               bank_size: int | None = None, bank: Tensor | None = None, seed: int = 0,
               deterministic: bool = False, search: str = "exact", nlist: int | None = None,
               nprobe: int | None = None, train_y: Tensor | None = None, label_vote: float = 0.0) -> Path:
    """Build ``model.bank_predictor(train_x, ...)`` and write it to ``out`` (``.pt2``: torch.export;
    otherwise the safe checkpoint), with ``meta`` (plus the bank and search settings). Returns
    the path. ``search="ivf"`` (``nlist``, ``nprobe``): approximate neighbour search
    (:mod:`tg_cnn2gnn.inference.ivf`). ``train_y`` and ``label_vote``: the bank neighbours' label
    vote (:mod:`tg_cnn2gnn.inference.label_vote`)."""
    pred = model.bank_predictor(train_x, bank_size=bank_size, bank=bank, seed=seed,
                                deterministic=deterministic, search=search, nlist=nlist, nprobe=nprobe,
                                train_y=train_y, label_vote=label_vote)
    meta = {**meta, "mechanism": "bank", "bank_size": pred.spec["num_bank"], "seed": seed,
            "deterministic": bool(deterministic), "search": search, "label_vote": pred.label_vote}
    if search == "ivf":
        meta.update(nlist=pred.spec["ivf"]["nlist"], nprobe=pred.spec["ivf"]["nprobe"])
    if str(out).endswith(".pt2"):
        return export_predictor(pred, out, train_x[:2].flatten(1), meta)
    return save_predictor(pred, out, meta)


def load_for_predict(path: str | os.PathLike) -> tuple[Callable[[Tensor], Tensor], dict[str, Any]]:
    """``(predictor, meta)`` from a file of :func:`export_run` (``.pt2`` or safe checkpoint)."""
    if str(path).endswith(".pt2"):
        return load_exported(path)
    return load_predictor(path)


@dataclass
class Prediction:
    """Result of :func:`predict_images`.

    Attributes:
        lines: one printable line per predicted image (``name: class p, class p, ...``).
        errors: one printable line per skipped input (``name: reason``).
        logits: ``[N, C]`` logits of the predicted images, in the order of ``lines``.
    """

    lines: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    logits: Tensor | None = None


def predict_images(predictor: Callable[[Tensor], Tensor], meta: dict[str, Any],
                   paths: Sequence[str | os.PathLike], *, k: int = 3,
                   batch_size: int = 1000) -> Prediction:
    """Read ``paths`` (PNG/JPEG/.npy) as the run's dataset was normalised, predict, format top-``k``.

    Raises ``ValueError`` before reading when ``meta`` lacks the normalisation keys or the
    class names (an exit status for the CLI); bad files end up in ``errors``.
    """
    missing = [key for key in _REQUIRED if key not in meta]
    if missing:
        raise ValueError(f"the predictor's meta lacks {missing}: cannot resize and normalise images "
                         f"like the run's dataset")
    if not meta.get("class_names"):
        raise ValueError("the predictor has no class_names in its meta; re-export it from a run "
                         "whose dataset names its classes")
    batch = read_images(paths, channels=meta["channels"], size=meta["image_size"],
                        mean=meta["mean"], std=meta["std"])
    errors = [f"{name}: {reason}" for name, reason in batch.errors]
    if not batch.names:
        return Prediction([], errors, None)
    x = batch.x.flatten(1)
    with torch.no_grad():
        logits = torch.cat([predictor(x[a:a + batch_size]) for a in range(0, x.size(0), batch_size)])
    return Prediction(format_topk(logits, meta["class_names"], k, batch.names), errors, logits)
