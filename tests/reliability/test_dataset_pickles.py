"""Planted pickles under a dataset root never run code, with or without the MD5 check.

Each malicious payload would create a marker file if it ran; every test asserts the
marker is absent after the loader refused the file with an error naming it.
"""
import os
import pickle
import subprocess

import numpy as np
import pytest

from tg_cnn2gnn.data import (CHECK_INTEGRITY_HELP, CIFAR10, CIFAR100, UnsafePickleError, get_dataset, load_pickle,
                             load_tensors)
from tg_cnn2gnn.data.safe_pickle import loads_pickle

RNG = np.random.default_rng(7)


class _Reduce:
    """Pickles as ``func(*args)``: what a planted file would contain."""

    def __init__(self, func, *args):
        self.func, self.args = func, args

    def __reduce__(self):
        return self.func, self.args


def _payloads(marker):
    touch = f"open({str(marker)!r}, 'w').write('ran')"
    return {
        "os.system": _Reduce(os.system, f"touch {marker}"),
        "builtins.eval": _Reduce(eval, touch),
        "builtins.exec": _Reduce(exec, touch),
        "subprocess.Popen": _Reduce(subprocess.Popen, ["touch", str(marker)]),
        "subprocess.call": _Reduce(subprocess.call, ["touch", str(marker)]),
        "nested in dict": {"data": RNG.integers(0, 256, (2, 3072), dtype=np.uint8),
                           "labels": [1, _Reduce(os.system, f"touch {marker}")]},
        "object array": {"data": np.array([_Reduce(os.system, f"touch {marker}")], dtype=object),
                         "labels": [0]},
    }


def _fake_numpy_global(marker):
    """Protocol-0 pickle calling ``numpy.testing._private.utils.runstring`` (a numpy-looking global
    that executes a string) and one that names ``numpy.system``."""
    code = f"open({str(marker)!r}, 'w').write('ran')"
    return {"numpy runstring": (b"cnumpy.testing._private.utils\nrunstring\n(S'" + code.encode()
                                + b"'\n(dtR."),
            "numpy.core os": b"cnumpy.core.multiarray\nos\n.",
            "dotted name": b"cnumpy\ndtype.__class__\n.",
            "posix.system raw": b"cposix\nsystem\n(S'touch " + str(marker).encode() + b"'\ntR."}


def _write_cifar10(root, test_payload=None, protocol=2):
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    for b in range(1, 6):
        with open(folder / f"data_batch_{b}", "wb") as f:
            pickle.dump({"data": RNG.integers(0, 256, (2, 3072), dtype=np.uint8), "labels": [b % 10, 3]}, f,
                        protocol=protocol)
    with open(folder / "test_batch", "wb") as f:
        if isinstance(test_payload, bytes):
            f.write(test_payload)
        else:
            pickle.dump(test_payload if test_payload is not None else
                        {"data": RNG.integers(0, 256, (3, 3072), dtype=np.uint8), "labels": [0, 1, 2]}, f,
                        protocol=protocol)
    with open(folder / "batches.meta", "wb") as f:
        pickle.dump({"label_names": [f"c{i}" for i in range(10)]}, f, protocol=protocol)
    return folder


def _cases(tmp_path):
    marker = tmp_path / "PWNED"
    out = [(name, payload, proto) for name, payload in _payloads(marker).items() for proto in range(6)]
    out += [(name, raw, None) for name, raw in _fake_numpy_global(marker).items()]
    return marker, out


@pytest.mark.parametrize("check_integrity", [False, True])
def test_planted_cifar_pickles_never_run(tmp_path, check_integrity):
    marker, cases = _cases(tmp_path)
    assert len(cases) >= 6 * 6
    for name, payload, proto in cases:
        root = tmp_path / f"{name.replace(' ', '_')}_{proto}"
        folder = _write_cifar10(root, payload if proto is None else pickle.dumps(payload, protocol=proto))
        if check_integrity:
            with pytest.raises(ValueError, match="MD5"):
                CIFAR10(root, train=False)
        else:
            with pytest.raises(ValueError, match=str(folder / "test_batch")) as err:
                CIFAR10(root, train=False, check_integrity=False)
            assert "refused" in str(err.value) or "objects" in str(err.value), (name, proto, err.value)
        assert not marker.exists(), f"{name} (protocol {proto}) ran code"


@pytest.mark.parametrize("where", ["data_batch_3", "batches.meta"])
def test_planted_train_batch_and_meta(tmp_path, where):
    marker = tmp_path / "PWNED"
    folder = _write_cifar10(tmp_path)
    with open(folder / where, "wb") as f:
        pickle.dump(_Reduce(os.system, f"touch {marker}"), f)
    with pytest.raises(UnsafePickleError, match=f"{where} asks the unpickler for posix.system.*nothing was run"):
        load_tensors("cifar10", "train", tmp_path, check_integrity=False)
    assert not marker.exists()


