"""Datasets: fixed disjoint seeded splits; CIFAR-10 batches and image folders load or fail clearly."""

import pickle

import cv2
import numpy as np
import pytest
import torch

from sdk.data import CIFAR10_FILES, _stratified_split, cifar10, digits, image_folder
from sdk.errors import InputError


def _stack(loader):
    xs, ys = zip(*loader)
    return torch.cat(xs), torch.cat(ys)


@pytest.fixture(scope="module")
def splits():
    return digits()


def test_digits_split_sizes_and_shapes(splits):
    n = [len(loader.dataset) for loader in (splits.train, splits.val, splits.test)]
    assert sum(n) == 1797
    assert n == pytest.approx([1797 * 0.6, 1797 * 0.2, 1797 * 0.2], abs=10)
    assert splits.input_shape == (1, 1, 8, 8) and splits.num_classes == 10
    assert splits.labels == tuple(str(i) for i in range(10))
    x, y = next(iter(splits.train))
    assert x.shape == (64, 1, 8, 8) and x.dtype == torch.float32 and y.dtype == torch.int64


def test_digits_is_normalized_by_train_stats(splits):
    x, _ = _stack(splits.train)
    assert abs(float(x.mean())) < 1e-4 and float(x.std()) == pytest.approx(1.0, abs=1e-3)
    assert 0.0 < splits.mean[0] < 1.0 and splits.std[0] > 0


def _rows(loader):
    return {tuple(r.flatten().tolist()) for r in loader.dataset.tensors[0]}


def test_digits_splits_are_disjoint(splits):
    """sklearn digits has no duplicate images, so disjoint rows mean disjoint samples."""
    train, val, test = _rows(splits.train), _rows(splits.val), _rows(splits.test)
    assert len(train) + len(val) + len(test) == 1797


def test_splits_do_not_depend_on_seed_and_shuffle_is_seeded(splits):
    other = digits(seed=1)
    for a, b in ((splits.val, other.val), (splits.test, other.test)):
        torch.testing.assert_close(_stack(a), _stack(b))
    first = [y for _, y in digits(seed=1).train]
    again = [y for _, y in digits(seed=1).train]
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(next(iter(splits.train))[1], first[0])


def test_stratified_split_is_disjoint_complete_and_stratified():
    y = np.repeat(np.arange(5), [10, 20, 30, 40, 50])
    test, val, train = _stratified_split(y, (0.2, 0.2))
    assert not set(test) & set(val) and not set(test) & set(train) and not set(val) & set(train)
    assert sorted([*test, *val, *train]) == list(range(len(y)))
    assert np.bincount(y[test]).tolist() == [2, 4, 6, 8, 10]
    assert [a.tolist() for a in _stratified_split(y, (0.2, 0.2))] == [
        test.tolist(),
        val.tolist(),
        train.tolist(),
    ]


def test_search_split_is_60_40_and_disjoint(splits):
    weights, arch = splits.search_split()
    n_train = len(splits.train.dataset)
    assert len(weights.dataset) + len(arch.dataset) == n_train
    assert len(weights.dataset) == pytest.approx(0.6 * n_train, abs=10)
    assert not _rows(weights) & _rows(arch)


@pytest.mark.parametrize(("upscale", "channels"), [(2, 1), (4, 3)])
def test_digits_upscale_and_channels(upscale, channels):
    d = digits(upscale=upscale, channels=channels, batch_size=8)
    side = 8 * upscale
    assert d.input_shape == (1, channels, side, side)
    assert next(iter(d.test))[0].shape == (8, channels, side, side)
    assert len(d.mean) == channels


def test_digits_augment_keeps_shapes():
    x, _ = next(iter(digits(augment=True).train))
    assert x.shape == (64, 1, 8, 8) and torch.isfinite(x).all()


def test_digits_rejects_bad_arguments():
    with pytest.raises(InputError, match="upscale"):
        digits(upscale=0)


def test_cifar10_missing_files_names_them(tmp_path):
    with pytest.raises(InputError, match="data_batch_1.*test_batch") as err:
        cifar10(tmp_path)
    assert "cifar-10-batches-py" in str(err.value)


def _write_fake_cifar(folder, n=20):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in CIFAR10_FILES:
        batch = {
            b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
            b"labels": [i % 10 for i in range(n)],
        }
        with open(folder / name, "wb") as f:
            pickle.dump(batch, f)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, f)


def test_cifar10_reads_official_pickled_batches(tmp_path):
    _write_fake_cifar(tmp_path / "cifar-10-batches-py")
    d = cifar10(tmp_path, batch_size=16, val_fraction=0.1)
    assert len(d.train.dataset) + len(d.val.dataset) == 100 and len(d.val.dataset) == 10
    assert len(d.test.dataset) == 20
    assert d.input_shape == (1, 3, 32, 32) and d.labels[0] == "c0" and len(d.mean) == 3
    x, y = next(iter(d.train))
    assert x.shape == (16, 3, 32, 32) and x.dtype == torch.float32 and y.dtype == torch.int64
    xv, _ = _stack(d.val)
    assert abs(float(xv.mean())) < 0.2  # normalized with the train split's statistics


def test_cifar10_rejects_a_corrupt_batch(tmp_path):
    _write_fake_cifar(tmp_path)
    (tmp_path / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(InputError, match="data_batch_3"):
        cifar10(tmp_path)


def _write_images(root, classes=("cat", "dog"), per_class=5):
    for k, cls in enumerate(classes):
        (root / cls).mkdir(parents=True)
        for i in range(per_class):
            img = np.zeros((12, 10, 3), np.uint8)
            img[..., 2] = 200 if k == 0 else 0  # red in BGR for "cat"
            img[..., 0] = 0 if k == 0 else 200  # blue in BGR for "dog"
            img[i, :, 1] = 255
            cv2.imwrite(str(root / cls / f"{i}.png"), img)


def test_image_folder_reads_resizes_and_converts_to_rgb(tmp_path):
    _write_images(tmp_path)
    d = image_folder(tmp_path, 8, batch_size=4)
    assert d.labels == ("cat", "dog") and d.num_classes == 2 and d.input_shape == (1, 3, 8, 8)
    sizes = [len(loader.dataset) for loader in (d.train, d.val, d.test)]
    assert sum(sizes) == 10 and sizes[1] == sizes[2] == 2
    x, y = _stack(d.test)
    raw = x * torch.tensor(d.std).view(1, 3, 1, 1) + torch.tensor(d.mean).view(1, 3, 1, 1)
    cat = raw[y == 0]
    assert float(cat[:, 0].mean()) > 0.7 and float(cat[:, 2].mean()) < 0.1  # channel 0 is red after BGR->RGB


def test_image_folder_errors(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        image_folder(tmp_path / "nope", 8)
    with pytest.raises(InputError, match="no class subfolders"):
        image_folder(tmp_path, 8)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="holds no images"):
        image_folder(tmp_path, 8)
    (tmp_path / "empty" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(InputError, match="broken.png"):
        image_folder(tmp_path, 8)
