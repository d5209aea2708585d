"""Tiny models and data for fast search tests (seconds on one core); also run by subprocess workers."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sdk.models.layers import Add


class TinyNet(nn.Module):
    """conv(1->4) -> conv(4->8, /2) -> pool -> fc: three quantizable layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 4, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(4)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(4, 8, 3, stride=2, padding=1, bias=False)
        self.relu2 = nn.ReLU()
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(8, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.relu1(self.bn1(self.conv1(x)))
        return self.fc(self.flatten(self.pool(self.relu2(self.conv2(x)))))


class TinyBlock(nn.Module):
    def __init__(self, c: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.relu = nn.ReLU()
        self.conv2 = nn.Conv2d(c, c, 3, padding=1, bias=False)
        self.add = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(self.conv2(self.relu(self.conv1(x))), x)


class TinyResNet(nn.Module):
    """stem conv, one residual block (two convs + Add), fc: groups="block" gives 3 groups for 4 layers."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(1, 4, 3, padding=1)
        self.block = TinyBlock(4)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.block(self.stem(x)))))


def tiny_loaders(n: int = 96, batch: int = 16, seed: int = 0) -> tuple[DataLoader, DataLoader]:
    """Two seeded shuffling loaders of a learnable 3-class 8x8 task (class = brightest third of the image)."""
    g = torch.Generator().manual_seed(1234)
    x = torch.randn(n, 1, 8, 8, generator=g)
    y = torch.stack(
        [x[:, :, :, :3].mean((1, 2, 3)), x[:, :, :, 3:5].mean((1, 2, 3)), x[:, :, :, 5:].mean((1, 2, 3))], 1
    )
    y = y.argmax(1)
    half = n * 2 // 3

    def mk(a: int, b: int, s: int) -> DataLoader:
        gen = torch.Generator().manual_seed(s)
        return DataLoader(TensorDataset(x[a:b], y[a:b]), batch_size=batch, shuffle=True, generator=gen)

    return mk(0, half, seed), mk(half, n, seed + 1)
