"""Fashion-MNIST from idx files, gzip-compressed or not, wherever they are."""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
import torchvision
from torch import Tensor

from tg_cnn2gnn.data.files import resolve_root, to_unit_float
from tg_cnn2gnn.data.idx import read_idx

#: System folders searched for Fashion-MNIST's idx files after ``root``
#: (Debian/Ubuntu's ``dataset-fashion-mnist`` package installs them here).
FASHION_MNIST_SYSTEM_DIRS: list[str] = ["/usr/share/datasets/fashion-mnist"]


def _idx_file(folder: str, stem: str) -> str | None:
    for name in (stem, stem + ".gz"):
        path = os.path.join(folder, name)
        if os.path.isfile(path):
            return path
    return None


class FashionMNIST(torchvision.datasets.FashionMNIST):
    r"""Fashion-MNIST from idx files, gzip-compressed or not, wherever they are.

    The two files of the split (``train-*`` or ``t10k-*``, ``images-idx3-ubyte``
    and ``labels-idx1-ubyte``, optionally ``.gz``) are looked for in ``root``,
    ``root/FashionMNIST/raw`` (torchvision's layout), ``root/fashion-mnist``,
    ``root/fashion_mnist`` and then :data:`FASHION_MNIST_SYSTEM_DIRS`
    (Debian's ``dataset-fashion-mnist``: ``/usr/share/datasets/fashion-mnist``).
    They are read in place by :func:`~tg_cnn2gnn.data.idx.read_idx` (no copy or
    decompression on disk; torchvision's own reader needs uncompressed files
    with the official MD5, which Debian's re-compressed files do not have).
    With ``download=True`` and no files found, torchvision downloads them into
    ``root/FashionMNIST/raw``.

    Items are ``(PIL image 28x28 "L", label)``; ``data`` is a ``[N, 28, 28]``
    uint8 tensor, ``targets`` a ``[N]`` long tensor.
    """

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False) -> None:
        root = resolve_root(root)
        self._prefix = "train" if train else "t10k"
        candidates = [root, os.path.join(root, "FashionMNIST", "raw"), os.path.join(root, "fashion-mnist"),
                      os.path.join(root, "fashion_mnist"), *FASHION_MNIST_SYSTEM_DIRS]
        found = next((d for d in candidates if self._files_in(d) is not None), None)
        if found is None:
            if not download:
                raise FileNotFoundError(
                    f"Fashion-MNIST {'train' if train else 'test'} files ({self._prefix}-images-idx3-ubyte[.gz] "
                    f"and {self._prefix}-labels-idx1-ubyte[.gz]) not found in any of: {', '.join(candidates)}. "
                    "Get them with `apt-get install dataset-fashion-mnist` (installs "
                    "/usr/share/datasets/fashion-mnist), pass download=True to fetch them with torchvision "
                    f"into {os.path.join(root, 'FashionMNIST', 'raw')}, or download the four .gz files from "
                    "https://github.com/zalandoresearch/fashion-mnist into root.")
            found = os.path.join(root, "FashionMNIST", "raw")
        self._raw_dir = found
        super().__init__(root, train=train, transform=transform, target_transform=target_transform,
                         download=download)

    def _files_in(self, folder: str) -> tuple[str, str] | None:
        images = _idx_file(folder, f"{self._prefix}-images-idx3-ubyte")
        labels = _idx_file(folder, f"{self._prefix}-labels-idx1-ubyte")
        return (images, labels) if images and labels else None

    @property
    def raw_folder(self) -> str:  # torchvision reads and downloads here
        return self._raw_dir

    def _check_exists(self) -> bool:
        return self._files_in(self._raw_dir) is not None

    def _load_data(self) -> tuple[Tensor, Tensor]:
        files = self._files_in(self._raw_dir)
        assert files is not None
        images, labels = read_idx(files[0]), read_idx(files[1])
        if images.ndim != 3 or labels.ndim != 1 or images.shape[0] != labels.shape[0]:
            raise ValueError(f"inconsistent Fashion-MNIST files {files}: images {images.shape}, "
                             f"labels {labels.shape}")
        if labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{files[1]}: Fashion-MNIST labels must be 0..9, got values "
                             f"{sorted(set(labels.tolist()) - set(range(10)))[:5]}")
        return torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(labels.astype(np.int64))

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``[N, 1, 28, 28]`` in ``[0, 1]`` and labels ``[N]``."""
        return to_unit_float(self.data.unsqueeze(1)), self.targets.to(torch.long).clone()
