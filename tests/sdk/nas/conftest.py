"""Fixtures: tiny models and loaders (see _tiny.py)."""

from __future__ import annotations

import pytest
import torch
from torch.utils.data import DataLoader

from tests.sdk.nas._tiny import TinyNet, TinyResNet, tiny_loaders


@pytest.fixture
def tiny() -> TinyNet:
    torch.manual_seed(0)
    return TinyNet()


@pytest.fixture
def tiny_res() -> TinyResNet:
    torch.manual_seed(0)
    return TinyResNet()


@pytest.fixture
def loaders() -> tuple[DataLoader, DataLoader]:
    return tiny_loaders()
