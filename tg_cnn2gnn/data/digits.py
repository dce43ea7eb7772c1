"""scikit-learn's handwritten digits as a dataset with a fixed stratified train/test split."""
from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import Tensor
from torch.utils.data import Dataset

from tg_cnn2gnn.data.info import check_split
from tg_cnn2gnn.data.split import _check_fraction, _check_seed, stratified_split


@functools.lru_cache(maxsize=1)
def _digits_arrays() -> tuple[Tensor, Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.as_tensor(bunch.images, dtype=torch.float32).div_(16.0).unsqueeze(1)
    return images, torch.as_tensor(bunch.target, dtype=torch.long)  # indexed (copied) by Digits, never mutated


class Digits(Dataset):
    r"""scikit-learn's handwritten digits (:func:`sklearn.datasets.load_digits`): 1,797
    grayscale 8x8 images of 10 classes, bundled with scikit-learn (no download).

    There is no official test set: a stratified split (:func:`stratified_split`,
    ``test_fraction`` of every class, ``seed``) is taken, by default 1,438 train
    and 359 test images. Pixels (0..16) are divided by 16.

    Items are ``(image [1, 8, 8] float tensor in [0, 1], label)``.
    """

    classes = [str(d) for d in range(10)]

    def __init__(self, split: str = "train", transform: Callable | None = None,
                 target_transform: Callable | None = None, *, test_fraction: float = 0.2, seed: int = 0) -> None:
        self.split = check_split(split)
        test_fraction = _check_fraction("test_fraction", test_fraction)
        seed = _check_seed(seed)
        images, labels = _digits_arrays()
        train_idx, test_idx = stratified_split(labels, test_fraction, seed=seed)
        keep = train_idx if split == "train" else test_idx
        #: positions of this split's samples in ``load_digits()``
        self.source_index = keep
        self.data = images[keep]
        self.targets = labels[keep]
        self.transform, self.target_transform = transform, target_transform

    def __len__(self) -> int:
        return self.data.size(0)

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        img, target = self.data[index], int(self.targets[index])
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``[N, 1, 8, 8]`` in ``[0, 1]`` and labels ``[N]``."""
        return self.data.clone(), self.targets.clone()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(split={self.split!r}, num_samples={len(self)})"
