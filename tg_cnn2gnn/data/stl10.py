"""STL-10 from the official binaries (raw uint8 arrays: no pickle, nothing to execute)."""
from __future__ import annotations

import os
from typing import Callable

import numpy as np
import torch
import torchvision
from torch import Tensor

from tg_cnn2gnn.data.files import (check_flag, first_failing_md5, md5_error, require_files, resolve_root,
                                   to_unit_float)


class STL10(torchvision.datasets.STL10):
    r"""STL-10 from the official binaries (``root/stl10_binary/{train,test}_{X,y}.bin``).

    Same as :class:`torchvision.datasets.STL10`, plus ``check_integrity``, only
    the requested split's files required, a clear :class:`FileNotFoundError`
    and :meth:`to_tensors`. Items are ``(PIL image 96x96 RGB, label)`` with labels
    0..9 (the files store 1..10); ``data`` is ``[N, 3, 96, 96]`` uint8.
    """

    _SPLIT_FILES = {"train": ("train_X.bin", "train_y.bin"), "test": ("test_X.bin", "test_y.bin"),
                    "unlabeled": ("unlabeled_X.bin",),
                    "train+unlabeled": ("train_X.bin", "train_y.bin", "unlabeled_X.bin")}

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train", folds: int | None = None,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False, *, check_integrity: bool = True) -> None:
        root = resolve_root(root)
        self.check_md5 = check_flag("check_integrity", check_integrity)
        download = check_flag("download", download)
        if split not in self._SPLIT_FILES:
            raise ValueError(f"split={split!r} is not supported; allowed values: "
                             f"{', '.join(map(repr, self._SPLIT_FILES))}")
        self.split = split
        folder = os.path.join(root, self.base_folder)
        if not download:
            require_files(folder, list(self._SPLIT_FILES[split]), "STL-10 data",
                          f"Pass download=True to fetch {self.url} (2.6 GB, extracts {self.base_folder}/ "
                          "into root), or extract that archive into root yourself.")
            bad = first_failing_md5(folder, self._split_md5s(), self.check_md5)
            if bad is not None:
                raise ValueError(md5_error("STL-10", folder, bad))
        super().__init__(root, split=split, folds=folds, transform=transform,
                         target_transform=target_transform, download=download)
        assert self.labels is not None
        labels = self.labels.astype(np.int64)
        y_file = os.path.join(folder, f"{split}_y.bin")
        if labels.shape[0] != len(self.data):
            raise ValueError(f"{y_file} holds {labels.shape[0]} labels for {len(self.data)} images")
        if split in ("train", "test") and labels.size and (labels.min() < 0 or labels.max() > 9):
            raise ValueError(f"{y_file}: labels must be 1..10 in the file, got values outside that range "
                             f"(e.g. {sorted(set((labels + 1).tolist()) - set(range(1, 11)))[:5]})")
        self.labels = labels

    def _split_md5s(self) -> list[tuple[str, str]]:
        md5s = dict(self.train_list + self.test_list)
        return [(name, md5s[name]) for name in self._SPLIT_FILES[self.split]]

    def _check_integrity(self) -> bool:  # torchvision asks this before reading and downloading
        folder = os.path.join(self.root, self.base_folder)
        return first_failing_md5(folder, self._split_md5s(), self.check_md5) is None

    @property
    def targets(self) -> np.ndarray:
        """Alias of ``labels`` (the name every other loader uses)."""
        return self.labels  # type: ignore[return-value]

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``[N, 3, 96, 96]`` in ``[0, 1]`` and labels ``[N]``."""
        return to_unit_float(self.data), torch.as_tensor(self.labels, dtype=torch.long)
