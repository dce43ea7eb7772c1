"""Static facts about the supported datasets: shapes, classes, normalisation, augmentation.

Normalisation constants (per channel, on images scaled to ``[0, 1]``):

* ``fashion-mnist``: mean 0.2860, std 0.3530 -- pixel statistics of the
  60,000 training images (recomputed from Debian's ``dataset-fashion-mnist``).
* ``digits``: mean 0.3053, std 0.3760 -- statistics of all 1,797 scikit-learn
  digits with pixels divided by 16 (their maximum).
* ``cifar10``: mean (0.4914, 0.4822, 0.4465), std (0.2470, 0.2435, 0.2616) --
  per-pixel statistics of the 50,000 training images.
* ``cifar100``: mean (0.5071, 0.4865, 0.4409), std (0.2673, 0.2564, 0.2762) --
  the same for CIFAR-100 (the values used by the CRD / mdistiller code bases).
* ``stl10``: mean (0.4467, 0.4398, 0.4066), std (0.2603, 0.2566, 0.2713) --
  statistics of the 5,000 labelled training images.
* ``mini-imagenet``: ImageNet's mean (0.485, 0.456, 0.406) and std
  (0.229, 0.224, 0.225); Mini-ImageNet is a subset of ImageNet.

Training augmentation: random crop of the original size after zero padding of
``crop_padding`` pixels, plus a random horizontal flip where ``hflip`` is set
(CIFAR, STL-10, Mini-ImageNet). Fashion-MNIST gets the light 2-pixel crop only,
digits none (8x8 digits do not survive cropping or flipping).
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DatasetInfo:
    """Facts about one dataset (images are square: ``image_size`` x ``image_size``)."""

    name: str
    channels: int
    image_size: int
    num_classes: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    hflip: bool
    num_train: int | None
    num_test: int | None
    url: str
    #: Human-readable name of every label ``0 .. num_classes - 1`` in label order; ``None``
    #: when they depend on the files (Mini-ImageNet: use :func:`class_names` with the dataset).
    class_names: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.class_names is not None and len(self.class_names) != self.num_classes:
            raise ValueError(f"{self.name}: {len(self.class_names)} class names for {self.num_classes} classes")

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(channels, image_size, image_size)``."""
        return (self.channels, self.image_size, self.image_size)


_FASHION = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
            "Ankle boot")
_CIFAR10 = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
#: CIFAR-100's fine labels in label order (``fine_label_names`` of the official ``meta``: alphabetical).
_CIFAR100 = tuple("""
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel
    can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur
    dolphin elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion
    lizard lobster man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree
    pear pickup_truck pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea
    seal shark shrew skunk skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table
    tank telephone television tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman
    worm""".split())
_STL10 = ("airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck")

DATASET_INFO: dict[str, DatasetInfo] = {
    "fashion-mnist": DatasetInfo(
        "fashion-mnist", 1, 28, 10, (0.2860,), (0.3530,), 2, False, 60000, 10000,
        "https://github.com/zalandoresearch/fashion-mnist", _FASHION),
    "digits": DatasetInfo(
        "digits", 1, 8, 10, (0.3053,), (0.3760,), 0, False, 1438, 359,
        "https://scikit-learn.org/stable/modules/generated/sklearn.datasets.load_digits.html",
        tuple(str(d) for d in range(10))),
    "cifar10": DatasetInfo(
        "cifar10", 3, 32, 10, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), 4, True, 50000, 10000,
        "https://www.cs.toronto.edu/~kriz/cifar.html", _CIFAR10),
    "cifar100": DatasetInfo(
        "cifar100", 3, 32, 100, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), 4, True, 50000, 10000,
        "https://www.cs.toronto.edu/~kriz/cifar.html", _CIFAR100),
    "stl10": DatasetInfo(
        "stl10", 3, 96, 10, (0.4467, 0.4398, 0.4066), (0.2603, 0.2566, 0.2713), 12, True, 5000, 8000,
        "https://cs.stanford.edu/~acoates/stl10/", _STL10),
    "mini-imagenet": DatasetInfo(
        "mini-imagenet", 3, 84, 100, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225), 8, True, 50000, 10000,
        "https://github.com/twitter/meta-learning-lstm/tree/master/data/miniImagenet"),
}

#: Names accepted by :func:`tg_cnn2gnn.data.get_dataset` and friends.
DATASETS: tuple[str, ...] = tuple(DATASET_INFO)
SPLITS: tuple[str, ...] = ("train", "test")


def canonical_name(name: object) -> str:
    """Return the registry key for ``name`` (case, ``_`` and ``-`` insensitive), or raise."""
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r} ({type(name).__name__}); "
                        f"valid names: {', '.join(DATASETS)}")
    key = name.strip().lower().replace("_", "-")
    key = {"fashionmnist": "fashion-mnist", "cifar-10": "cifar10", "cifar-100": "cifar100",
           "stl-10": "stl10", "miniimagenet": "mini-imagenet"}.get(key, key)
    if key not in DATASET_INFO:
        raise ValueError(f"unknown dataset name {name!r}; valid names: {', '.join(DATASETS)}")
    return key


def dataset_info(name: str) -> DatasetInfo:
    """The :class:`DatasetInfo` of ``name``; unknown names raise a :class:`ValueError` listing the valid ones."""
    return DATASET_INFO[canonical_name(name)]


def class_names(name: str, dataset: object = None) -> tuple[str, ...]:
    """The names of labels ``0 .. num_classes - 1`` of dataset ``name``.

    Fixed for every dataset but Mini-ImageNet, whose labels index the sorted class names
    (WordNet ids) found in its files: pass the loaded dataset (its ``classes``) for it.
    """
    info = dataset_info(name)
    if info.class_names is not None:
        return info.class_names
    classes = getattr(dataset, "classes", None)
    if classes is None:
        raise ValueError(f"{info.name} has no fixed class names: its labels index the sorted class names "
                         "(WordNet ids) found under its root; pass the loaded dataset, "
                         "e.g. class_names(name, MiniImageNet(root)), to get them")
    return tuple(str(c) for c in classes)


def check_split(split: object) -> str:
    if split not in SPLITS:
        raise ValueError(f"split={split!r} is not supported; allowed values: {', '.join(map(repr, SPLITS))} "
                         "(use tg_cnn2gnn.data.train_val_split to hold out a validation set from 'train')")
    return split  # type: ignore[return-value]
