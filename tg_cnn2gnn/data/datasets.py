"""Dataset entry points: :func:`get_dataset` and :func:`load_tensors`, by name.

Every loader is a map-style dataset whose items are ``(image, label)`` with an integer
label, that has a ``targets`` (or, for STL-10, ``labels``) attribute, and a
``to_tensors()`` method returning all images as a float tensor ``[N, C, H, W]`` in
``[0, 1]`` and the labels as a long tensor ``[N]``. The loaders live in their own
modules (:mod:`.fashion_mnist`, :mod:`.digits`, :mod:`.cifar`, :mod:`.stl10`,
:mod:`.mini_imagenet`); shared file helpers (root, integrity) in :mod:`.files`. Where
torchvision has the dataset, the loader is a subclass of torchvision's class (same
on-disk layout, same ``download=True``). Nothing is downloaded unless
``download=True`` is passed; no file is ever unpickled with plain :mod:`pickle`.
"""
from __future__ import annotations

import os
from typing import Any, Callable

from torch import Tensor
from torch.utils.data import Dataset

from tg_cnn2gnn.data.cifar import CIFAR10, CIFAR100
from tg_cnn2gnn.data.digits import Digits
from tg_cnn2gnn.data.fashion_mnist import FASHION_MNIST_SYSTEM_DIRS, FashionMNIST
from tg_cnn2gnn.data.files import DATA_ENV, check_flag, default_root
from tg_cnn2gnn.data.info import DATASETS, canonical_name, check_split
from tg_cnn2gnn.data.mini_imagenet import MINI_IMAGENET_HOW, MiniImageNet
from tg_cnn2gnn.data.split import get_labels
from tg_cnn2gnn.data.stl10 import STL10
from tg_cnn2gnn.data.transforms import get_transform
from tg_cnn2gnn.data.transforms import normalize as _normalize


def get_dataset(name: str, root: str | os.PathLike | None = None, split: str = "train", *,
                transform: Callable | str | None = "default", target_transform: Callable | None = None,
                augment: bool | None = None, normalize: bool = True, download: bool = False,
                check_integrity: bool = True, **kwargs: Any) -> Dataset:
    r"""A dataset by name (``fashion-mnist``, ``digits``, ``cifar10``, ``cifar100``, ``stl10``, ``mini-imagenet``).

    Args:
        name (str): dataset name (case, ``_`` and ``-`` insensitive).
        root (str, optional): data folder (default :func:`default_root`); ``digits`` needs none.
        split (str): ``"train"`` or ``"test"`` (hold out validation data from
            ``"train"`` with :func:`train_val_split`).
        transform: ``"default"`` (the dataset's pipeline from
            :func:`get_transform`: augmentation when ``split == "train"``, tensor
            conversion, normalisation), ``None`` (raw items: PIL images, or
            ``[1, 8, 8]`` tensors in ``[0, 1]`` for digits) or any callable.
        target_transform: applied to labels.
        augment (bool, optional): override the default pipeline's augmentation.
        normalize (bool): whether the default pipeline normalises.
        download (bool): let torchvision download missing files (``fashion-mnist``,
            ``cifar10``, ``cifar100``, ``stl10``). Default: never download.
        check_integrity (bool): verify MD5s of CIFAR / STL-10 files (:data:`CHECK_INTEGRITY_HELP`).
        **kwargs: loader-specific options: ``test_fraction``, ``seed`` (digits,
            mini-imagenet), ``image_size`` (mini-imagenet), ``folds`` (stl10).

    Returns:
        a map-style dataset with items ``(image, label)`` and a ``to_tensors()`` method.
    """
    key = canonical_name(name)
    check_split(split)
    download = check_flag("download", download)
    check_integrity = check_flag("check_integrity", check_integrity)
    normalize = check_flag("normalize", normalize)
    if augment is not None:
        augment = check_flag("augment", augment)
    if isinstance(transform, str):
        if transform != "default":
            raise ValueError(f"transform={transform!r} is not supported; pass 'default', None or a callable")
        transform = get_transform(key, split == "train", augment=augment, normalize=normalize)
    elif augment is not None:
        raise ValueError("augment only applies to transform='default'; put augmentation in your own transform")
    if transform is not None and not callable(transform):
        raise TypeError(f"transform must be 'default', None or a callable, got {type(transform).__name__}")
    train = split == "train"
    if key == "digits":
        return Digits(split, transform, target_transform, **kwargs)
    if key == "mini-imagenet":
        if download:
            raise ValueError("download=True is not available for mini-imagenet: " + MINI_IMAGENET_HOW)
        return MiniImageNet(root, split, transform, target_transform, **kwargs)
    if key == "fashion-mnist":
        return FashionMNIST(root, train, transform, target_transform, download=download, **kwargs)
    if key == "stl10":
        return STL10(root, split, transform=transform, target_transform=target_transform, download=download,
                     check_integrity=check_integrity, **kwargs)
    cls = CIFAR10 if key == "cifar10" else CIFAR100
    return cls(root, train, transform, target_transform, download=download, check_integrity=check_integrity,
               **kwargs)


def load_tensors(name: str, split: str = "train", root: str | os.PathLike | None = None, *,
                 normalize: bool = True, **kwargs: Any) -> tuple[Tensor, Tensor]:
    r"""A whole split as tensors: ``(x [N, C, H, W] float32, y [N] long)``.

    Meant for the datasets that fit in memory (digits: 0.5 MB; Fashion-MNIST:
    188 MB; CIFAR: 614 MB per training set). ``x`` is normalised with the
    dataset's mean and std (:data:`DATASET_INFO`) unless ``normalize=False``
    (then in ``[0, 1]``); no augmentation (use :func:`augment_batch` per batch).

    Args:
        name (str): dataset name.
        split (str): ``"train"`` or ``"test"``.
        root (str, optional): data folder.
        normalize (bool): standardise per channel.
        **kwargs: forwarded to :func:`get_dataset` (``download``, ``check_integrity``, ...).
    """
    key = canonical_name(name)
    normalize = check_flag("normalize", normalize)
    dataset = get_dataset(key, root, split, transform=None, **kwargs)
    x, y = dataset.to_tensors()  # type: ignore[attr-defined]
    return (_normalize(x, key) if normalize else x), y


__all__ = ["DATASETS", "FashionMNIST", "Digits", "CIFAR10", "CIFAR100", "STL10", "MiniImageNet",
           "get_dataset", "load_tensors", "default_root", "get_labels", "DATA_ENV", "FASHION_MNIST_SYSTEM_DIRS"]
