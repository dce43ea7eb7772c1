"""Checkpoints: atomic writes, safe loads.

* :func:`save_checkpoint` writes to a temporary file in the destination folder,
  flushes and fsyncs it, then ``os.replace``-s it over the destination: a run killed
  mid-write leaves either the old checkpoint or the new one, never half a file.
* :func:`load_checkpoint` reads with ``torch.load(..., weights_only=True)``: only
  tensors, numbers, strings and plain containers are accepted, so a file holding a
  pickled object (whose ``__reduce__`` could run code) is *refused before anything in
  it runs*. Every failure -- missing, empty, truncated or corrupt file, pickled
  objects, a checkpoint of another kind -- is a :class:`CheckpointError` (a
  :class:`ValueError`) naming the file and the problem, raised without the chained
  traceback from inside the unpickler.
"""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Any

import torch

from tg_cnn2gnn.distill.metrics import atomic_write

#: Value of the ``"format"`` key of every checkpoint this package writes.
FORMAT = "tg_cnn2gnn"
#: Checkpoint layout version.
VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint file could not be used (corrupt, truncated, unsafe or foreign)."""


def save_checkpoint(obj: dict[str, Any], path: str | os.PathLike, *, kind: str | None = None) -> Path:
    """Atomically write ``obj`` (a dict of tensors, numbers, strings, containers) to ``path``.

    When ``kind`` is given, ``obj`` is stored with ``format``/``version``/``kind`` keys so
    that :func:`load_checkpoint` can tell it from a foreign file. Parent folders are
    created. Returns the path.
    """
    if not isinstance(obj, dict):
        raise TypeError(f"obj must be a dict, got {type(obj).__name__}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind is not None:
        obj = {"format": FORMAT, "version": VERSION, "kind": kind, **obj}
    atomic_write(path, lambda f: torch.save(obj, f), binary=True)
    return path


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:200] if text else type(e).__name__


def load_checkpoint(path: str | os.PathLike, *, kind: str | None = None,
                    map_location: str | torch.device | None = "cpu") -> dict[str, Any]:
    """Load a checkpoint with ``torch.load(..., weights_only=True)``.

    Args:
        path: the file.
        kind: when given, the file must be a checkpoint written by :func:`save_checkpoint`
            with this ``kind`` (``"distiller"``, ``"distiller-best"``, ``"teacher"``).
        map_location: forwarded to :func:`torch.load`.

    Raises:
        CheckpointError: the file is missing, empty, truncated or corrupt, holds pickled
            objects other than tensors and plain containers (never executed), is not a
            dict, or is not a checkpoint of ``kind``. The message names the file.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {str(path)!r} does not exist or is not a file")
    size = path.stat().st_size
    if size == 0:
        raise CheckpointError(f"checkpoint file {str(path)!r} is empty (0 bytes): the write was interrupted "
                              "or the file is not a checkpoint")
    if not zipfile.is_zipfile(path):
        # torch.save writes zip archives; a truncated one loses its central directory.
        with open(path, "rb") as f:
            head = f.read(4)
        if head[:2] == b"PK":
            raise CheckpointError(f"checkpoint file {str(path)!r} is truncated or corrupt ({size} bytes; "
                                  "the zip archive written by torch.save is incomplete)")
    error: str | None = None
    try:
        obj = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # noqa: BLE001 - every failure becomes one clear error
        msg = str(e)
        if "Weights only load failed" in msg or "weights_only" in msg:
            error = (f"checkpoint file {str(path)!r} holds pickled Python objects that are not tensors or "
                     "plain containers; it was refused without running them (torch.load weights_only=True). "
                     "Only load files you trust, and save them with state_dict()")
        else:
            error = (f"checkpoint file {str(path)!r} is corrupt, truncated or not a torch checkpoint "
                     f"({type(e).__name__}: {_first_line(e)})")
    if error is not None:
        raise CheckpointError(error)
    if not isinstance(obj, dict):
        raise CheckpointError(f"checkpoint file {str(path)!r} holds a {type(obj).__name__}, expected a dict")
    if kind is not None:
        if obj.get("format") != FORMAT:
            raise CheckpointError(f"checkpoint file {str(path)!r} was not written by tg_cnn2gnn (no "
                                  f"format={FORMAT!r} key); expected a {kind!r} checkpoint")
        if obj.get("kind") != kind:
            raise CheckpointError(f"checkpoint file {str(path)!r} is a {obj.get('kind')!r} checkpoint, "
                                  f"expected {kind!r}")
        if obj.get("version") != VERSION:
            raise CheckpointError(f"checkpoint file {str(path)!r} has layout version {obj.get('version')!r}, "
                                  f"this version of tg_cnn2gnn reads version {VERSION}")
    return obj


def extract_state_dict(obj: dict[str, Any], path: str | os.PathLike = "<memory>") -> dict[str, torch.Tensor]:
    """The model weights in a loaded checkpoint: ours (``"model"`` key), a common
    wrapper (``"state_dict"``, ``"model_state_dict"``, ``"model"``, ``"net"``) or a bare
    state dict (all values tensors)."""
    for key in ("model", "state_dict", "model_state_dict", "net"):
        value = obj.get(key)
        if isinstance(value, dict) and value and all(isinstance(v, torch.Tensor) for v in value.values()):
            return value
    if obj and all(isinstance(v, torch.Tensor) for v in obj.values()):
        return obj
    raise CheckpointError(f"checkpoint file {str(path)!r} holds no state dict (looked for a dict of tensors "
                          f"under 'model', 'state_dict', 'model_state_dict', 'net', or at the top level); "
                          f"keys: {sorted(map(str, obj))[:10]}")
