"""The FCOS loss: assignment picks the smallest box near a cell's centre; the loss trains a tiny head."""

import pytest
import torch

from sdk.detection.loss import DetectionLoss, _points, assign
from sdk.errors import InputError


def test_assign_center_sampling_and_smallest_box():
    pts = _points(4, 4, 8, torch.device("cpu"))  # centres 4, 12, 20, 28
    targets = torch.tensor([[[0, 0, 0, 32, 32], [1, 8, 8, 24, 24], [-1, 0, 0, 0, 0]]], dtype=torch.float32)
    pos, cls, tgt = assign(pts, targets, 8, 1.5)
    grid = pos.reshape(4, 4)
    assert grid[1:3, 1:3].all() and not grid[0, 0]
    assert cls.reshape(4, 4)[1, 1] == 1  # inside both: the smaller box wins
    torch.testing.assert_close(tgt.reshape(4, 4, 4)[1, 1], torch.tensor([4.0, 4.0, 12.0, 12.0]))


def test_loss_is_finite_without_objects_and_checks_shapes():
    loss = DetectionLoss(num_classes=2, stride=8)
    out = torch.zeros(2, 7, 4, 4, requires_grad=True)
    empty = torch.full((2, 1, 5), -1.0)
    value = loss(out, empty)
    value.backward()
    assert torch.isfinite(value) and out.grad is not None
    with pytest.raises(InputError, match=r"\(N, 7, H, W\)"):
        loss(torch.zeros(2, 6, 4, 4), empty)
    with pytest.raises(InputError, match=r"\(N, M, 5\)"):
        loss(out, torch.zeros(2, 5))
    with pytest.raises(InputError, match="num_classes"):
        loss(out, torch.tensor([[[3, 0, 0, 8, 8]]] * 2, dtype=torch.float32))


def test_loss_decreases_when_fitting_one_scene():
    torch.manual_seed(0)
    loss = DetectionLoss(num_classes=2, stride=8)
    out = torch.zeros(1, 7, 4, 4, requires_grad=True)
    targets = torch.tensor([[[1, 4, 6, 20, 26]]], dtype=torch.float32)
    opt = torch.optim.Adam([out], lr=0.1)
    first = None
    for _ in range(60):
        value = loss(out, targets)
        first = value.item() if first is None else first
        opt.zero_grad()
        value.backward()
        opt.step()
    assert value.item() < 0.5 * first
