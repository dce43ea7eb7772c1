"""Splits, indices, label extraction, normalisation constants and batch augmentation."""
import os

import pytest
import torch
from torch.utils.data import Subset, TensorDataset

from tg_cnn2gnn.data import (DATASET_INFO, DATASETS, IndexedDataset, augment_batch, dataset_info, denormalize,
                             get_labels, get_transform, normalize, stratified_split, train_val_split)


def test_registry():
    assert DATASETS == ("fashion-mnist", "digits", "cifar10", "cifar100", "stl10", "mini-imagenet")
    expected = {"fashion-mnist": (1, 28, 10), "digits": (1, 8, 10), "cifar10": (3, 32, 10),
                "cifar100": (3, 32, 100), "stl10": (3, 96, 10), "mini-imagenet": (3, 84, 100)}
    for name, (c, s, k) in expected.items():
        info = DATASET_INFO[name]
        assert (info.channels, info.image_size, info.num_classes) == (c, s, k)
        assert len(info.mean) == len(info.std) == c and info.shape == (c, s, s)
    assert dataset_info("CIFAR-10") is DATASET_INFO["cifar10"]
    assert dataset_info("Mini_ImageNet") is DATASET_INFO["mini-imagenet"]
    with pytest.raises(ValueError, match="unknown dataset name 'svhn'; valid names: fashion-mnist, digits, cifar10"):
        dataset_info("svhn")
    with pytest.raises(TypeError, match="name must be a str, got 3"):
        dataset_info(3)


def test_digits_constants_match_data():
    from sklearn.datasets import load_digits

    x = load_digits().images / 16.0
    info = DATASET_INFO["digits"]
    assert abs(x.mean() - info.mean[0]) < 5e-4 and abs(x.std() - info.std[0]) < 5e-4


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_constants_match_data():
    from tg_cnn2gnn.data import FashionMNIST

    x = FashionMNIST(train=True).data.double() / 255
    info = DATASET_INFO["fashion-mnist"]
    assert abs(x.mean().item() - info.mean[0]) < 5e-4 and abs(x.std().item() - info.std[0]) < 5e-4


def test_stratified_split():
    labels = torch.tensor([0] * 50 + [1] * 30 + [2] * 20 + [3] * 1)
    perm = torch.randperm(len(labels), generator=torch.Generator().manual_seed(0))
    labels = labels[perm]
    kept, held = stratified_split(labels, 0.25, seed=3)
    assert torch.equal(torch.sort(torch.cat([kept, held])).values, torch.arange(len(labels)))
    assert torch.equal(kept, kept.sort().values) and torch.equal(held, held.sort().values)
    # floor(0.25 * n + 1/2) per class; the single-sample class stays in the kept part
    assert torch.bincount(labels[held], minlength=4).tolist() == [13, 8, 5, 0]
    again = stratified_split(labels.tolist(), 0.25, seed=3)
    assert torch.equal(again[1], held)
    assert not torch.equal(stratified_split(labels, 0.25, seed=4)[1], held)
    # tiny classes keep at least one sample on each side
    assert torch.bincount(labels[stratified_split(labels, 0.99)[0]], minlength=4).tolist() == [1, 1, 1, 1]


def test_train_val_split_and_errors():
    labels = torch.arange(40) % 4
    dataset = TensorDataset(torch.randn(40, 2), labels)
    train_idx, val_idx = train_val_split(dataset, 0.2, seed=0)
    assert len(val_idx) == 8 and torch.bincount(labels[val_idx]).tolist() == [2, 2, 2, 2]
    assert set(train_idx.tolist()).isdisjoint(val_idx.tolist())
    plain_train, plain_val = train_val_split(labels, 0.2, seed=0, stratify=False)
    assert len(plain_val) == 8 and len(plain_train) == 32
    assert torch.equal(train_val_split(labels, 0.2, seed=0, stratify=False)[1], plain_val)
    with pytest.raises(ValueError, match=r"val_fraction must be a float in the open interval \(0, 1\), got 0"):
        train_val_split(labels, 0)
    with pytest.raises(ValueError, match="val_fraction must be .* got 1.5"):
        train_val_split(labels, 1.5)
    with pytest.raises(ValueError, match=r"seed must be an int in \[0, 2\*\*32\), got -1"):
        train_val_split(labels, 0.1, seed=-1)


