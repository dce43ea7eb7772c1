"""CIFAR-10 / CIFAR-100 from the official python pickles, read without running code.

The official files are pickles of a dict holding a ``[N, 3072]`` uint8 ``data`` array and
a list of ``labels`` (``fine_labels`` for CIFAR-100). torchvision reads them with
``pickle.load``, which runs whatever a planted file names; these loaders read every file
(batches and meta) with :func:`~tg_cnn2gnn.data.safe_pickle.load_pickle`, whether or not
the MD5 check is on, and check the structure (shapes, dtype, label range) of what they get.
"""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
import torchvision
from torch import Tensor
from torchvision.datasets.vision import VisionDataset

from tg_cnn2gnn.data.files import (check_flag, first_failing_md5, md5_error, require_files, resolve_root,
                                   to_unit_float)
from tg_cnn2gnn.data.info import dataset_info
from tg_cnn2gnn.data.safe_pickle import load_pickle


def _read_batch(path: str, label_key: str, num_classes: int) -> tuple[np.ndarray, list[int]]:
    """``(data [n, 3072] uint8, labels [n])`` of one batch file, or a ValueError naming the file."""
    entry = load_pickle(path)
    if not isinstance(entry, dict):
        raise ValueError(f"{path} holds a {type(entry).__name__}, expected a CIFAR batch dict")
    data = entry.get("data")
    labels = entry.get("labels", entry.get("fine_labels")) if label_key == "labels" else entry.get(label_key)
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray) else type(data).__name__
        raise ValueError(f"{path}: 'data' must be a uint8 array [N, 3072], got {got}")
    if not isinstance(labels, (list, tuple, np.ndarray)) or len(labels) != data.shape[0]:
        raise ValueError(f"{path}: '{label_key}' must be a list of {data.shape[0]} labels (one per image)")
    lab = np.asarray(labels)
    if lab.size and (lab.dtype.kind not in "iu" or lab.min() < 0 or lab.max() >= num_classes):
        bad = [v for v in np.asarray(labels).ravel().tolist() if not (isinstance(v, int) and 0 <= v < num_classes)]
        raise ValueError(f"{path}: labels must be ints in [0, {num_classes}), got e.g. {bad[:5]}")
    return data, [int(v) for v in lab.tolist()]


class CIFAR10(torchvision.datasets.CIFAR10):
    r"""CIFAR-10 from the official python pickles (``root/cifar-10-batches-py``).

    Same on-disk layout and ``download=True`` as :class:`torchvision.datasets.CIFAR10`,
    plus ``check_integrity`` (MD5 of the requested split's files, see
    :data:`~tg_cnn2gnn.data.CHECK_INTEGRITY_HELP`), only the requested split's files
    required, restricted unpickling (no code runs, whatever the files hold), a
    :class:`FileNotFoundError` that says where files are expected, and :meth:`to_tensors`.
    Items are ``(PIL image 32x32 RGB, label)``; ``data`` is ``[N, 32, 32, 3]`` uint8.
    """

    _name = "cifar10"
    _label_key = "labels"

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False, *, check_integrity: bool = True) -> None:
        root = resolve_root(root)
        self.check_md5 = check_flag("check_integrity", check_integrity)
        self.train = check_flag("train", train)
        download = check_flag("download", download)
        VisionDataset.__init__(self, root, transform=transform, target_transform=target_transform)
        folder = os.path.join(self.root, self.base_folder)
        if download:
            self.download()
        else:
            names = [f for f, _ in self._split_files()]
            if self.check_md5:
                names.append(self.meta["filename"])
            require_files(folder, names, f"{type(self).__name__} data",
                          f"Pass download=True to fetch {self.url} (extracts {self.base_folder}/ into root), "
                          "or extract that archive into root yourself.")
        bad = first_failing_md5(folder, [tuple(f) for f in self._split_files()], self.check_md5)
        if bad is not None:
            raise ValueError(md5_error(type(self).__name__, folder, bad))
        num_classes = dataset_info(self._name).num_classes
        parts, self.targets = [], []
        for name, _ in self._split_files():
            data, labels = _read_batch(os.path.join(folder, name), self._label_key, num_classes)
            parts.append(data)
            self.targets.extend(labels)
        self.data = np.vstack(parts).reshape(-1, 3, 32, 32).transpose((0, 2, 3, 1))
        self._load_meta()

    def _split_files(self) -> list[list[str]]:
        return self.train_list if self.train else self.test_list

    def _check_integrity(self) -> bool:  # torchvision's download() asks this first
        folder = os.path.join(self.root, self.base_folder)
        return first_failing_md5(folder, [tuple(f) for f in self._split_files()], self.check_md5) is None

    def _load_meta(self) -> None:
        folder = os.path.join(self.root, self.base_folder)
        path = os.path.join(folder, self.meta["filename"])
        if self.check_md5 and first_failing_md5(folder, [(self.meta["filename"], self.meta["md5"])], True):
            raise ValueError(md5_error(type(self).__name__, folder, self.meta["filename"]))
        info = dataset_info(self._name)
        if os.path.isfile(path):
            meta = load_pickle(path)
            names = meta.get(self.meta["key"]) if isinstance(meta, dict) else None
            if not isinstance(names, (list, tuple)) or len(names) != info.num_classes \
                    or not all(isinstance(n, str) for n in names):
                raise ValueError(f"{path}: '{self.meta['key']}' must be a list of {info.num_classes} class names")
            self.classes = list(names)
        else:
            self.classes = list(info.class_names or [str(c) for c in range(info.num_classes)])
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``[N, 3, 32, 32]`` in ``[0, 1]`` and labels ``[N]``."""
        return to_unit_float(self.data.transpose(0, 3, 1, 2)), torch.as_tensor(self.targets, dtype=torch.long)


class CIFAR100(CIFAR10):
    r"""CIFAR-100 (fine labels) from the official python pickles (``root/cifar-100-python``);
    see :class:`CIFAR10`."""

    _name = "cifar100"
    _label_key = "fine_labels"
    base_folder = torchvision.datasets.CIFAR100.base_folder
    url = torchvision.datasets.CIFAR100.url
    filename = torchvision.datasets.CIFAR100.filename
    tgz_md5 = torchvision.datasets.CIFAR100.tgz_md5
    train_list = torchvision.datasets.CIFAR100.train_list
    test_list = torchvision.datasets.CIFAR100.test_list
    meta = torchvision.datasets.CIFAR100.meta
