"""MobileNetV2 (Sandler et al. 2018), width 1.0, with torchvision's layout and parameter names."""

from __future__ import annotations

import torch
from torch import nn

from sdk.models._registry import register_model
from sdk.models.layers import Add, ConvBNAct, conv_bn

__all__ = ["InvertedResidual", "MobileNetV2", "mobilenet_v2"]

# (expansion t, output channels c, repeats n, first stride s), Table 2 of the paper.
_SETTINGS = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)


def _make_divisible(v: float, divisor: int = 8) -> int:
    """Round channels to a multiple of ``divisor`` without dropping more than 10% (torchvision's rule)."""
    new = max(divisor, int(v + divisor / 2) // divisor * divisor)
    return new + divisor if new < 0.9 * v else new


class InvertedResidual(nn.Module):
    """1x1 expand (ReLU6), 3x3 depthwise (ReLU6), 1x1 linear projection; residual Add when shapes match."""

    def __init__(self, cin: int, cout: int, stride: int, expand: int) -> None:
        super().__init__()
        hidden = round(cin * expand)
        layers: list[nn.Module] = []
        if expand != 1:
            layers.append(ConvBNAct(cin, hidden, 1, act=nn.ReLU6))
        layers += [
            ConvBNAct(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6),
            *conv_bn(hidden, cout, 1),
        ]
        self.conv = nn.Sequential(*layers)
        self.use_res_connect = stride == 1 and cin == cout
        self.add: nn.Module | None = Add() if self.use_res_connect else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.add is not None:
            return self.add(x, self.conv(x))
        return self.conv(x)


class MobileNetV2(nn.Module):
    """``features`` (stem, 17 inverted residuals, 1x1 to 1280), pool, flatten, dropout + linear classifier."""

    def __init__(
        self, num_classes: int = 1000, *, in_channels: int = 3, width_mult: float = 1.0, dropout: float = 0.2
    ) -> None:
        super().__init__()
        cin = _make_divisible(32 * width_mult)
        last = _make_divisible(1280 * max(1.0, width_mult))
        features: list[nn.Module] = [ConvBNAct(in_channels, cin, 3, 2, act=nn.ReLU6)]
        for t, c, n, s in _SETTINGS:
            cout = _make_divisible(c * width_mult)
            for i in range(n):
                features.append(InvertedResidual(cin, cout, s if i == 0 else 1, t))
                cin = cout
        features.append(ConvBNAct(cin, last, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*features)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.classifier = nn.Sequential(nn.Dropout(dropout), nn.Linear(last, num_classes))
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out")
            elif isinstance(m, nn.Linear):
                nn.init.normal_(m.weight, 0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.flatten(self.avgpool(self.features(x))))


@register_model("mobilenet_v2", input_shape=(1, 3, 224, 224))
def mobilenet_v2(num_classes: int = 1000, *, in_channels: int = 3) -> nn.Module:
    """MobileNetV2 width 1.0: 3,504,872 parameters at 1000 classes."""
    return MobileNetV2(num_classes, in_channels=in_channels)