def test_get_labels_and_indexed_dataset():
    labels = torch.tensor([3, 1, 4, 1, 5, 9])
    base = TensorDataset(torch.arange(6.0), labels)
    base.targets = labels.tolist()
    sub = Subset(base, [5, 0, 2])
    assert get_labels(sub).tolist() == [9, 3, 4]
    assert get_labels(IndexedDataset(sub)).tolist() == [9, 3, 4]
    no_attr = TensorDataset(torch.arange(6.0), labels)
    assert get_labels(no_attr).tolist() == labels.tolist()  # falls back to iterating
    indexed = IndexedDataset(sub)
    assert len(indexed) == 3
    x, y, i = indexed[1]
    assert (x.item(), y.item(), i) == (0.0, 3, 1)  # index within the wrapped (training) subset
    with pytest.raises(ValueError, match="expects items \\(image, label\\).*got tuple of length 1"):
        IndexedDataset(TensorDataset(torch.zeros(2)))[0]


def test_normalize_roundtrip_and_shape_check():
    x = torch.rand(4, 3, 5, 5)
    z = normalize(x, "cifar10")
    assert torch.allclose(z[:, 1], (x[:, 1] - 0.4822) / 0.2435)
    assert torch.allclose(denormalize(z, "cifar10"), x, atol=1e-6)
    with pytest.raises(ValueError, match=r"x must have shape \[..., 1, H, W\] for 'digits'"):
        normalize(x, "digits")


def _is_crop_of_padded(out, img, pad, fill, flips):
    C, H, W = img.shape
    canvas = fill.view(C, 1, 1).expand(C, H + 2 * pad, W + 2 * pad).clone()
    canvas[:, pad:pad + H, pad:pad + W] = img
    for oy in range(2 * pad + 1):
        for ox in range(2 * pad + 1):
            crop = canvas[:, oy:oy + H, ox:ox + W]
            if torch.equal(out, crop) or (flips and torch.equal(out, crop.flip(-1))):
                return True
    return False


@pytest.mark.parametrize("name,normalized", [("cifar10", True), ("fashion-mnist", False)])
def test_augment_batch_is_padded_crop_and_flip(name, normalized):
    info = DATASET_INFO[name]
    g = torch.Generator().manual_seed(0)
    x = torch.rand(16, info.channels, info.image_size, info.image_size, generator=g)
    out = augment_batch(x, name, normalized=normalized, generator=torch.Generator().manual_seed(1))
    again = augment_batch(x, name, normalized=normalized, generator=torch.Generator().manual_seed(1))
    assert torch.equal(out, again) and out.shape == x.shape
    mean, std = torch.tensor(info.mean), torch.tensor(info.std)
    fill = -mean / std if normalized else torch.zeros(info.channels)
    for i in range(len(x)):
        assert _is_crop_of_padded(out[i], x[i], info.crop_padding, fill, info.hflip)
    assert not torch.equal(out, x)  # 16 images: some shift happens
    if info.hflip:  # both flipped and unflipped images occur
        flipped = [not _is_crop_of_padded(out[i], x[i], info.crop_padding, fill, False) for i in range(len(x))]
        assert any(flipped) and not all(flipped)


def test_augment_batch_digits_is_identity_copy():
    x = torch.rand(3, 1, 8, 8)
    out = augment_batch(x, "digits")
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()


def test_transform_pipelines():
    names = lambda t: [type(s).__name__ for s in t.transforms]  # noqa: E731
    assert names(get_transform("stl10", True)) == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert names(get_transform("fashion-mnist", True)) == ["RandomCrop", "ToTensor", "Normalize"]
    assert names(get_transform("digits", True)) == ["Normalize"]
    assert names(get_transform("mini-imagenet", False, normalize=False)) == ["ToTensor"]
    digits = get_transform("digits", False)(torch.full((1, 8, 8), 0.5))
    assert torch.allclose(digits, torch.full((1, 8, 8), (0.5 - 0.3053) / 0.3760))
