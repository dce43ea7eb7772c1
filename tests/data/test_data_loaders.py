"""Loaders read small files written here in each dataset's real on-disk format."""
import csv
import gzip
import os
import pickle
import struct

import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import tg_cnn2gnn.data.fashion_mnist as fashion_module
from tg_cnn2gnn.data import (CIFAR10, CIFAR100, DATASET_INFO, DATASETS, STL10, Digits, FashionMNIST,
                             IndexedDataset, MiniImageNet, get_dataset, get_labels, get_transform, load_tensors,
                             read_idx)

RNG = np.random.default_rng(1234)


def _images(n, c, h, w):
    return RNG.integers(0, 256, size=(n, c, h, w), dtype=np.uint8)


def _by_hand(img_chw_uint8, name):
    info = DATASET_INFO[name]
    x = torch.from_numpy(img_chw_uint8.astype(np.float32) / 255.0)
    return (x - torch.tensor(info.mean).view(-1, 1, 1)) / torch.tensor(info.std).view(-1, 1, 1)


# ----------------------------------------------------------------------------- CIFAR
def _write_cifar10(root):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    images, labels = [], []
    for b in range(1, 6):
        x, y = _images(3, 3, 32, 32), RNG.integers(0, 10, 3).tolist()
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({"batch_label": f"training batch {b} of 5", "data": x.reshape(3, -1),
                         "labels": y, "filenames": [f"f{b}_{i}.png" for i in range(3)]}, f, protocol=2)
        images.append(x)
        labels += y
    xt, yt = _images(4, 3, 32, 32), RNG.integers(0, 10, 4).tolist()
    with open(folder / "test_batch", "wb") as f:
        pickle.dump({"data": xt.reshape(4, -1), "labels": yt}, f, protocol=2)
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": names, "num_cases_per_batch": 3, "num_vis": 3072}, f, protocol=2)
    return np.concatenate(images), np.array(labels), xt, np.array(yt), names


