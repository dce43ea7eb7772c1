"""Deterministic (stratified) splits, sample indices and label extraction."""
from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset, Subset


class IndexedDataset(Dataset):
    r"""Wrap a dataset so that each item also carries its position in it.

    ``IndexedDataset(ds)[i]`` is ``(image, label, i)`` where ``ds[i] == (image, label)``.
    The anchor form of :class:`tg_cnn2gnn.nn.LearnedGraphHead` needs, for every
    training sample, its index in the training set: wrap exactly the dataset
    the head was sized for (e.g. the training :class:`~torch.utils.data.Subset`
    left after :func:`train_val_split`, not the full split), so that indices
    run over ``0 .. len(ds) - 1``. A default collate turns the third element
    into a ``[B]`` long tensor.

    Args:
        dataset (Dataset): any map-style dataset whose items are ``(image, label)``
            tuples (items that are not 2-tuples raise a :class:`ValueError`).
    """

    def __init__(self, dataset: Dataset) -> None:
        if not isinstance(dataset, Dataset) and not hasattr(dataset, "__getitem__"):
            raise TypeError(f"dataset must be a map-style dataset, got {type(dataset).__name__}")
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, index: int) -> tuple[Any, Any, int]:
        item = self.dataset[index]
        if not isinstance(item, (tuple, list)) or len(item) != 2:
            length = f" of length {len(item)}" if isinstance(item, (tuple, list)) else ""
            raise ValueError("IndexedDataset expects items (image, label) from the wrapped dataset, got "
                             f"{type(item).__name__}{length}")
        return item[0], item[1], int(index)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.dataset!r})"


def get_labels(dataset: Dataset | Sequence[int] | Tensor | np.ndarray) -> Tensor:
    """The class labels of ``dataset`` as a ``[N]`` long tensor.

    Reads ``targets`` (torchvision, this package) or ``labels`` (STL-10) without
    loading images; looks through :class:`~torch.utils.data.Subset` and
    :class:`IndexedDataset`; otherwise falls back to ``dataset[i][1]`` for every ``i``.
    A label tensor/array/sequence is returned as a long tensor.
    """
    if isinstance(dataset, Tensor):
        return dataset.detach().to(torch.long).reshape(-1).cpu()
    if isinstance(dataset, (np.ndarray, list, tuple)):
        return torch.as_tensor(np.asarray(dataset, dtype=np.int64)).reshape(-1)
    if isinstance(dataset, IndexedDataset):
        return get_labels(dataset.dataset)
    if isinstance(dataset, Subset):
        return get_labels(dataset.dataset)[torch.as_tensor(list(dataset.indices), dtype=torch.long)]
    for attr in ("targets", "labels"):
        value = getattr(dataset, attr, None)
        if value is not None:
            return get_labels(value)
    return torch.tensor([int(dataset[i][1]) for i in range(len(dataset))], dtype=torch.long)  # type: ignore


def _check_fraction(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a float in the open interval (0, 1), got {value!r}")
    return float(value)


def _check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**32:
        raise ValueError(f"seed must be an int in [0, 2**32), got {seed!r}")
    return seed


def stratified_split(labels: Tensor | Sequence[int] | np.ndarray, fraction: float, *,
                     seed: int = 0) -> tuple[Tensor, Tensor]:
    r"""Hold out ``fraction`` of every class, deterministically.

    For each class ``c`` (in increasing label order) with :math:`n_c` samples,
    :math:`\lfloor f n_c + 1/2 \rfloor` samples (clamped to :math:`[1, n_c - 1]`
    when :math:`n_c \ge 2`; a class with a single sample stays in the kept part)
    are held out, chosen by a permutation from ``numpy.random.RandomState(seed)``
    (whose stream numpy guarantees stable across versions). The same labels and
    seed always give the same split.

    Args:
        labels: class labels ``[N]``.
        fraction (float): share held out, in ``(0, 1)``.
        seed (int): random seed.

    Returns:
        ``(kept, held)``: sorted ``[N - M]`` and ``[M]`` long tensors of indices,
        disjoint, together ``0 .. N - 1``.
    """
    fraction = _check_fraction("fraction", fraction)
    seed = _check_seed(seed)
    y = get_labels(labels).numpy()
    rng = np.random.RandomState(seed)
    held: list[np.ndarray] = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        n = members.size
        m = int(np.floor(fraction * n + 0.5))
        m = min(max(m, 1), n - 1) if n >= 2 else 0
        held.append(members[rng.permutation(n)[:m]])
    held_idx = np.sort(np.concatenate(held)) if held else np.zeros(0, dtype=np.int64)
    mask = np.ones(y.size, dtype=bool)
    mask[held_idx] = False
    return torch.from_numpy(np.flatnonzero(mask).astype(np.int64)), torch.from_numpy(held_idx.astype(np.int64))


def train_val_split(dataset: Dataset | Tensor | Sequence[int] | np.ndarray, val_fraction: float = 0.1, *,
                    seed: int = 0, stratify: bool = True) -> tuple[Tensor, Tensor]:
    r"""Indices of a deterministic train/validation split of a training set.

    Hyper-parameters and checkpoints are selected on the validation part, never
    on the test split (see the design notes, section 5)::

        train_idx, val_idx = train_val_split(train_set, 0.1, seed=0)
        fit_set, val_set = Subset(train_set, train_idx), Subset(train_set, val_idx)

    Args:
        dataset: a dataset (labels read with :func:`get_labels`) or its labels ``[N]``.
        val_fraction (float): share held out for validation, in ``(0, 1)``.
        seed (int): random seed.
        stratify (bool): keep class proportions (:func:`stratified_split`); otherwise
            a plain seeded permutation holds out :math:`\lfloor f N + 1/2 \rfloor` samples.

    Returns:
        ``(train_idx, val_idx)``: sorted, disjoint long tensors covering ``0 .. N - 1``.
    """
    val_fraction = _check_fraction("val_fraction", val_fraction)
    seed = _check_seed(seed)
    if stratify:
        return stratified_split(get_labels(dataset), val_fraction, seed=seed)
    n = len(dataset)  # type: ignore[arg-type]
    m = min(max(int(np.floor(val_fraction * n + 0.5)), 1), n - 1) if n >= 2 else 0
    perm = np.random.RandomState(seed).permutation(n)
    val_idx = np.sort(perm[:m]).astype(np.int64)
    train_idx = np.sort(perm[m:]).astype(np.int64)
    return torch.from_numpy(train_idx), torch.from_numpy(val_idx)
