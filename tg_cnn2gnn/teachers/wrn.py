"""Wide residual networks (Zagoruyko and Komodakis, 2016), CIFAR form.

WRN-d-k has ``n = (d - 4) / 6`` pre-activation basic blocks in each of three
groups of widths ``16k, 32k, 64k`` (strides 1, 2, 2) after a 3x3 convolution
with 16 channels, then batch norm, ReLU, global average pooling and one linear
layer. torchvision's ``wide_resnet50_2`` is a different (bottleneck, ImageNet)
family, so this one is written here. The network works at any input size.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tg_cnn2gnn.teachers._common import check_common, init_conv_bn_linear


class _PreActBlock(nn.Module):
    """BN-ReLU-conv3x3(stride)-BN-ReLU-[dropout]-conv3x3, identity or 1x1-conv shortcut."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_channels)
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.dropout = dropout
        self.shortcut: nn.Module | None = None
        if in_channels != out_channels or stride != 1:
            self.shortcut = nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False)

    def forward(self, x: Tensor) -> Tensor:
        pre = F.relu(self.bn1(x))
        # The projection sees the pre-activated input, as in the authors' code.
        residual = x if self.shortcut is None else self.shortcut(pre)
        out = self.conv1(pre)
        out = F.relu(self.bn2(out))
        if self.dropout > 0:
            out = F.dropout(out, p=self.dropout, training=self.training)
        return residual + self.conv2(out)


class WideResNet(nn.Module):
    r"""WRN-``depth``-``widen_factor``.

    Args:
        depth (int): total depth, ``depth = 6n + 4`` with ``n >= 1`` (10, 16, 22, 28, 40, ...).
        widen_factor (int): width multiplier k.
        num_classes (int): number of output logits.
        in_channels (int): input channels.
        dropout (float): dropout between the two convolutions of a block (0 in the
            distillation literature's WRN-40-2 / WRN-16-2 teachers).

    Shapes:
        input :math:`(B, C_{in}, H, W)`, output :math:`(B, \text{num\_classes})`.
    """

    def __init__(self, depth: int, widen_factor: int, num_classes: int, in_channels: int = 3,
                 image_size: int = 32, *, dropout: float = 0.0) -> None:
        super().__init__()
        num_classes, in_channels, image_size = check_common(num_classes, in_channels, image_size)
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 10 or (depth - 4) % 6:
            raise ValueError(f"depth={depth!r} is not valid for a wide ResNet; it must be 6n + 4 "
                             "with n >= 1 (10, 16, 22, 28, 40, ...)")
        if isinstance(widen_factor, bool) or not isinstance(widen_factor, int) or widen_factor < 1:
            raise ValueError(f"widen_factor must be a positive int, got {widen_factor!r}")
        if not 0.0 <= float(dropout) < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        self.depth, self.widen_factor = depth, widen_factor
        n = (depth - 4) // 6
        widths = (16, 16 * widen_factor, 32 * widen_factor, 64 * widen_factor)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        groups = []
        for g, stride in enumerate((1, 2, 2)):
            blocks = [_PreActBlock(widths[g] if b == 0 else widths[g + 1], widths[g + 1],
                                   stride if b == 0 else 1, float(dropout)) for b in range(n)]
            groups.append(nn.Sequential(*blocks))
        self.block1, self.block2, self.block3 = groups
        self.bn = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        init_conv_bn_linear(self)

    def forward(self, x: Tensor) -> Tensor:
        x = self.block3(self.block2(self.block1(self.conv1(x))))
        x = F.relu(self.bn(x))
        x = F.adaptive_avg_pool2d(x, 1)
        return self.fc(torch.flatten(x, 1))

    def extra_repr(self) -> str:
        return f"depth={self.depth}, widen_factor={self.widen_factor}"
