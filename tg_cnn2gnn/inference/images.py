r"""Image files to model input, and logits to readable top classes (for ``cnn2gnn predict``).

:func:`read_images` reads PNG/JPEG files of any size (PIL) and ``.npy`` batches, resizes
them to the dataset's size and normalises them as the dataset loaders do
(``(pixel / 255 - mean) / std`` per channel, :mod:`tg_cnn2gnn.data.transforms`). A file
that cannot be used -- unreadable, not an image, wrong channel count, wrong array shape --
becomes an entry of ``errors`` and the others are still read.
"""
from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

_ONE_CHANNEL = {"1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "F"}


@dataclass
class ImageBatch:
    """Images read by :func:`read_images`.

    Attributes:
        x: ``[N, C, H, W]`` normalised images (flatten with ``x.flatten(1)`` for a student).
        names: ``N`` names (the file, or ``file[i]`` for row ``i`` of a ``.npy`` batch).
        errors: ``(file, reason)`` for every input that was skipped.
    """

    x: Tensor
    names: list[str] = field(default_factory=list)
    errors: list[tuple[str, str]] = field(default_factory=list)


def _as_pair(size: int | Sequence[int]) -> tuple[int, int]:
    pair = (size, size) if isinstance(size, int) else tuple(size)
    if len(pair) != 2 or any(isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in pair):
        raise ValueError(f"size must be a positive int or (height, width), got {size!r}")
    return pair


def _stats(values: float | Sequence[float], channels: int, name: str) -> Tensor:
    v = [float(values)] * channels if isinstance(values, (int, float)) else [float(a) for a in values]
    if len(v) != channels:
        raise ValueError(f"{name} must have {channels} value(s) (one per channel), got {values!r}")
    if name == "std" and any(a <= 0 for a in v):
        raise ValueError(f"std must be > 0, got {values!r}")
    return torch.tensor(v).view(-1, 1, 1)


def _read_picture(path: str, channels: int, hw: tuple[int, int]) -> Tensor:
    from PIL import Image, UnidentifiedImageError
    try:
        with Image.open(path) as img:
            img.load()
            mode = img.mode
            have = 1 if mode in _ONE_CHANNEL else 3
            if have != channels:
                raise ValueError(f"has {have} channel(s) (PIL mode {mode!r}) but the model expects {channels}")
            img = img.convert("L" if channels == 1 else "RGB")
            if img.size != (hw[1], hw[0]):
                img = img.resize((hw[1], hw[0]), Image.BILINEAR)
            data = torch.frombuffer(bytearray(img.tobytes()), dtype=torch.uint8)
    except (UnidentifiedImageError, OSError, SyntaxError) as e:
        raise ValueError(f"is not a readable PNG/JPEG image ({type(e).__name__}: {str(e)[:120]})") from None
    return data.view(hw[0], hw[1], channels).permute(2, 0, 1).float() / 255.0


def _read_npy(path: str, channels: int, hw: tuple[int, int]) -> Tensor:
    import numpy as np
    try:
        arr = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise ValueError(f"is not a readable .npy array without pickled objects ({str(e)[:120]})") from None
    if arr.dtype == np.uint8:
        x = torch.from_numpy(arr.astype(np.float32) / 255.0)
    elif np.issubdtype(arr.dtype, np.floating):
        x = torch.from_numpy(arr.astype(np.float32))
    else:
        raise ValueError(f"has dtype {arr.dtype}; expected uint8 (0-255) or float (0-1) images")
    if x.dim() == 3 and channels == 1:
        x = x.unsqueeze(1)
    if x.dim() != 4 or x.size(1) != channels:
        raise ValueError(f"has shape {tuple(arr.shape)}; expected [N, {channels}, H, W]"
                         + (" or [N, H, W]" if channels == 1 else ""))
    if not torch.isfinite(x).all():
        raise ValueError("contains NaN or Inf")
    if tuple(x.shape[2:]) != hw:
        x = F.interpolate(x, size=hw, mode="bilinear", align_corners=False, antialias=True)
    return x


def read_images(paths: Sequence[str | os.PathLike], *, channels: int, size: int | Sequence[int],
                mean: float | Sequence[float], std: float | Sequence[float]) -> ImageBatch:
    """Read image files and ``.npy`` batches into one normalised ``[N, C, H, W]`` batch.

    Args:
        paths: PNG/JPEG (any size; resized bilinearly) or ``.npy`` files (``[N, C, H, W]``
            or, with one channel, ``[N, H, W]``; uint8 0-255 or float 0-1).
        channels: the model's channel count (1: grayscale, 3: RGB); other files are errors.
        size: the dataset's image size (``int`` or ``(H, W)``).
        mean, std: the dataset's per-channel statistics (:data:`tg_cnn2gnn.data.DATASET_INFO`).
    """
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels!r}")
    hw = _as_pair(size)
    m, s = _stats(mean, channels, "mean"), _stats(std, channels, "std")
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    xs, names, errors = [], [], []
    for p in paths:
        p = str(p)
        try:
            if not Path(p).is_file():
                raise ValueError("does not exist or is not a file")
            if p.lower().endswith(".npy"):
                batch = _read_npy(p, channels, hw)
                xs.append(batch)
                names.extend(f"{p}[{i}]" for i in range(batch.size(0)))
            else:
                xs.append(_read_picture(p, channels, hw).unsqueeze(0))
                names.append(p)
        except ValueError as e:
            errors.append((p, str(e)))
    x = torch.cat(xs) if xs else torch.zeros(0, channels, *hw)
    return ImageBatch((x - m) / s, names, errors)


def topk_classes(logits: Tensor, class_names: Sequence[str] | None, k: int = 3
                 ) -> list[list[tuple[str, float]]]:
    """Per row of ``logits [N, C]``: the ``min(k, C)`` most probable ``(class name, probability)``."""
    if logits.dim() != 2:
        raise ValueError(f"logits must be [N, C], got shape {tuple(logits.shape)}")
    c = logits.size(1)
    if class_names is None:
        raise ValueError("class names are missing: the run/predictor file has no class_names; "
                         "pass them (one per output class)")
    if len(class_names) != c:
        raise ValueError(f"class_names has {len(class_names)} names but the model has {c} classes")
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive int, got {k!r}")
    prob, idx = logits.float().softmax(1).topk(min(k, c), dim=1)
    return [[(str(class_names[j]), float(p)) for p, j in zip(pr.tolist(), ix.tolist())]
            for pr, ix in zip(prob, idx)]


def format_topk(logits: Tensor, class_names: Sequence[str] | None, k: int = 3,
                names: Sequence[str] | None = None) -> list[str]:
    """One line per row: ``"<name>: shirt 0.812, t-shirt 0.102, ..."`` (probabilities of the softmax)."""
    rows = topk_classes(logits, class_names, k)
    names = list(names) if names is not None else [str(i) for i in range(len(rows))]
    if len(names) != len(rows):
        raise ValueError(f"names has {len(names)} entries for {len(rows)} rows of logits")
    return [f"{n}: " + ", ".join(f"{c} {p:.3f}" for c, p in row) for n, row in zip(names, rows)]
