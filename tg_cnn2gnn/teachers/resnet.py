"""ResNet-18/34/50/101/152 teachers built on :mod:`torchvision.models`.

torchvision's ResNets are ImageNet models: a 7x7 stride-2 convolution and a
3x3 stride-2 max-pool shrink the input 4x before the first residual stage,
which leaves a 32x32 CIFAR image with a 1x1 map after ``layer4``. For small
images the knowledge-distillation literature (CRD, mdistiller, and the paper's
CIFAR-100 tables) uses the *small-image stem*: a single 3x3 stride-1
convolution and no max-pool. :func:`resnet` picks the stem from
``image_size`` (``stem="auto"``: small for ``image_size <= 64``, ImageNet
above, i.e. for Mini-ImageNet 84x84 and STL-10 96x96) unless told otherwise.
"""
from __future__ import annotations

from typing import Callable

import torchvision
from torch import nn

from tg_cnn2gnn.functional._checks import check_choice
from tg_cnn2gnn.teachers._common import check_common

RESNET_DEPTHS: tuple[int, ...] = (18, 34, 50, 101, 152)
STEMS: tuple[str, ...] = ("auto", "small", "imagenet")
#: ``stem="auto"`` uses the small-image stem up to this image size (inclusive).
SMALL_STEM_MAX_SIZE = 64

_BUILDERS: dict[int, Callable[..., torchvision.models.ResNet]] = {
    18: torchvision.models.resnet18,
    34: torchvision.models.resnet34,
    50: torchvision.models.resnet50,
    101: torchvision.models.resnet101,
    152: torchvision.models.resnet152,
}


def resolve_stem(stem: str, image_size: int) -> str:
    """Return ``"small"`` or ``"imagenet"`` for ``stem`` in :data:`STEMS`."""
    check_choice("stem", stem, STEMS)
    if stem == "auto":
        return "small" if image_size <= SMALL_STEM_MAX_SIZE else "imagenet"
    return stem


def resnet(depth: int, num_classes: int, in_channels: int = 3, image_size: int = 32, *,
           stem: str = "auto") -> torchvision.models.ResNet:
    r"""A randomly initialised torchvision ResNet with a stem suited to the image size.

    Args:
        depth (int): one of 18, 34, 50, 101, 152.
        num_classes (int): number of output logits.
        in_channels (int): image channels (1 for grayscale replaces the first conv).
        image_size (int): side of the (square) input images; only used to pick the stem.
        stem (str): ``"small"`` (3x3 conv, stride 1, no max-pool), ``"imagenet"``
            (7x7 conv, stride 2, 3x3 max-pool) or ``"auto"`` (small for
            ``image_size <= 64``).

    Shapes:
        input :math:`(B, C_{in}, H, W)` with any :math:`H, W \ge 1`, output :math:`(B, \text{num\_classes})`.
    """
    num_classes, in_channels, image_size = check_common(num_classes, in_channels, image_size)
    if depth not in _BUILDERS:
        raise ValueError(f"depth={depth!r} is not a supported ResNet depth; allowed values: "
                         f"{', '.join(map(str, RESNET_DEPTHS))}")
    stem = resolve_stem(stem, image_size)
    model = _BUILDERS[depth](weights=None, num_classes=num_classes)
    if stem == "small":
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=3, stride=1, padding=1, bias=False)
        model.maxpool = nn.Identity()
    elif in_channels != 3:
        model.conv1 = nn.Conv2d(in_channels, 64, kernel_size=7, stride=2, padding=3, bias=False)
    # torchvision's own initialisation of conv1, applied to the replacement.
    nn.init.kaiming_normal_(model.conv1.weight, mode="fan_out", nonlinearity="relu")
    return model
