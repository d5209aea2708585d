"""ResNet-20 for CIFAR (He et al. 2016, Sec. 4.2) with 1x1-conv (option B) downsample shortcuts."""

from __future__ import annotations

import torch
from torch import nn

from sdk.models._registry import register_model
from sdk.models.layers import Add, conv_bn

__all__ = ["CifarBasicBlock", "CifarResNet", "resnet20"]


class CifarBasicBlock(nn.Module):
    """Two 3x3 conv-BN layers plus a shortcut that is always a module (Identity or 1x1 conv-BN)."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, cout, 3, stride)
        self.relu1 = nn.ReLU()
        self.conv2, self.bn2 = conv_bn(cout, cout, 3)
        self.shortcut: nn.Module = (
            nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()
        )
        self.add = Add()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(self.add(out, self.shortcut(x)))


class CifarResNet(nn.Module):
    """3 stages of ``depth`` basic blocks at 16/32/64 channels, global average pool, linear classifier."""

    def __init__(self, depth: int, num_classes: int = 10, *, in_channels: int = 3) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(in_channels, 16, 3)
        self.relu = nn.ReLU()
        self.layer1 = _stage(16, 16, depth, 1)
        self.layer2 = _stage(16, 32, depth, 2)
        self.layer3 = _stage(32, 64, depth, 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(64, num_classes)
        _init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu(self.bn1(self.conv1(x)))
        x = self.layer3(self.layer2(self.layer1(x)))
        return self.fc(self.flatten(self.avgpool(x)))


def _stage(cin: int, cout: int, depth: int, stride: int) -> nn.Sequential:
    blocks = [CifarBasicBlock(cin, cout, stride)]
    blocks += [CifarBasicBlock(cout, cout) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


def _init(model: nn.Module) -> None:
    """He init for convs, unit BN; no zero-init of residual BNs, so untrained models exercise every path."""
    for m in model.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


@register_model("resnet20", input_shape=(1, 3, 32, 32))
def resnet20(num_classes: int = 10, *, in_channels: int = 3) -> nn.Module:
    """ResNet-20 for 32x32 inputs: 19 convs + 1 linear, ~0.27M parameters at 10 classes."""
    return CifarResNet(3, num_classes, in_channels=in_channels)
