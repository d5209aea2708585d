"""A robotics user's project in a temp dir: a model class in its own file, its float weights, and a tiny
image folder with train/ and val/ (3 colour classes, 16x16 PNGs). No zoo model, no digits."""

from __future__ import annotations

from pathlib import Path

import numpy as np

MODEL_SRC = '''
import torch
from torch import nn


class PatchNet(nn.Module):
    """A small CNN with a functional residual add, as users write them."""

    def __init__(self, num_classes=3, width=8):
        super().__init__()
        conv = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.stem = nn.Sequential(conv, nn.BatchNorm2d(width), nn.ReLU())
        self.conv1 = nn.Conv2d(width, width, 3, padding=1)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.head = nn.Linear(width, num_classes)

    def forward(self, x):
        x = self.stem(x)
        y = self.conv2(torch.relu(self.conv1(x)))
        x = torch.relu(x + y)
        return self.head(torch.flatten(self.pool(x), 1))
'''

CLASSES = {"red": (40, 40, 200), "green": (40, 200, 40), "blue": (200, 40, 40)}  # BGR, as cv2 writes


def make_project(root: Path, *, train: int = 6, val: int = 3) -> dict[str, Path]:
    """Write model file, weights and photos/train|val/<class>/*.png; returns their paths."""
    import cv2
    import torch

    root.mkdir(parents=True, exist_ok=True)
    (root / "patchnet.py").write_text(MODEL_SRC)
    rng = np.random.default_rng(0)
    for split, n in (("train", train), ("val", val)):
        for name, bgr in CLASSES.items():
            folder = root / "photos" / split / name
            folder.mkdir(parents=True)
            for i in range(n):
                img = np.clip(rng.normal(bgr, 30, size=(16, 16, 3)), 0, 255).astype(np.uint8)
                cv2.imwrite(str(folder / f"{i}.png"), img)
    ns: dict = {}
    exec(compile(MODEL_SRC, "patchnet.py", "exec"), ns)
    torch.manual_seed(0)
    model = ns["PatchNet"](num_classes=3)
    _fit(model, root / "photos" / "train")  # a user's weights are trained: a few full-batch steps suffice
    torch.save(model.state_dict(), root / "weights.pt")
    return {
        "model": root / "patchnet.py",
        "spec": Path(f"{root / 'patchnet.py'}:PatchNet"),
        "weights": root / "weights.pt",
        "photos": root / "photos",
        "data": Path(f"folder:{root / 'photos'}:16"),
    }


def _fit(model, folder: Path, steps: int = 30) -> None:
    """Train on folder/<class>/*.png normalized as bpnas does by default (the training images' mean/std)."""
    import cv2
    import torch

    xs, ys = [], []
    for label, name in enumerate(sorted(CLASSES)):
        for path in sorted((folder / name).iterdir()):
            xs.append(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB).transpose(2, 0, 1) / 255.0)
            ys.append(label)
    x = torch.tensor(np.stack(xs), dtype=torch.float32)
    x = (x - x.mean((0, 2, 3), keepdim=True)) / x.std((0, 2, 3), keepdim=True)
    y = torch.tensor(ys)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    for _ in range(steps):
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    model.eval()
