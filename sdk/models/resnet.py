"""ResNet-18/50 for ImageNet: torchvision's architecture and parameter names, written from scratch.

Differences from torchvision are only module bookkeeping the quantizer needs: one ReLU module per use site,
residual additions as ``Add`` modules, an explicit ``Flatten``, and ``Identity`` where there is no downsample.
None of these hold parameters, so torchvision state dicts load unchanged.
"""

from __future__ import annotations

import torch
from torch import nn

from sdk.models._registry import register_model
from sdk.models.layers import Add, conv_bn

__all__ = ["BasicBlock", "Bottleneck", "ResNet", "resnet18", "resnet50"]


def _downsample(cin: int, cout: int, stride: int) -> nn.Module:
    return nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride != 1 or cin != cout else nn.Identity()


class BasicBlock(nn.Module):
    """Two 3x3 convs; the first strides."""

    expansion = 1

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(cin, width, 3, stride)
        self.relu1 = nn.ReLU()
        self.conv2, self.bn2 = conv_bn(width, width, 3)
        self.downsample = _downsample(cin, width, stride)
        self.add = Add()
        self.relu2 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu2(self.add(out, self.downsample(x)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (strided, as torchvision 'ResNet v1.5'), 1x1 expand by 4."""

    expansion = 4

    def __init__(self, cin: int, width: int, stride: int = 1) -> None:
        super().__init__()
        cout = width * self.expansion
        self.conv1, self.bn1 = conv_bn(cin, width, 1)
        self.relu1 = nn.ReLU()
        self.conv2, self.bn2 = conv_bn(width, width, 3, stride)
        self.relu2 = nn.ReLU()
        self.conv3, self.bn3 = conv_bn(width, cout, 1)
        self.downsample = _downsample(cin, cout, stride)
        self.add = Add()
        self.relu3 = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu1(self.bn1(self.conv1(x)))
        out = self.relu2(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu3(self.add(out, self.downsample(x)))


class ResNet(nn.Module):
    """Stem (7x7/2 conv, 3x3/2 max pool), four stages at 64..512 widths, global average pool, linear."""

    def __init__(
        self,
        block: type[BasicBlock | Bottleneck],
        layers: tuple[int, int, int, int],
        num_classes: int = 1000,
        *,
        in_channels: int = 3,
    ) -> None:
        super().__init__()
        self.conv1, self.bn1 = conv_bn(in_channels, 64, 7, 2)
        self.relu = nn.ReLU()
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        e = block.expansion
        self.layer1 = _stage(block, 64, 64, layers[0], 1)
        self.layer2 = _stage(block, 64 * e, 128, layers[1], 2)
        self.layer3 = _stage(block, 128 * e, 256, layers[2], 2)
        self.layer4 = _stage(block, 256 * e, 512, layers[3], 2)
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(512 * e, num_classes)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        return self.fc(self.flatten(self.avgpool(x)))


def _stage(
    block: type[BasicBlock | Bottleneck], cin: int, width: int, depth: int, stride: int
) -> nn.Sequential:
    blocks = [block(cin, width, stride)]
    blocks += [block(width * block.expansion, width) for _ in range(depth - 1)]
    return nn.Sequential(*blocks)


@register_model("resnet18", input_shape=(1, 3, 224, 224))
def resnet18(num_classes: int = 1000, *, in_channels: int = 3) -> nn.Module:
    """ResNet-18: 11,689,512 parameters at 1000 classes."""
    return ResNet(BasicBlock, (2, 2, 2, 2), num_classes, in_channels=in_channels)


@register_model("resnet50", input_shape=(1, 3, 224, 224))
def resnet50(num_classes: int = 1000, *, in_channels: int = 3) -> nn.Module:
    """ResNet-50: 25,557,032 parameters at 1000 classes."""
    return ResNet(Bottleneck, (3, 4, 6, 3), num_classes, in_channels=in_channels)
