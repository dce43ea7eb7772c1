"""The teacher zoo: every CNN of the paper's tables by name, plus a tiny CNN."""
from __future__ import annotations

from functools import partial
from typing import Any, Callable

from torch import nn

from tg_cnn2gnn.teachers.resnet import resnet
from tg_cnn2gnn.teachers.simple import SimpleCNN
from tg_cnn2gnn.teachers.vgg import VGG
from tg_cnn2gnn.teachers.wrn import WideResNet

_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "simple-cnn": SimpleCNN,
    "resnet18": partial(resnet, 18),
    "resnet34": partial(resnet, 34),
    "resnet50": partial(resnet, 50),
    "resnet101": partial(resnet, 101),
    "resnet152": partial(resnet, 152),
    "vgg8": partial(VGG, 8),
    "vgg11": partial(VGG, 11),
    "vgg13": partial(VGG, 13),
    "vgg16": partial(VGG, 16),
    "vgg19": partial(VGG, 19),
    "wrn-16-2": partial(WideResNet, 16, 2),
    "wrn-40-1": partial(WideResNet, 40, 1),
    "wrn-40-2": partial(WideResNet, 40, 2),
}

#: Names accepted by :func:`build_teacher`: the paper's teachers (ResNet-34/50/101/152,
#: VGG-13/16/19, WRN-40-2) and students (ResNet-18, VGG-8, WRN-16-2, WRN-40-1),
#: VGG-11, and ``simple-cnn`` for tests and CPU demos. VGGs have batch norm.
TEACHERS: tuple[str, ...] = tuple(_REGISTRY)


def _canonical(name: object) -> str:
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {name!r} ({type(name).__name__}); "
                        f"valid names: {', '.join(TEACHERS)}")
    key = name.strip().lower().replace("_", "-")
    if key not in _REGISTRY:
        raise ValueError(f"unknown teacher name {name!r}; valid names: {', '.join(TEACHERS)}")
    return key


def build_teacher(name: str, num_classes: int, in_channels: int = 3, image_size: int = 32,
                  **kwargs: Any) -> nn.Module:
    r"""Build a randomly initialised CNN from :data:`TEACHERS`.

    Args:
        name (str): a name from :data:`TEACHERS` (case and ``_``/``-`` insensitive).
        num_classes (int): number of output logits.
        in_channels (int): 1 for grayscale, 3 for colour images.
        image_size (int): side of the square inputs the model is meant for
            (28 for Fashion-MNIST, 8 for digits, 32 for CIFAR, 84 for
            Mini-ImageNet, 96 for STL-10). ResNets use it to pick their stem
            (small 3x3 stem up to 64 px) and VGGs to decide how many max-pools
            to keep; every model accepts other input sizes too.
        **kwargs: forwarded to the family's constructor: ``stem`` for ResNets
            (``"auto"``, ``"small"``, ``"imagenet"``), ``dropout`` for WRNs,
            ``width`` for ``simple-cnn``.

    Returns:
        an :class:`torch.nn.Module` mapping :math:`(B, C_{in}, H, W)` images to
        :math:`(B, \text{num\_classes})` logits.
    """
    return _REGISTRY[_canonical(name)](num_classes, in_channels, image_size, **kwargs)
