"""The one training loop: pluggable loss and metric (targets need not be class indices), hooks, the same
numbers through every front end, and the search and retraining on non-tensor targets."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import sdk
from sdk.errors import InputError
from sdk.loop import LoopHooks, LoopOptions, run_loop, sgd_cosine
from sdk.training import train
from tests.sdk.nas._tiny import TinyNet, tiny_loaders


def _dict_targets(loader: DataLoader) -> DataLoader:
    """The same data with targets as a list of {"label": tensor} dicts, as a detection loader yields boxes."""

    def collate(batch: list[tuple[torch.Tensor, torch.Tensor]]) -> tuple[torch.Tensor, list[dict[str, Any]]]:
        return torch.stack([x for x, _ in batch]), [{"label": y} for _, y in batch]

    gen = torch.Generator().manual_seed(0)
    return DataLoader(loader.dataset, batch_size=16, shuffle=True, generator=gen, collate_fn=collate)


def _dict_loss(out: torch.Tensor, targets: list[dict[str, Any]]) -> torch.Tensor:
    assert isinstance(targets, list) and isinstance(targets[0], dict)
    return nn.functional.cross_entropy(out, torch.stack([t["label"] for t in targets]))


def test_custom_loss_and_metric_see_raw_targets_and_train():
    torch.manual_seed(0)
    model = TinyNet()
    tr, va = (_dict_targets(x) for x in tiny_loaders())
    calls: list[int] = []

    def metric(m: nn.Module, loader: Any) -> float:
        calls.append(1)
        return 0.25

    result = train(model, tr, va, epochs=3, lr=0.05, progress=False, loss_fn=_dict_loss, metric_fn=metric)
    assert result.val_acc == (0.25, 0.25, 0.25) and len(calls) == 3
    assert all(math.isnan(a) for a in result.train_acc)  # top-1 is only kept for the default loss
    assert result.train_loss[-1] < result.train_loss[0]


def test_default_loss_on_dict_targets_says_pass_loss_fn():
    tr, _ = (_dict_targets(x) for x in tiny_loaders())
    with pytest.raises(InputError, match="loss_fn"):
        train(TinyNet(), tr, epochs=1, progress=False)


def test_explicit_cross_entropy_gives_the_default_numbers():
    runs = []
    for fn in (None, lambda out, y: nn.functional.cross_entropy(out, y)):
        tr, va = tiny_loaders()  # fresh shuffling generators
        torch.manual_seed(0)
        model = TinyNet()
        runs.append((train(model, tr, va, epochs=2, lr=0.05, progress=False, loss_fn=fn), model))
    assert runs[0][0].train_loss == runs[1][0].train_loss and runs[0][0].val_acc == runs[1][0].val_acc
    assert torch.equal(runs[0][1].fc.weight, runs[1][1].fc.weight)


def test_hooks_run_in_order_and_step_figures_are_averaged():
    torch.manual_seed(0)
    model = TinyNet()
    tr, _ = tiny_loaders()
    options = LoopOptions(epochs=2, lr=0.01, steps_per_epoch=3, progress=False)
    state = sgd_cosine(model.parameters(), options, tr)
    events: list[str] = []
    hooks = LoopHooks(
        before_epoch=lambda e: events.append(f"b{e}"),
        after_step=lambda e, s: events.append(f"s{e}{s}") or {"one": 1.0, "step": float(s)},
        after_epoch=lambda st: events.append(f"a{st.epoch}"),
    )
    stats = run_loop(model, tr, options, state, hooks=hooks)
    assert events == ["b0", "s00", "s01", "s02", "a0", "b1", "s10", "s11", "s12", "a1"]
    assert stats[0].extra == {"one": 3.0, "step": 3.0}  # sums over the epoch's steps
    assert state.scheduler.last_epoch == 6 and state.history == stats


def test_search_and_retrain_take_a_custom_loss_on_dict_targets():
    torch.manual_seed(0)
    model = TinyNet()
    tr, va = (_dict_targets(x) for x in tiny_loaders())
    r = sdk.search(model, tr, va, b_max=3.0, epochs=2, steps_per_epoch=2, progress=False, loss_fn=_dict_loss)
    assert r.within and r.history.records[-1].val_ce > 0
    q = sdk.retrain(
        model, r.config, tr, va, epochs=1, progress=False, loss_fn=_dict_loss, metric_fn=lambda m, l: 0.5
    )
    assert q.retrain_history.val_acc == (0.5,)


def test_nan_loss_names_the_knob():
    x = torch.full((8, 1, 8, 8), float("nan"))
    loader = DataLoader(TensorDataset(x, torch.zeros(8, dtype=torch.long)), batch_size=4)
    with pytest.raises(InputError, match="lower lr"):
        train(TinyNet(), loader, epochs=1, progress=False)
