"""Shared file helpers of the loaders: where data lives, what must exist, integrity, paths.

**Where files are looked for.** ``root=None`` means :func:`default_root`: the
environment variable ``TG_CNN2GNN_DATA`` if set, else ``./data``.

**Integrity checks.** torchvision's CIFAR and STL-10 classes verify the MD5 of every
file against the official release. The loaders keep that check by default
(``check_integrity=True``) and let the caller turn it off for copies that are valid but
not byte-identical (re-pickled, converted, small files written by tests); see
:data:`CHECK_INTEGRITY_HELP` for what the check does and does not protect.
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets.utils import check_integrity as _tv_check_integrity

DATA_ENV = "TG_CNN2GNN_DATA"

#: What ``check_integrity`` / ``--no-check-integrity`` does and does not protect (for help texts).
CHECK_INTEGRITY_HELP = (
    "verify the MD5 sum of every CIFAR / STL-10 file against the official release (default: on). "
    "It catches truncated, corrupted or substituted files (wrong images or labels). Turning it off "
    "(--no-check-integrity) accepts copies that are valid but not byte-identical (re-pickled, "
    "converted); their contents are then trusted as they are. It is not what keeps data files from "
    "running code: CIFAR's pickles are always read with a restricted unpickler that admits only "
    "arrays, lists, dicts and strings, with or without this check.")


def default_root() -> str:
    """``$TG_CNN2GNN_DATA`` if set, else ``./data``."""
    return os.environ.get(DATA_ENV) or os.path.join(".", "data")


def resolve_root(root: str | os.PathLike | None) -> str:
    """``root`` as a path string (``~`` expanded); :func:`default_root` for ``None``."""
    if root is None:
        return default_root()
    if not isinstance(root, (str, os.PathLike)):
        raise TypeError(f"root must be a path (str or os.PathLike) or None, got {root!r} ({type(root).__name__})")
    return os.path.expanduser(os.fspath(root))


def check_flag(name: str, value: object) -> bool:
    """``value`` must be a bool (``1`` / ``"no"`` are refused: they hide typos)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r} ({type(value).__name__})")
    return bool(value)


def require_files(folder: str, names: list[str], what: str, how: str) -> None:
    """Raise :class:`FileNotFoundError` listing the ``names`` missing from ``folder``, and ``how`` to get them."""
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise FileNotFoundError(
            f"{what} not found: expected {', '.join(missing)} in {os.path.abspath(folder)}. {how}")


def first_failing_md5(folder: str, files: list[tuple[str, str]], check_md5: bool) -> str | None:
    """Name of the first of ``files`` (``(name, md5)`` pairs in ``folder``) that is missing, or,
    with ``check_md5``, whose MD5 differs; ``None`` when all pass."""
    for name, md5 in files:
        if not _tv_check_integrity(os.path.join(folder, name), md5 if check_md5 else None):
            return name
    return None


def md5_error(what: str, folder: str, bad: str | None) -> str:
    """The message for files failing the MD5 check; it does not recommend skipping it blindly."""
    which = f" ({bad} differs)" if bad else ""
    return (f"{what} files in {folder} fail the MD5 check against the official release{which}: they are "
            "corrupted, truncated or not the official files. Download them again (download=True, or "
            "re-extract the official archive into root); pass check_integrity=False only for a copy you "
            "made yourself (re-pickled or converted) and trust, since its images and labels are then "
            "used unchecked")


def to_unit_float(images: np.ndarray | Tensor) -> Tensor:
    """uint8 images (any shape) -> float32 in ``[0, 1]``."""
    t = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    return t.to(torch.float32).div_(255.0)


def path_inside(folder: str, name: str, source: str) -> str:
    """``folder/name`` for a ``name`` read from a data file (``source``); refuses names that
    leave ``folder`` (absolute paths, ``..``, drive letters), so a crafted list cannot point
    the loader at files elsewhere on the machine."""
    if not isinstance(name, str) or not name or "\x00" in name:
        raise ValueError(f"{source} lists an empty or invalid file name {name!r}")
    norm = os.path.normpath(name)
    if os.path.isabs(name) or os.path.splitdrive(name)[0] or norm == ".." or norm.startswith(".." + os.sep) \
            or norm.startswith("../"):
        raise ValueError(f"{source} lists {name!r}, which is outside {folder}; file names there must be "
                         "relative paths inside that folder")
    return os.path.join(folder, norm)
