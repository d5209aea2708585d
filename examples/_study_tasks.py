"""Tasks for the search study that are harder than digits and cheap on two CPU cores (no download).

Data: sklearn's digits upscaled to 32x32, each image drawn ``copies`` times with a random affine distortion
(rotation, scale, shear, shift), a random contrast and Gaussian noise, fixed once by a seed, so bits matter:
at 2-bit weights and 3-bit activations the noise and the thin strokes cost accuracy, at 4 bits much less.
Models: a MobileNet-style net (depthwise separable convs, a grouped conv, an inverted-residual block) and a
ResNet-style net (basic blocks with a 1x1 projection shortcut), both tiny (< 1 MMAC), both with a classifier
head and a stem that cost almost nothing in BOPs.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sdk.models.layers import Add, ConvBNAct, conv_bn

__all__ = ["Task", "noisy_digits", "tiny_mobilenet", "tiny_resnet", "ARCHS"]


@dataclass(frozen=True)
class Task:
    train: DataLoader
    val: DataLoader
    test: DataLoader
    num_classes: int
    input_shape: tuple[int, int, int, int]


def noisy_digits(
    *, size: int = 32, copies: int = 2, noise: float = 0.35, batch_size: int = 64, seed: int = 0
) -> Task:
    """Distorted, noisy 32x32 digits; split 60/20/20 by source image (no copy leaks across splits).
    ``seed`` orders the training batches only; the images are the same for every seed."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    src = torch.from_numpy(bunch.images.astype(np.float32) / 16.0)[:, None]
    src = nn.functional.interpolate(src, size=(size, size), mode="bilinear", align_corners=False)
    gen = torch.Generator().manual_seed(1234)
    xs, ys = [], []
    y = torch.from_numpy(bunch.target.astype(np.int64))
    for _ in range(copies):
        xs.append(_distort(src, noise, gen))
        ys.append(y)
    order = torch.randperm(len(src), generator=torch.Generator().manual_seed(99))
    n_test, n_val = len(src) // 5, len(src) // 5
    parts = {"test": order[:n_test], "val": order[n_test : n_test + n_val], "train": order[n_test + n_val :]}
    x_all, y_all = torch.stack(xs, 1), torch.stack(ys, 1)  # (N, copies, 1, H, W)
    mean, std = float(x_all[parts["train"]].mean()), float(x_all[parts["train"]].std())

    def loader(idx: torch.Tensor, shuffle: bool) -> DataLoader:
        x = (x_all[idx].flatten(0, 1) - mean) / std
        ds = TensorDataset(x.contiguous(), y_all[idx].flatten(0, 1))
        g = torch.Generator().manual_seed(seed) if shuffle else None
        return DataLoader(ds, batch_size=batch_size, shuffle=shuffle, generator=g)

    return Task(loader(parts["train"], True), loader(parts["val"], False), loader(parts["test"], False), 10,
                (1, 1, size, size))  # fmt: skip


def _distort(x: torch.Tensor, noise: float, gen: torch.Generator) -> torch.Tensor:
    n = len(x)

    def u(lo: float, hi: float) -> torch.Tensor:
        return lo + (hi - lo) * torch.rand(n, generator=gen)

    ang, scale, shear = u(-0.35, 0.35), u(0.8, 1.15), u(-0.3, 0.3)
    tx, ty = u(-0.15, 0.15), u(-0.15, 0.15)
    cos, sin = torch.cos(ang) / scale, torch.sin(ang) / scale
    theta = torch.stack(
        [torch.stack([cos, -sin + shear, tx], 1), torch.stack([sin, cos, ty], 1)], 1
    )  # (n, 2, 3)
    grid = nn.functional.affine_grid(theta, list(x.shape), align_corners=False)
    out = nn.functional.grid_sample(x, grid, align_corners=False, padding_mode="zeros")
    contrast = u(0.5, 1.0).view(n, 1, 1, 1)
    return out * contrast + noise * torch.randn(x.shape, generator=gen)


class _DWSep(nn.Sequential):
    """Depthwise 3x3 -> pointwise 1x1 (each conv -> BN -> ReLU)."""

    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__(ConvBNAct(cin, cin, 3, stride, groups=cin), ConvBNAct(cin, cout, 1))


class _InvRes(nn.Module):
    """MobileNetV2 block with a residual: 1x1 expand -> depthwise 3x3 -> 1x1 project (linear) + x."""

    def __init__(self, c: int, expand: int) -> None:
        super().__init__()
        h = c * expand
        self.body = nn.Sequential(ConvBNAct(c, h, 1), ConvBNAct(h, h, 3, groups=h), *conv_bn(h, c, 1))
        self.add = Add()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.add(self.body(x), x)


class TinyMobileNet(nn.Module):
    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        w = width
        self.features = nn.Sequential(
            ConvBNAct(1, w, 3, 2),  # 16x16
            _DWSep(w, 2 * w, 1),
            _DWSep(2 * w, 4 * w, 2),  # 8x8
            _InvRes(4 * w, 2),
            ConvBNAct(4 * w, 4 * w, 3, 2, groups=4),  # grouped, 4x4
            _InvRes(4 * w, 2),
        )
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.features(x))))


class _Basic(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.body = nn.Sequential(ConvBNAct(cin, cout, 3, stride), *conv_bn(cout, cout, 3))
        self.short = nn.Sequential(*conv_bn(cin, cout, 1, stride)) if stride > 1 or cin != cout else None
        self.add = Add()
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu(self.add(self.body(x), x if self.short is None else self.short(x)))


class TinyResNet(nn.Module):
    def __init__(self, num_classes: int, width: int) -> None:
        super().__init__()
        w = width
        self.stem = ConvBNAct(1, w, 3, 2)  # 16x16
        self.layers = nn.Sequential(_Basic(w, w, 1), _Basic(w, 2 * w, 2), _Basic(2 * w, 4 * w, 2))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.flatten(self.pool(self.layers(self.stem(x)))))


def tiny_mobilenet(num_classes: int = 10, width: int = 8) -> nn.Module:
    return TinyMobileNet(num_classes, width)


def tiny_resnet(num_classes: int = 10, width: int = 8) -> nn.Module:
    return TinyResNet(num_classes, width)


ARCHS = {"mobilenet": tiny_mobilenet, "resnet": tiny_resnet}
