"""Float training learns digits, reshapes weights (Eq. 17-18) when asked, and fails clearly on bad input."""

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from sdk.data import digits
from sdk.errors import InputError
from sdk.models import create
from sdk.reshape import reshape_weights_
from sdk.training import TrainResult, classification_loss, evaluate, train


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """Tiny models train fastest on one thread; OpenMP spin-waits badly when CPUs are shared (pytest -n)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def data():
    return digits()


def _weight_ratios(model: nn.Module) -> list[float]:
    """max|W| / mean|W| per conv/linear layer."""
    return [
        float(m.weight.detach().abs().max() / m.weight.detach().abs().mean())
        for m in model.modules()
        if isinstance(m, (nn.Conv2d, nn.Linear))
    ]


def test_two_epochs_learn_digits(data):
    torch.manual_seed(0)
    model = create("digits_cnn")
    before = evaluate(model, data.test)
    result = train(model, data.train, data.val, epochs=2, progress=False)
    assert isinstance(result, TrainResult) and len(result.train_loss) == len(result.val_acc) == 2
    assert result.train_loss[1] < result.train_loss[0]
    after = evaluate(model, data.test)
    assert after > max(before + 0.3, 0.85), (before, after)
    assert result.final_val_acc == result.val_acc[-1] and result.seconds > 0


def test_training_is_deterministic(data):
    losses = []
    for _ in range(2):
        torch.manual_seed(0)
        model = create("digits_cnn", width=8)
        losses.append(train(model, digits(seed=3).train, epochs=1, progress=False, seed=3).train_loss)
    assert losses[0] == losses[1]


def test_reshape_clamps_to_k_mean_abs():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8), nn.Flatten(), nn.Linear(8, 4))
    with torch.no_grad():
        model[0].weight[0, 0, 0, 0] = 50.0  # an outlier, as in a long-tailed distribution
        model[1].weight.fill_(9.0)
    before = {i: model[i].weight.detach().clone() for i in (0, 3)}
    assert reshape_weights_(model, k=2.0) == 2
    for i, w0 in before.items():
        t = 2.0 * float(w0.abs().mean())
        torch.testing.assert_close(model[i].weight, w0.clamp(-t, t))
    assert float(model[0].weight.detach().max()) < 50.0
    assert torch.all(model[1].weight == 9.0)  # BN is not a weight layer


def test_train_with_reshape_keeps_weights_compact(data):
    ratios = {}
    for reshape in (True, False):
        torch.manual_seed(0)
        model = create("digits_cnn", width=8)
        train(model, data.train, epochs=1, reshape=reshape, progress=False)
        ratios[reshape] = _weight_ratios(model)
    assert max(ratios[True]) < 2.0 * 1.25  # clamped at 2x the pre-clamp mean, which the clamp lowers a little
    assert max(ratios[False]) > 3.0


def test_reshape_rejects_bad_k():
    with pytest.raises(InputError, match="k"):
        reshape_weights_(nn.Linear(2, 2), k=0)


def test_empty_loader_raises(data):
    empty = DataLoader(TensorDataset(torch.zeros(0, 1, 8, 8), torch.zeros(0, dtype=torch.long)))
    with pytest.raises(InputError, match="empty"):
        train(create("digits_cnn", width=4), empty, epochs=1, progress=False)
    with pytest.raises(InputError, match="no samples"):
        evaluate(create("digits_cnn", width=4), empty)


def test_nan_loss_raises_with_a_hint():
    x = torch.full((8, 1, 8, 8), float("nan"))
    loader = DataLoader(TensorDataset(x, torch.zeros(8, dtype=torch.long)), batch_size=4)
    with pytest.raises(InputError, match="lower lr"):
        train(create("digits_cnn", width=4), loader, epochs=1, progress=False)


@pytest.mark.parametrize(
    ("labels", "match"),
    [
        (torch.full((8,), 12, dtype=torch.long), r"\[0, 10\).*num_classes=13"),
        (torch.full((8,), -1, dtype=torch.long), r"\[0, 10\)"),
        (torch.zeros(8), "integer class indices"),
        (torch.zeros(8, 2, dtype=torch.long), "shaped"),
    ],
)
def test_bad_labels_raise_before_torch_does(labels, match):
    loader = DataLoader(TensorDataset(torch.zeros(8, 1, 8, 8), labels), batch_size=4)
    with pytest.raises(InputError, match=match):
        train(create("digits_cnn", width=4), loader, epochs=1, progress=False)


def test_classification_loss_is_cross_entropy():
    logits, y = torch.randn(5, 3), torch.tensor([0, 2, 1, 1, 0], dtype=torch.int32)
    assert torch.equal(classification_loss(logits, y), nn.functional.cross_entropy(logits, y.long()))


def test_bad_epochs_raise(data):
    with pytest.raises(InputError, match="epochs"):
        train(create("digits_cnn", width=4), data.train, epochs=0)


class _TupleOut(nn.Module):
    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x):
        return self.inner(x), {"aux": 0}


def test_evaluate_accepts_tuple_outputs_and_restores_mode(data):
    model = create("digits_cnn", width=4).train()
    wrapped = _TupleOut(model).train()
    assert evaluate(wrapped, data.test) == evaluate(model, data.test)
    assert wrapped.training and model.training


def test_progress_false_is_silent(data, capsys):
    train(create("digits_cnn", width=4), data.val, epochs=1, progress=False)
    out = capsys.readouterr()
    assert out.out == "" and out.err == ""
