"""Dataset loaders: Fashion-MNIST, scikit-learn digits, CIFAR-10/100, STL-10, Mini-ImageNet.

Every loader here is a map-style dataset whose items are ``(image, label)``
with an integer label, that has a ``targets`` (or, for STL-10, ``labels``)
attribute, and a ``to_tensors()`` method returning all images as a float
tensor ``[N, C, H, W]`` in ``[0, 1]`` and the labels as a long tensor ``[N]``.

Where torchvision has the dataset, the loader is a subclass of torchvision's
class (same on-disk layout, same ``download=True``). Nothing is downloaded
unless ``download=True`` is passed.

**Integrity checks.** torchvision's CIFAR and STL-10 classes verify the MD5 of
every file against the official release and refuse anything else. The
subclasses here keep that check by default (``check_integrity=True``) and let
the caller turn it off with ``check_integrity=False``: they override
torchvision's ``_check_integrity`` (and CIFAR's ``_load_meta``), the hooks
torchvision itself calls, so that only the existence of the files of the
requested split is checked. This serves copies that are valid but not
byte-identical (re-pickled, converted) and small files written by tests.
They also only require the files of the requested split (torchvision's STL-10
otherwise insists on the 2.6 GB ``unlabeled_X.bin`` even for ``split="test"``).

**Where files are looked for.** ``root=None`` means :func:`default_root`: the
environment variable ``TG_CNN2GNN_DATA`` if set, else ``./data``.
"""
from __future__ import annotations

import csv
import functools
import os
import pickle
from typing import Any, Callable

import numpy as np
import torch
import torchvision
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS
from torchvision.datasets.utils import check_integrity as _tv_check_integrity

from tg_cnn2gnn.data.idx import read_idx
from tg_cnn2gnn.data.info import DATASETS, canonical_name, check_split, dataset_info
from tg_cnn2gnn.data.split import _check_fraction, _check_seed, get_labels, stratified_split
from tg_cnn2gnn.data.transforms import get_transform
from tg_cnn2gnn.data.transforms import normalize as _normalize

DATA_ENV = "TG_CNN2GNN_DATA"

#: System folders searched for Fashion-MNIST's idx files after ``root``
#: (Debian/Ubuntu's ``dataset-fashion-mnist`` package installs them here).
FASHION_MNIST_SYSTEM_DIRS: list[str] = ["/usr/share/datasets/fashion-mnist"]


def default_root() -> str:
    """``$TG_CNN2GNN_DATA`` if set, else ``./data``."""
    return os.environ.get(DATA_ENV) or os.path.join(".", "data")


def _resolve_root(root: str | os.PathLike | None) -> str:
    return default_root() if root is None else os.path.expanduser(os.fspath(root))


def _require_files(folder: str, names: list[str], what: str, how: str) -> None:
    missing = [n for n in names if not os.path.isfile(os.path.join(folder, n))]
    if missing:
        raise FileNotFoundError(
            f"{what} not found: expected {', '.join(missing)} in {os.path.abspath(folder)}. {how}")


def _to_unit_float(images: np.ndarray | Tensor) -> Tensor:
    t = torch.as_tensor(np.ascontiguousarray(images)) if isinstance(images, np.ndarray) else images
    return t.to(torch.float32).div_(255.0)


