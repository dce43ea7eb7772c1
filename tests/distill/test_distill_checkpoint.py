"""Checkpoints: atomic writes; truncated, corrupt, foreign and code-running files fail
clearly (naming the file) and run nothing."""
import os
import random

import numpy as np
import pytest
import torch

from distill_helpers import FIT, make_model, make_teacher, num_train
from tg_cnn2gnn.distill import (CheckpointError, HeteroDistiller, capture_rng_state, load_checkpoint,
                                load_teacher, restore_rng_state, save_checkpoint)
from tg_cnn2gnn.distill import checkpoint as ckpt_mod


class WritesMarker:
    """Unpickling this object calls ``open(marker, "w")``: it creates a file (runs code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_save_is_atomic_and_roundtrips(tmp_path):
    path = tmp_path / "sub" / "c.pt"
    obj = {"model": {"w": torch.arange(6.0).view(2, 3)}, "epoch": 3, "rows": [{"a": 1.5}]}
    save_checkpoint(obj, path, kind="distiller")
    loaded = load_checkpoint(path, kind="distiller")
    assert torch.equal(loaded["model"]["w"], obj["model"]["w"]) and loaded["epoch"] == 3
    assert loaded["rows"] == [{"a": 1.5}]
    assert sorted(os.listdir(path.parent)) == ["c.pt"]          # no temporary file left


def test_failed_write_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.pt"
    save_checkpoint({"epoch": 1}, path, kind="distiller")

    def broken_save(obj, f):
        f.write(b"PK\x03\x04 half a zip")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt_mod.torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint({"epoch": 2}, path, kind="distiller")
    monkeypatch.undo()
    assert load_checkpoint(path, kind="distiller")["epoch"] == 1   # the old file is intact
    assert os.listdir(tmp_path) == ["c.pt"]                        # the temp file was removed


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def test_truncated_checkpoint_fails_clearly(tmp_path):
    path = tmp_path / "c.pt"
    save_checkpoint({"model": {"w": torch.randn(64, 64)}}, path, kind="distiller")
    _truncate(path)
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        load_checkpoint(path, kind="distiller")
    assert str(path) in str(e.value)
    assert e.value.__cause__ is None and e.value.__context__ is None   # no pickle traceback chained
    assert isinstance(e.value, ValueError)
    (tmp_path / "empty.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="is empty"):
        load_checkpoint(tmp_path / "empty.pt")
    (tmp_path / "junk.pt").write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupt, truncated or not a torch checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_code_running_pickle_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "MARKER"
    evil = tmp_path / "evil.pt"
    torch.save({"model": WritesMarker(marker), "epoch": 0}, evil)
    with pytest.raises(CheckpointError, match="holds pickled Python objects") as e:
        load_checkpoint(evil)
    assert str(evil) in str(e.value) and e.value.__context__ is None
    teacher = torch.nn.Linear(2, 2)
    with pytest.raises(CheckpointError, match="refused without running them"):
        load_teacher(teacher, evil)
    assert not marker.exists()
    # Positive control: the file really runs code when unpickled without weights_only.
    torch.load(evil, weights_only=False)
    assert marker.exists()


def test_foreign_checkpoint_is_rejected(tmp_path):
    path = tmp_path / "foreign.pt"
    torch.save({"state_dict": {"w": torch.zeros(2)}}, path)
    with pytest.raises(CheckpointError, match="was not written by tg_cnn2gnn"):
        load_checkpoint(path, kind="distiller")
    save_checkpoint({"model": {}}, tmp_path / "t.pt", kind="teacher")
    with pytest.raises(CheckpointError, match="is a 'teacher' checkpoint, expected 'distiller'"):
        load_checkpoint(tmp_path / "t.pt", kind="distiller")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(CheckpointError, match="holds a list, expected a dict"):
        load_checkpoint(tmp_path / "list.pt")


def test_resume_from_bad_checkpoints_fails_clearly(digits, teacher_state, tmp_path):
    x, y, _, _ = digits
    n = num_train(y)
    out = tmp_path / "run"
    d = HeteroDistiller(make_teacher(teacher_state), make_model(n), device="cpu")
    d.fit(x, y, epochs=1, out_dir=out, cache_teacher_logits=True, **FIT)
    ck = out / "checkpoint.pt"
    assert ck.is_file() and (out / "metrics.csv").is_file() and (out / "summary.json").is_file()

    _truncate(ck)
    d2 = HeteroDistiller(make_teacher(teacher_state), make_model(n), device="cpu")
    with pytest.raises(CheckpointError, match="truncated or corrupt") as e:
        d2.fit(x, y, epochs=2, out_dir=out, resume=True, cache_teacher_logits=True, **FIT)
    assert str(ck) in str(e.value)

    marker = tmp_path / "MARKER"
    torch.save({"format": "tg_cnn2gnn", "kind": "distiller", "version": 1, "model": WritesMarker(marker)}, ck)
    with pytest.raises(CheckpointError, match="holds pickled Python objects"):
        d2.fit(x, y, epochs=2, out_dir=out, resume=True, cache_teacher_logits=True, **FIT)
    assert not marker.exists()

    # a genuine checkpoint from a different run configuration
    save_checkpoint({"config": {"n_train": 5}}, ck, kind="distiller")
    with pytest.raises(ValueError, match="the run's settings differ"):
        d2.fit(x, y, epochs=2, out_dir=out, resume=True, cache_teacher_logits=True, **FIT)


def test_teacher_checkpoints_load_safely(teacher_state, tmp_path):
    t = make_teacher(teacher_state)
    # a user's plain state dict, saved by DDP (module. prefix)
    torch.save({f"module.{k}": v for k, v in t.state_dict().items()}, tmp_path / "user.pt")
    t2 = make_teacher(({k: torch.zeros_like(v) for k, v in teacher_state[0].items()},))
    load_teacher(t2, tmp_path / "user.pt")
    assert all(torch.equal(a, b) for a, b in zip(t.state_dict().values(), t2.state_dict().values()))
    torch.save({"model": {"nope": torch.zeros(1)}}, tmp_path / "wrong.pt")
    with pytest.raises(CheckpointError, match="does not fit the teacher"):
        load_teacher(t2, tmp_path / "wrong.pt")


def test_rng_state_roundtrip_through_safe_checkpoint(tmp_path):
    torch.manual_seed(3)
    np.random.seed(3)
    random.seed(3)
    state = capture_rng_state()
    expected = (torch.rand(3), np.random.rand(3), random.random())
    save_checkpoint({"rng": state}, tmp_path / "r.pt", kind="x")
    torch.manual_seed(99)
    np.random.seed(99)
    random.seed(99)
    restore_rng_state(load_checkpoint(tmp_path / "r.pt", kind="x")["rng"])
    got = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(got[0], expected[0]) and np.array_equal(got[1], expected[1]) and got[2] == expected[2]
