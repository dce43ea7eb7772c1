"""VGG-8/11/13/16/19 with batch norm, for images of any size.

The convolutional part comes from :func:`torchvision.models.vgg.make_layers`
(torchvision's configurations ``A``, ``B``, ``D``, ``E`` for VGG-11/13/16/19,
with batch norm). VGG-8 is not in torchvision; it follows the ``"S"``
configuration of the CRD / mdistiller code bases: five 3x3 convolutions of
64, 128, 256, 512, 512 channels, each followed by a pooling step, then one
linear layer.

Like the CIFAR VGGs of those code bases (and unlike torchvision's ImageNet
head with two 4096-unit layers), the head is a global average pool and one
``Linear(512, num_classes)``, so the network works at any input size. Of the
five pooling steps, the last is always the global average pool; of the four
max-pools before it, only the first ``min(4, floor(log2(image_size)))`` are
kept (the others become identities), so 8x8 digits still reach a 1x1 map
instead of an empty one.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.models.vgg import cfgs as _TV_CFGS
from torchvision.models.vgg import make_layers

from tg_cnn2gnn.teachers._common import check_common, init_conv_bn_linear

#: Layer configurations: int = 3x3 conv (+BN+ReLU) with that many channels, "M" = 2x2 max-pool.
VGG_CFGS: dict[int, list[int | str]] = {
    8: [64, "M", 128, "M", 256, "M", 512, "M", 512, "M"],
    11: list(_TV_CFGS["A"]),
    13: list(_TV_CFGS["B"]),
    16: list(_TV_CFGS["D"]),
    19: list(_TV_CFGS["E"]),
}
VGG_DEPTHS: tuple[int, ...] = tuple(VGG_CFGS)


class VGG(nn.Module):
    r"""VGG with batch norm and a global-average-pool + linear head.

    Args:
        depth (int): 8, 11, 13, 16 or 19.
        num_classes (int): number of output logits.
        in_channels (int): input channels.
        image_size (int): nominal input size; decides how many max-pools are kept
            (see the module docstring). Inputs of any size
            :math:`\ge 2^{\text{num\_pools}}` work.

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.
    """

    def __init__(self, depth: int, num_classes: int, in_channels: int = 3, image_size: int = 32) -> None:
        super().__init__()
        num_classes, in_channels, image_size = check_common(num_classes, in_channels, image_size)
        if depth not in VGG_CFGS:
            raise ValueError(f"depth={depth!r} is not a supported VGG depth; allowed values: "
                             f"{', '.join(map(str, VGG_DEPTHS))}")
        self.depth = depth
        self.num_pools = min(4, int(math.floor(math.log2(image_size))))
        features = make_layers(VGG_CFGS[depth], batch_norm=True)
        first = features[0]
        if in_channels != first.in_channels:
            features[0] = nn.Conv2d(in_channels, first.out_channels, kernel_size=3, padding=1)
        seen = 0
        for i, layer in enumerate(features):
            if isinstance(layer, nn.MaxPool2d):
                seen += 1
                if seen > self.num_pools:
                    features[i] = nn.Identity()
        self.features = features
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.classifier = nn.Linear(512, num_classes)
        init_conv_bn_linear(self, linear_std=0.01)

    def forward(self, x: Tensor) -> Tensor:
        x = self.avgpool(self.features(x))
        return self.classifier(torch.flatten(x, 1))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, num_pools={self.num_pools}"
