"""A small CNN for sklearn's 8x8 digits (optionally upscaled): the fast end-to-end demo and test model."""

from __future__ import annotations

import torch
from torch import nn

from sdk.models._registry import register_model
from sdk.models.layers import ConvBNAct

__all__ = ["DigitsCNN", "digits_cnn"]


class DigitsCNN(nn.Module):
    """Three 3x3 conv-BN-ReLU stages (the last two stride 2), global average pool, linear classifier.

    Works at any input size >= 8x8; upscaled inputs only add MACs, the parameter count stays the same.
    """

    def __init__(self, num_classes: int = 10, *, in_channels: int = 1, width: int = 32) -> None:
        super().__init__()
        self.features = nn.Sequential(
            ConvBNAct(in_channels, width, 3),
            ConvBNAct(width, width, 3),
            ConvBNAct(width, 2 * width, 3, 2),
            ConvBNAct(2 * width, 2 * width, 3),
            ConvBNAct(2 * width, 4 * width, 3, 2),
        )
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(4 * width, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.avgpool(self.features(x))))


@register_model("digits_cnn", input_shape=(1, 1, 8, 8))
def digits_cnn(num_classes: int = 10, *, in_channels: int = 1, width: int = 32) -> nn.Module:
    """The digits demo CNN; ``width`` scales every layer's channels."""
    return DigitsCNN(num_classes, in_channels=in_channels, width=width)