# --------------------------------------------------------------------------- Fashion-MNIST
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
        root = _resolve_root(root)
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
        return torch.from_numpy(images.astype(np.uint8)), torch.from_numpy(labels.astype(np.int64))

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``[N, 1, 28, 28]`` in ``[0, 1]`` and labels ``[N]``."""
        return _to_unit_float(self.data.unsqueeze(1)), self.targets.to(torch.long).clone()


# --------------------------------------------------------------------------- digits
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


# --------------------------------------------------------------------------- CIFAR
_MD5_HINT = ("pass check_integrity=False to accept files that are valid but not byte-identical to the "
             "official release, or download them again (download=True)")


class CIFAR10(torchvision.datasets.CIFAR10):
    r"""CIFAR-10 from the official python pickles (``root/cifar-10-batches-py``).

    Same as :class:`torchvision.datasets.CIFAR10`, plus ``check_integrity``
    (see the module docstring), a :class:`FileNotFoundError` that says where
    files are expected, and :meth:`to_tensors`. Items are
    ``(PIL image 32x32 RGB, label)``; ``data`` is ``[N, 32, 32, 3]`` uint8.
    """

    def __init__(self, root: str | os.PathLike | None = None, train: bool = True,
                 transform: Callable | None = None, target_transform: Callable | None = None,
                 download: bool = False, *, check_integrity: bool = True) -> None:
        root = _resolve_root(root)
        self.check_md5 = bool(check_integrity)
        self.train = train
        if not download:
            names = [f for f, _ in self._split_files()]
            if self.check_md5:
                names.append(self.meta["filename"])
            _require_files(os.path.join(root, self.base_folder), names, f"{type(self).__name__} data",
                           f"Pass download=True to fetch {self.url} (extracts {self.base_folder}/ into root), "
                           "or extract that archive into root yourself.")
        try:
            super().__init__(root, train=train, transform=transform, target_transform=target_transform,
                             download=download)
        except RuntimeError as err:
            if download:
                raise
            raise ValueError(f"{type(self).__name__} files in {os.path.join(root, self.base_folder)} fail "
                             f"torchvision's MD5 check ({err}); {_MD5_HINT}") from err

    def _split_files(self) -> list[list[str]]:
        return self.train_list if self.train else self.test_list

    def _check_integrity(self) -> bool:
        for name, md5 in self._split_files():
            path = os.path.join(self.root, self.base_folder, name)
            if not _tv_check_integrity(path, md5 if self.check_md5 else None):
                return False
        return True

    def _load_meta(self) -> None:
        if self.check_md5:
            return super()._load_meta()
        path = os.path.join(self.root, self.base_folder, self.meta["filename"])
        if os.path.isfile(path):
            with open(path, "rb") as f:
                self.classes = list(pickle.load(f, encoding="latin1")[self.meta["key"]])
        else:
            self.classes = [str(c) for c in range(dataset_info(self._name).num_classes)]
        self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    _name = "cifar10"

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``[N, 3, 32, 32]`` in ``[0, 1]`` and labels ``[N]``."""
        return _to_unit_float(self.data.transpose(0, 3, 1, 2)), torch.as_tensor(self.targets, dtype=torch.long)


class CIFAR100(CIFAR10):
    r"""CIFAR-100 (fine labels) from the official python pickles (``root/cifar-100-python``);
    see :class:`CIFAR10`."""

    _name = "cifar100"
    base_folder = torchvision.datasets.CIFAR100.base_folder
    url = torchvision.datasets.CIFAR100.url
    filename = torchvision.datasets.CIFAR100.filename
    tgz_md5 = torchvision.datasets.CIFAR100.tgz_md5
    train_list = torchvision.datasets.CIFAR100.train_list
    test_list = torchvision.datasets.CIFAR100.test_list
    meta = torchvision.datasets.CIFAR100.meta