def _write_cifar100(root):
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    out = {}
    for split, n in (("train", 5), ("test", 3)):
        x, fine = _images(n, 3, 32, 32), RNG.integers(0, 100, n)
        with open(folder / split, "wb") as f:
            pickle.dump({"data": x.reshape(n, -1), "fine_labels": fine.tolist(),
                         "coarse_labels": (fine // 5).tolist()}, f, protocol=2)
        out[split] = (x, fine)
    names = [f"class{i}" for i in range(100)]
    with open(folder / "meta", "wb") as f:
        pickle.dump({"fine_label_names": names, "coarse_label_names": [str(i) for i in range(20)]}, f)
    return out, names


def test_cifar10_reads_pickles(tmp_path):
    x, y, xt, yt, names = _write_cifar10(tmp_path)
    ds = CIFAR10(tmp_path, train=True, check_integrity=False)
    assert len(ds) == 15 and ds.classes == names
    for i in (0, 4, 14):  # across batch files, in file order
        img, label = ds[i]
        assert np.array_equal(np.asarray(img), x[i].transpose(1, 2, 0)) and label == y[i]
    test = CIFAR10(tmp_path, train=False, check_integrity=False)
    xs, ys = test.to_tensors()
    assert xs.shape == (4, 3, 32, 32) and xs.dtype == torch.float32
    assert torch.equal(xs, torch.from_numpy(xt.astype(np.float32) / 255)) and ys.tolist() == yt.tolist()


def test_cifar100_default_transform_and_indices(tmp_path):
    data, names = _write_cifar100(tmp_path)
    ds = get_dataset("cifar100", tmp_path, "test", check_integrity=False)
    assert ds.classes == names
    indexed = IndexedDataset(ds)
    for i in range(3):
        img, label, index = indexed[i]
        assert index == i and label == data["test"][1][i]
        assert torch.allclose(img, _by_hand(data["test"][0][i], "cifar100"), atol=1e-6)
    batch = next(iter(DataLoader(indexed, batch_size=3)))
    assert batch[0].shape == (3, 3, 32, 32) and batch[2].tolist() == [0, 1, 2]
    x, y = load_tensors("cifar100", "train", tmp_path, check_integrity=False)
    assert x.shape == (5, 3, 32, 32) and y.dtype == torch.long
    assert torch.allclose(x[3], _by_hand(data["train"][0][3], "cifar100"), atol=1e-6)
    assert y.tolist() == data["train"][1].tolist()


def test_cifar_training_augmentation(tmp_path):
    _write_cifar10(tmp_path)
    ds = get_dataset("cifar10", tmp_path, "train", check_integrity=False)
    names = [type(t).__name__ for t in ds.transform.transforms]
    assert names == ["RandomCrop", "RandomHorizontalFlip", "ToTensor", "Normalize"]
    assert ds.transform.transforms[0].padding == 4
    assert ds[0][0].shape == (3, 32, 32)
    plain = get_dataset("cifar10", tmp_path, "train", check_integrity=False, augment=False)
    assert [type(t).__name__ for t in plain.transform.transforms] == ["ToTensor", "Normalize"]


def test_cifar_integrity_and_missing_files(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"expected data_batch_1.*cifar-10-batches-py.*download=True"):
        CIFAR10(tmp_path)
    _write_cifar10(tmp_path)
    # our files are not the official release: torchvision's MD5 check rejects them, with a way out
    with pytest.raises(ValueError, match=r"fail the MD5 check against the official release \(test_batch differs\)"
                                         r".*Download them again.*check_integrity=False only for a copy you made"):
        CIFAR10(tmp_path, train=False)
    os.remove(tmp_path / "cifar-10-batches-py" / "test_batch")
    assert len(CIFAR10(tmp_path, train=True, check_integrity=False)) == 15  # only the split's files needed
    with pytest.raises(FileNotFoundError, match="expected test_batch"):
        CIFAR10(tmp_path, train=False, check_integrity=False)


# ----------------------------------------------------------------------------- STL-10
def test_stl10_reads_binaries(tmp_path):
    folder = tmp_path / "stl10_binary"
    folder.mkdir()
    written = {}
    for split, n in (("train", 3), ("test", 2)):
        x, y = _images(n, 3, 96, 96), RNG.integers(0, 10, n)
        # the files store each channel column-major, and labels 1..10
        (folder / f"{split}_X.bin").write_bytes(np.ascontiguousarray(x.transpose(0, 1, 3, 2)).tobytes())
        (folder / f"{split}_y.bin").write_bytes((y + 1).astype(np.uint8).tobytes())
        written[split] = (x, y)
    ds = STL10(tmp_path, split="train", check_integrity=False, transform=None)
    assert len(ds) == 3
    for i in range(3):
        img, label = ds[i]
        assert img.size == (96, 96) and np.array_equal(np.asarray(img), written["train"][0][i].transpose(1, 2, 0))
        assert label == written["train"][1][i]
    x, y = load_tensors("stl10", "test", tmp_path, check_integrity=False)
    assert x.shape == (2, 3, 96, 96)
    assert torch.allclose(x[1], _by_hand(written["test"][0][1], "stl10"), atol=1e-6)
    assert y.tolist() == written["test"][1].tolist()
    assert get_labels(STL10(tmp_path, "test", check_integrity=False)).tolist() == y.tolist()
    with pytest.raises(ValueError, match=r"STL-10 files .* fail the MD5 check.*\(test_X.bin differs\).*"
                                         r"check_integrity=False only"):
        STL10(tmp_path, split="test")
    with pytest.raises(FileNotFoundError, match=r"expected unlabeled_X.bin in .*stl10_binary"):
        STL10(tmp_path, split="unlabeled", check_integrity=False)


# ----------------------------------------------------------------------------- Fashion-MNIST
def _write_idx(path, array, type_code):
    header = struct.pack(">BBBB", 0, 0, type_code, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + array.astype(array.dtype.newbyteorder(">")).tobytes()
    if str(path).endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(payload)
    else:
        path.write_bytes(payload)


def _write_fashion(folder, n_train=5, n_test=3, gz=True):
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".gz" if gz else ""
    out = {}
    for prefix, n in (("train", n_train), ("t10k", n_test)):
        x, y = RNG.integers(0, 256, (n, 28, 28), dtype=np.uint8), RNG.integers(0, 10, n).astype(np.uint8)
        _write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", x, 0x08)
        _write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", y, 0x08)
        out[prefix] = (x, y)
    return out


def test_fashion_mnist_reads_idx_gz(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_module, "FASHION_MNIST_SYSTEM_DIRS", [])
    written = _write_fashion(tmp_path)
    ds = get_dataset("fashion-mnist", tmp_path, "train", transform=None)
    assert len(ds) == 5 and ds.raw_folder == str(tmp_path)
    img, label = ds[2]
    assert np.array_equal(np.asarray(img), written["train"][0][2]) and label == written["train"][1][2]
    x, y = load_tensors("fashion-mnist", "test", tmp_path)
    assert x.shape == (3, 1, 28, 28)
    assert torch.allclose(x[0], _by_hand(written["t10k"][0][0][None], "fashion-mnist"), atol=1e-6)
    assert y.tolist() == written["t10k"][1].tolist()
    _, label, index = IndexedDataset(get_dataset("fashion-mnist", tmp_path, "train"))[4]
    assert (label, index) == (written["train"][1][4], 4)


def test_fashion_mnist_torchvision_layout_uncompressed(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_module, "FASHION_MNIST_SYSTEM_DIRS", [])
    written = _write_fashion(tmp_path / "FashionMNIST" / "raw", gz=False)
    ds = FashionMNIST(tmp_path, train=False)
    assert torch.equal(ds.data, torch.from_numpy(written["t10k"][0]))
    assert ds.targets.tolist() == written["t10k"][1].tolist()


def test_fashion_mnist_missing(tmp_path, monkeypatch):
    monkeypatch.setattr(fashion_module, "FASHION_MNIST_SYSTEM_DIRS", [])
    with pytest.raises(FileNotFoundError, match=r"t10k-images-idx3-ubyte\[.gz\].*apt-get install "
                                                 r"dataset-fashion-mnist.*download=True.*zalandoresearch"):
        get_dataset("fashion-mnist", tmp_path, "test")


def test_read_idx_errors(tmp_path):
    good = tmp_path / "a-idx2-ubyte"
    _write_idx(good, np.arange(12, dtype=np.int32).reshape(3, 4), 0x0C)
    assert np.array_equal(read_idx(good), np.arange(12).reshape(3, 4))
    bad = tmp_path / "b"
    bad.write_bytes(good.read_bytes()[:-4])
    with pytest.raises(ValueError, match=r"truncated or corrupted: header says shape \(3, 4\)"):
        read_idx(bad)
    bad.write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="is not an IDX file"):
        read_idx(bad)


@pytest.mark.skipif(not os.path.isdir("/usr/share/datasets/fashion-mnist"),
                    reason="Debian's dataset-fashion-mnist is not installed")
def test_fashion_mnist_debian_copy(tmp_path):
    ds = FashionMNIST(tmp_path, train=False)  # nothing in tmp_path: falls back to the system folder
    assert ds.raw_folder == "/usr/share/datasets/fashion-mnist"
    assert ds.data.shape == (10000, 28, 28) and torch.bincount(ds.targets).tolist() == [1000] * 10


# ----------------------------------------------------------------------------- Mini-ImageNet
def _png(path, array_hwc):
    Image.fromarray(array_hwc).save(path)


def test_mini_imagenet_csv_layout(tmp_path):
    images = tmp_path / "mini-imagenet" / "images"
    images.mkdir(parents=True)
    wnids = ["n03000000", "n01000000", "n02000000"]  # one class per CSV, disjoint like Ravi & Larochelle
    pixels = {}
    for split, wnid in zip(("train", "val", "test"), wnids):
        rows = []
        for j in range(6):
            fname = f"{wnid}{j:08d}.png"
            arr = RNG.integers(0, 256, (84, 84, 3), dtype=np.uint8)
            _png(images / fname, arr)
            pixels[fname] = arr
            rows.append((fname, wnid))
        with open(tmp_path / "mini-imagenet" / f"{split}.csv", "w", newline="") as f:
            csv.writer(f).writerows([("filename", "label"), *rows])
    train = get_dataset("mini-imagenet", tmp_path, "train", transform=None)
    test = MiniImageNet(tmp_path, "test")
    assert train.layout == "csv" and train.classes == sorted(wnids)
    assert len(train) == 15 and len(test) == 3  # 1/6 of every class held out: 5 + 1 per class
    assert sorted(test.targets) == [0, 1, 2] and sorted(np.bincount(train.targets).tolist()) == [5, 5, 5]
    seen = {os.path.basename(p) for p, _ in train.samples} | {os.path.basename(p) for p, _ in test.samples}
    assert seen == set(pixels)
    for i in (0, 7):
        path, label = train.samples[i]
        img, target = train[i]
        assert target == label == train.classes.index(os.path.basename(path)[:9])
        assert np.array_equal(np.asarray(img), pixels[os.path.basename(path)])
    x, y = load_tensors("mini-imagenet", "test", tmp_path)
    assert x.shape == (3, 3, 84, 84)
    assert torch.allclose(x[0], _by_hand(pixels[os.path.basename(test.samples[0][0])].transpose(2, 0, 1),
                                         "mini-imagenet"), atol=1e-6)
    # deterministic; another seed picks other test images
    assert MiniImageNet(tmp_path, "test").samples == test.samples
    assert MiniImageNet(tmp_path, "test", seed=1).samples != test.samples


def test_mini_imagenet_split_folders(tmp_path):
    # few-shot folders (disjoint classes): pooled and re-split per class; odd sizes are resized to 84
    for split, cls in (("train", "a"), ("val", "b"), ("test", "c")):
        folder = tmp_path / split / cls
        folder.mkdir(parents=True)
        for j in range(6):
            _png(folder / f"{j}.png", RNG.integers(0, 256, (90, 100, 3), dtype=np.uint8))
    ds = MiniImageNet(tmp_path, "train", transform=get_transform("mini-imagenet", True))
    assert ds.layout == "split-folders" and ds.classes == ["a", "b", "c"] and len(ds) == 15
    assert ds[0][0].shape == (3, 84, 84)
    # classification folders (same classes in train and test) are used as given
    given = tmp_path / "given"
    for split, n in (("train", 4), ("test", 2)):
        for cls in ("x", "y"):
            folder = given / split / cls
            folder.mkdir(parents=True)
            for j in range(n):
                _png(folder / f"{j}.png", RNG.integers(0, 256, (84, 84, 3), dtype=np.uint8))
    train, test = MiniImageNet(given, "train"), MiniImageNet(given, "test")
    assert train.layout.startswith("split-folders (given") and (len(train), len(test)) == (8, 4)
    assert all(f"{os.sep}test{os.sep}" in p for p, _ in test.samples)


def test_mini_imagenet_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"Mini-ImageNet not found in any of: .*Ravi & Larochelle"):
        MiniImageNet(tmp_path)
    with pytest.raises(ValueError, match="download=True is not available for mini-imagenet"):
        get_dataset("mini-imagenet", tmp_path, download=True)


# ----------------------------------------------------------------------------- digits
def test_digits_real_data():
    from sklearn.datasets import load_digits

    bunch = load_digits()
    counts = np.bincount(bunch.target)
    train, test = Digits("train"), Digits("test")
    expected_test = np.floor(0.2 * counts + 0.5).astype(int)
    assert len(train) + len(test) == 1797 and len(test) == expected_test.sum()
    assert (len(train), len(test)) == (DATASET_INFO["digits"].num_train, DATASET_INFO["digits"].num_test)
    assert torch.bincount(test.targets, minlength=10).tolist() == expected_test.tolist()
    assert train.classes == [str(i) for i in range(10)] and set(train.targets.tolist()) == set(range(10))
    both = torch.cat([train.source_index, test.source_index])
    assert sorted(both.tolist()) == list(range(1797))
    x, y = train.to_tensors()
    assert x.shape == (1438, 1, 8, 8)
    src = train.source_index.numpy()
    assert torch.allclose(x[:, 0], torch.from_numpy(bunch.images[src] / 16.0).float())
    assert y.tolist() == bunch.target[src].tolist()
    assert torch.equal(Digits("test").source_index, test.source_index)  # deterministic
    assert not torch.equal(Digits("test", seed=1).source_index, test.source_index)
    xn, _ = load_tensors("digits", "test")
    info = DATASET_INFO["digits"]
    assert torch.allclose(xn, (test.data - info.mean[0]) / info.std[0])
    img, label, index = IndexedDataset(get_dataset("digits", split="test"))[5]
    assert index == 5 and label == int(test.targets[5]) and torch.allclose(img, xn[5])


def test_get_dataset_errors():
    valid = ", ".join(DATASETS)
    with pytest.raises(ValueError, match=f"unknown dataset name 'mnist'; valid names: {valid}"):
        get_dataset("mnist")
    with pytest.raises(ValueError, match=r"split='val' is not supported; allowed values: 'train', 'test'.*"
                                         r"train_val_split"):
        get_dataset("digits", split="val")
    with pytest.raises(ValueError, match="augment only applies to transform='default'"):
        get_dataset("digits", transform=None, augment=True)
    with pytest.raises(ValueError, match="test_fraction must be a float in the open interval"):
        get_dataset("digits", test_fraction=1.0)
