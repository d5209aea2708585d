"""Building blocks shared by the zoo, written so quantizers can find every op as a module."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Add", "ConvBNAct", "conv_bn"]


class Add(nn.Module):
    """Residual addition as a module (one instance per use site), so a quantizer can find and replace it."""

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return a + b


def conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1) -> list[nn.Module]:
    """A bias-free conv with 'same' padding followed by BatchNorm, as a list to splice into a Sequential."""
    conv = nn.Conv2d(cin, cout, kernel, stride, padding=(kernel - 1) // 2, groups=groups, bias=False)
    return [conv, nn.BatchNorm2d(cout)]


class ConvBNAct(nn.Sequential):
    """Conv -> BN -> activation module (indices 0, 1, 2, as torchvision's Conv2dNormActivation)."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int = 3,
        stride: int = 1,
        *,
        groups: int = 1,
        act: type[nn.Module] = nn.ReLU,
    ) -> None:
        super().__init__(*conv_bn(cin, cout, kernel, stride, groups), act())