# --------------------------------------------------------------------------- STL-10
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
        root = _resolve_root(root)
        self.check_md5 = bool(check_integrity)
        if split not in self._SPLIT_FILES:
            raise ValueError(f"split={split!r} is not supported; allowed values: "
                             f"{', '.join(map(repr, self._SPLIT_FILES))}")
        self.split = split
        if not download:
            _require_files(os.path.join(root, self.base_folder), list(self._SPLIT_FILES[split]), "STL-10 data",
                           f"Pass download=True to fetch {self.url} (2.6 GB, extracts {self.base_folder}/ "
                           "into root), or extract that archive into root yourself.")
        try:
            super().__init__(root, split=split, folds=folds, transform=transform,
                             target_transform=target_transform, download=download)
        except RuntimeError as err:
            if download:
                raise
            raise ValueError(f"STL-10 files in {os.path.join(root, self.base_folder)} fail torchvision's "
                             f"MD5 check ({err}); {_MD5_HINT}") from err
        assert self.labels is not None
        self.labels = self.labels.astype(np.int64)

    def _check_integrity(self) -> bool:
        md5s = dict(self.train_list + self.test_list)
        for name in self._SPLIT_FILES[self.split]:
            path = os.path.join(self.root, self.base_folder, name)
            if not _tv_check_integrity(path, md5s[name] if self.check_md5 else None):
                return False
        return True

    @property
    def targets(self) -> np.ndarray:
        """Alias of ``labels`` (the name every other loader uses)."""
        return self.labels  # type: ignore[return-value]

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``[N, 3, 96, 96]`` in ``[0, 1]`` and labels ``[N]``."""
        return _to_unit_float(self.data), torch.as_tensor(self.labels, dtype=torch.long)


# --------------------------------------------------------------------------- Mini-ImageNet
MINI_IMAGENET_HOW = (
    "Mini-ImageNet has no official archive: build it from ImageNet with the split CSVs of Ravi & Larochelle "
    "(https://github.com/twitter/meta-learning-lstm/tree/master/data/miniImagenet) or use a prepared copy. "
    "Accepted layouts: root/images/*.jpg with root/{train,val,test}.csv (columns filename,label); "
    "root/{train,val,test}/<class>/*.jpg; or root/<class>/*.jpg. "
    "root may also contain it as mini-imagenet/, miniImageNet/, mini_imagenet/ or miniimagenet/.")


def _is_image(name: str) -> bool:
    return name.lower().endswith(IMG_EXTENSIONS)


def _class_folders(folder: str) -> dict[str, list[str]]:
    """``{class: sorted image paths}`` for every sub-folder of ``folder`` that holds images."""
    out: dict[str, list[str]] = {}
    if not os.path.isdir(folder):
        return out
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.is_dir():
            files = sorted(os.path.join(entry.path, f) for f in os.listdir(entry.path) if _is_image(f))
            if files:
                out[entry.name] = files
    return out


class MiniImageNet(Dataset):
    r"""Mini-ImageNet (100 ImageNet classes, 600 images each) for *classification*.

    The usual Ravi & Larochelle split CSVs (64 train / 16 val / 20 test classes)
    serve few-shot learning: their class sets are disjoint, so they cannot be
    used as a classification train/test split. Like the classification
    protocols this paper follows, all 100 classes are pooled and every class's
    images are split deterministically: ``test_fraction`` of each class
    (default 1/6: 500 train / 100 test images per class, 50,000 / 10,000 in
    all), chosen by :func:`stratified_split` with ``seed`` after sorting
    images by (class, file path). Labels index the sorted class names (WordNet
    ids).

    Layouts (searched in ``root`` and ``root/{mini-imagenet, miniImageNet,
    mini_imagenet, miniimagenet}``):

    * ``images/*.jpg`` + any of ``train.csv``, ``val.csv``, ``test.csv`` with a
      header ``filename,label`` (Ravi & Larochelle's format);
    * ``{train,val,test}/<class>/*.jpg``: pooled and re-split as above, except
      when ``train`` and ``test`` hold the same classes, then those folders are
      already a classification split and are used as they are (``val`` unused);
    * ``<class>/*.jpg``: pooled and split as above.

    Images are converted to RGB and resized to ``image_size`` x ``image_size``
    (bilinear with antialiasing; skipped when already that size, as in the
    84x84 copies). Items are ``(PIL image, label)``.

    Args:
        root: folder holding the dataset (default: :func:`default_root`).
        split (str): ``"train"`` or ``"test"``.
        transform, target_transform: applied to image and label.
        test_fraction (float): share of each class for the test split.
        seed (int): seed of the per-class split.
        image_size (int, optional): output size; ``None`` keeps the files' size.
    """

    def __init__(self, root: str | os.PathLike | None = None, split: str = "train",
                 transform: Callable | None = None, target_transform: Callable | None = None, *,
                 test_fraction: float = 1 / 6, seed: int = 0, image_size: int | None = 84) -> None:
        root = _resolve_root(root)
        self.split = check_split(split)
        test_fraction = _check_fraction("test_fraction", test_fraction)
        seed = _check_seed(seed)
        if image_size is not None and (isinstance(image_size, bool) or not isinstance(image_size, int)
                                       or image_size < 1):
            raise ValueError(f"image_size must be a positive int or None, got {image_size!r}")
        self.image_size = image_size
        self.transform, self.target_transform = transform, target_transform
        folders = [root] + [os.path.join(root, d) for d in
                            ("mini-imagenet", "miniImageNet", "mini_imagenet", "miniimagenet")]
        found = None
        for folder in folders:
            found = self._discover(folder)
            if found is not None:
                break
        if found is None:
            raise FileNotFoundError(f"Mini-ImageNet not found in any of: {', '.join(folders)}. {MINI_IMAGENET_HOW}")
        self.root, self.layout, pools = found
        if isinstance(pools, tuple):  # a given classification split: (train entries, test entries)
            entries = pools[0] if split == "train" else pools[1]
            classes = sorted({c for _, c in pools[0]} | {c for _, c in pools[1]})
        else:
            pools.sort(key=lambda e: (e[1], e[0]))
            classes = sorted({c for _, c in pools})
            to_idx = {c: i for i, c in enumerate(classes)}
            labels = torch.tensor([to_idx[c] for _, c in pools], dtype=torch.long)
            train_idx, test_idx = stratified_split(labels, test_fraction, seed=seed)
            keep = train_idx if split == "train" else test_idx
            entries = [pools[i] for i in keep.tolist()]
        self.classes = classes
        self.class_to_idx = {c: i for i, c in enumerate(classes)}
        self.samples: list[tuple[str, int]] = [(p, self.class_to_idx[c]) for p, c in entries]
        self.targets = [t for _, t in self.samples]

    @staticmethod
    def _discover(folder: str) -> tuple[str, str, Any] | None:
        if not os.path.isdir(folder):
            return None
        csvs = [os.path.join(folder, f"{s}.csv") for s in ("train", "val", "test")]
        images_dir = os.path.join(folder, "images")
        if os.path.isdir(images_dir) and any(os.path.isfile(c) for c in csvs):
            entries: list[tuple[str, str]] = []
            for path in csvs:
                if os.path.isfile(path):
                    with open(path, newline="") as f:
                        rows = list(csv.reader(f))
                    if rows and [h.strip().lower() for h in rows[0][:2]] == ["filename", "label"]:
                        rows = rows[1:]
                    for row in rows:
                        if len(row) < 2:
                            continue
                        image = os.path.join(images_dir, row[0].strip())
                        if not os.path.isfile(image):
                            raise FileNotFoundError(f"{path} lists {row[0]!r} but {image} does not exist")
                        entries.append((image, row[1].strip()))
            return folder, "csv", entries
        splits = {s: _class_folders(os.path.join(folder, s)) for s in ("train", "val", "test")}
        if any(splits.values()):
            if splits["train"] and splits["test"] and set(splits["train"]) == set(splits["test"]):
                pair = tuple([(p, c) for c, paths in splits[s].items() for p in paths] for s in ("train", "test"))
                return folder, "split-folders (given classification split)", pair
            return folder, "split-folders", [(p, c) for per in splits.values() for c, ps in per.items() for p in ps]
        flat = _class_folders(folder)
        if len(flat) >= 2:
            return folder, "class-folders", [(p, c) for c, ps in flat.items() for p in ps]
        return None

    def __len__(self) -> int:
        return len(self.samples)

    def _load(self, path: str) -> Image.Image:
        with Image.open(path) as img:
            img = img.convert("RGB")
        if self.image_size is not None and img.size != (self.image_size, self.image_size):
            img = img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
        return img

    def __getitem__(self, index: int) -> tuple[Any, Any]:
        path, target = self.samples[index]
        img: Any = self._load(path)
        if self.transform is not None:
            img = self.transform(img)
        if self.target_transform is not None:
            target = self.target_transform(target)
        return img, target

    def to_tensors(self) -> tuple[Tensor, Tensor]:
        """All images ``[N, 3, S, S]`` in ``[0, 1]`` and labels ``[N]`` (loads every file:
        50,000 84x84 images take 4.2 GB as float32). Needs a fixed ``image_size``."""
        if self.image_size is None:
            raise ValueError("to_tensors needs image_size set (images of different sizes cannot be stacked)")
        x = torch.empty((len(self), 3, self.image_size, self.image_size), dtype=torch.uint8)
        for i, (path, _) in enumerate(self.samples):
            x[i] = torch.from_numpy(np.array(self._load(path), dtype=np.uint8)).permute(2, 0, 1)
        return _to_unit_float(x), torch.as_tensor(self.targets, dtype=torch.long)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(split={self.split!r}, num_samples={len(self)}, "
                f"num_classes={len(self.classes)}, layout={self.layout!r}, root={self.root!r})")


# --------------------------------------------------------------------------- entry points
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
        check_integrity (bool): verify MD5s of CIFAR / STL-10 files (see module docs).
        **kwargs: loader-specific options: ``test_fraction``, ``seed`` (digits,
            mini-imagenet), ``image_size`` (mini-imagenet), ``folds`` (stl10).

    Returns:
        a map-style dataset with items ``(image, label)`` and a ``to_tensors()`` method.
    """
    key = canonical_name(name)
    check_split(split)
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
    dataset = get_dataset(key, root, split, transform=None, **kwargs)
    x, y = dataset.to_tensors()  # type: ignore[attr-defined]
    return (_normalize(x, key) if normalize else x), y


__all__ = ["DATASETS", "FashionMNIST", "Digits", "CIFAR10", "CIFAR100", "STL10", "MiniImageNet",
           "get_dataset", "load_tensors", "default_root", "get_labels"]
