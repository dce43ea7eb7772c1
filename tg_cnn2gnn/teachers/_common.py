"""Helpers shared by the teacher builders."""
from __future__ import annotations

from torch import nn

from tg_cnn2gnn.functional._checks import check_positive_int


def check_common(num_classes: object, in_channels: object, image_size: object) -> tuple[int, int, int]:
    """Validate the three arguments every builder takes; return them as ints."""
    return (check_positive_int("num_classes", num_classes),  # type: ignore[return-value]
            check_positive_int("in_channels", in_channels),
            check_positive_int("image_size", image_size))


def init_conv_bn_linear(module: nn.Module, *, linear_std: float | None = None) -> None:
    """He (fan-out) initialisation for convolutions, unit/zero batch norm, and
    either PyTorch's default (``linear_std=None``) or ``N(0, linear_std^2)``
    weights with zero bias for linear layers."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)
        elif isinstance(m, nn.Linear):
            if linear_std is not None:
                nn.init.normal_(m.weight, 0.0, linear_std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