def test_planted_cifar100_through_get_dataset(tmp_path):
    marker = tmp_path / "PWNED"
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    (folder / "test").write_bytes(pickle.dumps(_Reduce(exec, f"open({str(marker)!r}, 'w')")))
    with pytest.raises(UnsafePickleError, match="builtins.exec"):
        get_dataset("cifar100", tmp_path, "test", check_integrity=False)
    assert not marker.exists()
    (folder / "meta").write_bytes(pickle.dumps({"fine_label_names": [str(i) for i in range(100)]}))
    with pytest.raises(ValueError, match="MD5"):
        CIFAR100(tmp_path, train=False)  # the MD5 check refuses the file before anything reads it
    assert not marker.exists()


@pytest.mark.parametrize("protocol", range(6))
def test_real_format_still_loads_every_protocol(tmp_path, protocol):
    folder = _write_cifar10(tmp_path, protocol=protocol)
    x, y = load_tensors("cifar10", "test", tmp_path, check_integrity=False, normalize=False)
    assert x.shape == (3, 3, 32, 32) and y.tolist() == [0, 1, 2]
    raw = load_pickle(folder / "test_batch")
    assert np.array_equal((x * 255).round().byte().numpy().reshape(3, -1), raw["data"])
    assert CIFAR10(tmp_path, train=True, check_integrity=False).classes == [f"c{i}" for i in range(10)]


def test_numpy_scalars_and_fortran_arrays_load():
    obj = {"a": np.float32(2.5), "b": np.asfortranarray(np.arange(6, dtype=np.int16).reshape(2, 3)),
           "c": [b"bytes", "str", 1, 2.0, None, True, (1, 2)]}
    for proto in range(6):
        back = loads_pickle(pickle.dumps(obj, protocol=proto))
        assert back["a"] == obj["a"] and np.array_equal(back["b"], obj["b"]) and back["c"] == obj["c"]


def test_structure_errors_name_the_file(tmp_path):
    folder = _write_cifar10(tmp_path, {"data": np.zeros((2, 10), np.uint8), "labels": [0, 1]})
    with pytest.raises(ValueError, match=r"test_batch: 'data' must be a uint8 array \[N, 3072\]"):
        CIFAR10(tmp_path, train=False, check_integrity=False)
    pickle.dump({"data": np.zeros((2, 3072), np.uint8), "labels": [0, 12]}, open(folder / "test_batch", "wb"))
    with pytest.raises(ValueError, match=r"test_batch: labels must be ints in \[0, 10\)"):
        CIFAR10(tmp_path, train=False, check_integrity=False)
    (folder / "test_batch").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(ValueError, match="test_batch is not a readable pickle"):
        CIFAR10(tmp_path, train=False, check_integrity=False)


def test_check_integrity_help_says_what_it_does_not_protect():
    assert "MD5" in CHECK_INTEGRITY_HELP and "restricted unpickler" in CHECK_INTEGRITY_HELP
    assert "not what keeps data files from running code" in CHECK_INTEGRITY_HELP


def test_mini_imagenet_pickled_copy_loads_and_planted_one_is_refused(tmp_path):
    from tg_cnn2gnn.data import MiniImageNet
    images = RNG.integers(0, 256, (12, 84, 84, 3), dtype=np.uint8)
    with open(tmp_path / "mini-imagenet-cache-train.pkl", "wb") as f:
        pickle.dump({"image_data": images, "class_dict": {"n02": list(range(6)), "n01": list(range(6, 12))}}, f,
                    protocol=4)
    train, test = MiniImageNet(tmp_path, "train", test_fraction=0.5), MiniImageNet(tmp_path, "test", test_fraction=0.5)
    assert train.layout == "pickle" and train.classes == ["n01", "n02"] and (len(train), len(test)) == (6, 6)
    path, label = test.samples[0]
    row = int(path.rpartition("#")[2])
    img, target = test[0]
    assert np.array_equal(np.asarray(img), images[row]) and target == label == (0 if row >= 6 else 1)
    marker = tmp_path / "PWNED"
    with open(tmp_path / "mini-imagenet-cache-train.pkl", "wb") as f:
        pickle.dump({"image_data": _Reduce(os.system, f"touch {marker}"), "class_dict": {}}, f)
    with pytest.raises(UnsafePickleError, match="mini-imagenet-cache-train.pkl asks the unpickler for posix.system"):
        MiniImageNet(tmp_path)
    assert not marker.exists()
