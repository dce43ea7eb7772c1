"""Mini-ImageNet for classification, from image files (and the usual split CSVs).

File names read from the CSVs must stay inside ``images/`` (:func:`path_inside`), and
images are decoded only by the plain raster decoders of :data:`IMAGE_FORMATS` (PIL picks
a decoder by content, not by extension: a ``.jpg`` holding PostScript would otherwise be
handed to Ghostscript), with at most :data:`MAX_IMAGE_PIXELS` pixels.
"""
from __future__ import annotations

import csv
import os
from typing import Any, Callable

import numpy as np
import torch
from PIL import Image
from torch import Tensor
from torch.utils.data import Dataset
from torchvision.datasets.folder import IMG_EXTENSIONS

from tg_cnn2gnn.data.files import path_inside, resolve_root, to_unit_float
from tg_cnn2gnn.data.info import check_split
from tg_cnn2gnn.data.safe_pickle import load_pickle
from tg_cnn2gnn.data.split import _check_fraction, _check_seed, stratified_split

#: The only decoders PIL may use for dataset images.
IMAGE_FORMATS: tuple[str, ...] = ("JPEG", "PNG", "BMP", "PPM", "TIFF", "WEBP", "GIF")
#: Largest image accepted, in pixels (PIL's own decompression-bomb threshold).
MAX_IMAGE_PIXELS: int = 89_478_485


def load_image(path: str, size: int | None) -> Image.Image:
    """The RGB image at ``path``, resized to ``size`` x ``size`` (bilinear, antialiased) unless
    ``None`` or already that size; refuses other formats and oversized images with a ValueError."""
    try:
        img = Image.open(path, formats=IMAGE_FORMATS)
    except (Image.UnidentifiedImageError, Image.DecompressionBombError, OSError) as err:
        raise ValueError(f"{path} is not an image in one of the accepted formats "
                         f"({', '.join(IMAGE_FORMATS)}): {err}") from None
    with img:
        w, h = img.size
        if w * h > MAX_IMAGE_PIXELS:
            raise ValueError(f"{path} is {w}x{h} pixels, more than the {MAX_IMAGE_PIXELS} accepted")
        img = img.convert("RGB")
    if size is not None and img.size != (size, size):
        img = img.resize((size, size), Image.Resampling.BILINEAR)
    return img


MINI_IMAGENET_HOW = (
    "Mini-ImageNet has no official archive: build it from ImageNet with the split CSVs of Ravi & Larochelle "
    "(https://github.com/twitter/meta-learning-lstm/tree/master/data/miniImagenet) or use a prepared copy. "
    "Accepted layouts: root/images/*.jpg with root/{train,val,test}.csv (columns filename,label); "
    "root/{train,val,test}/<class>/*.jpg; root/<class>/*.jpg; or the pickled copy "
    "root/mini-imagenet-cache-{train,val,test}.pkl (image_data + class_dict). "
    "root may also contain it as mini-imagenet/, miniImageNet/, mini_imagenet/ or miniimagenet/.")


#: The pickled copy many few-shot code bases use: one dict per split with ``image_data``
#: (uint8 ``[N, H, W, 3]``) and ``class_dict`` (``{wnid: [row indices]}``).
PICKLE_FILES = tuple(f"mini-imagenet-cache-{s}.pkl" for s in ("train", "val", "test"))


def _pickle_pools(folder: str) -> tuple[list[tuple[str, str]], dict[str, np.ndarray]] | None:
    """Entries ``(file#row, wnid)`` and arrays ``{file: image_data}`` of the pickled layout,
    read with the restricted unpickler (:func:`~tg_cnn2gnn.data.safe_pickle.load_pickle`)."""
    paths = [os.path.join(folder, f) for f in PICKLE_FILES if os.path.isfile(os.path.join(folder, f))]
    if not paths:
        return None
    entries: list[tuple[str, str]] = []
    arrays: dict[str, np.ndarray] = {}
    for path in paths:
        obj = load_pickle(path)
        images = obj.get("image_data") if isinstance(obj, dict) else None
        classes = obj.get("class_dict") if isinstance(obj, dict) else None
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.ndim != 4 \
                or images.shape[3] != 3 or not isinstance(classes, dict):
            raise ValueError(f"{path} must hold a dict with 'image_data' (uint8 [N, H, W, 3]) and 'class_dict' "
                             "({wnid: [row indices]})")
        arrays[path] = images
        for wnid, rows in classes.items():
            if not isinstance(rows, (list, tuple, np.ndarray)) or any(
                    not isinstance(r, (int, np.integer)) or not 0 <= r < len(images) for r in rows):
                raise ValueError(f"{path}: class_dict[{wnid!r}] must list row indices in [0, {len(images)})")
            entries += [(f"{path}#{int(r)}", str(wnid)) for r in rows]
    return entries, arrays


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
    * ``<class>/*.jpg``: pooled and split as above;
    * ``mini-imagenet-cache-{train,val,test}.pkl`` (dicts of ``image_data`` and
      ``class_dict``): pooled and split as above, read with the restricted unpickler.

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
        root = resolve_root(root)
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
        self._arrays: dict[str, np.ndarray] = {}
        for folder in folders:
            pickled = _pickle_pools(folder) if os.path.isdir(folder) else None
            if pickled is not None:
                found = (folder, "pickle", pickled[0])
                self._arrays = pickled[1]
                break
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
                        image = path_inside(images_dir, row[0].strip(), path)
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
        source, _, row = path.rpartition("#")
        if source in self._arrays:
            img = Image.fromarray(self._arrays[source][int(row)])
            if self.image_size is not None and img.size != (self.image_size, self.image_size):
                img = img.resize((self.image_size, self.image_size), Image.Resampling.BILINEAR)
            return img
        return load_image(path, self.image_size)

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
        return to_unit_float(x), torch.as_tensor(self.targets, dtype=torch.long)

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}(split={self.split!r}, num_samples={len(self)}, "
                f"num_classes={len(self.classes)}, layout={self.layout!r}, root={self.root!r})")
