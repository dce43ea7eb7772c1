"""The teacher of a run: loaded from a file, reused from the run directory, or trained now.

A run directory that holds a teacher (``teacher/teacher.pt`` with its
``teacher_settings.json``) lends it to every later ``distill`` in that directory, whatever
that command's teacher *training* settings say (epochs, learning rate, ...), unless
``retrain_teacher`` is set or the teacher *network* or the *data* it was trained on
differ (:data:`TEACHER_IDENTITY`). Every decision is logged, naming the file used.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from tg_cnn2gnn.run.config import Settings
from tg_cnn2gnn.run.data import RunData
from tg_cnn2gnn.run.factories import build_teacher_model
from tg_cnn2gnn.run.rundir import RunDir
from tg_cnn2gnn.run.util import epoch_printer, quiet, train_device

#: Settings a trained teacher depends on (stored in ``teacher/teacher_settings.json``).
TEACHER_KEYS = ("dataset", "subset", "val_fraction", "split_seed", "teacher", "teacher_width", "teacher_epochs",
                "teacher_batch_size", "teacher_optimizer", "teacher_lr", "teacher_weight_decay", "scheduler",
                "augment_teacher", "seed")
#: Of those, the ones that make it another teacher (network, data): a cached teacher that
#: differs in any of them is not used. The others (training settings) are the cached one's.
TEACHER_IDENTITY = ("dataset", "subset", "val_fraction", "split_seed", "teacher", "teacher_width")


def teacher_fingerprint(settings: Settings) -> dict[str, Any]:
    """The settings a trained teacher depends on (:data:`TEACHER_KEYS`)."""
    d = settings.to_dict()
    d["augment_teacher"] = settings.augment != "none"
    return {k: d[k] for k in TEACHER_KEYS}


def _diff(old: dict[str, Any], new: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    return [f"{k}: {old.get(k)} -> {new.get(k)}" for k in keys if old.get(k) != new.get(k)]


def obtain_teacher(settings: Settings, data: RunData, run_dir: RunDir,
                   log: Callable[[str], None] = print) -> tuple[nn.Module, dict[str, Any]]:
    """The frozen (eval-mode) teacher of the run and ``{"source", "path", "train_time_s",
    "trained_with"}``: loaded from ``teacher_checkpoint``; else the run directory's teacher
    (see the module docstring); else trained now (cross-entropy, paper Algorithm 2 line 3)
    on the training part, validated on the validation part."""
    from tg_cnn2gnn.distill import freeze, load_teacher
    s = settings
    torch.manual_seed(s.seed)
    teacher = build_teacher_model(s, data.info)
    if s.teacher_checkpoint is not None:
        load_teacher(teacher, Path(s.teacher_checkpoint).expanduser())
        log(f"teacher: loaded {s.teacher} from {s.teacher_checkpoint}")
        return freeze(teacher), {"source": "checkpoint", "path": str(s.teacher_checkpoint), "train_time_s": None,
                                 "trained_with": None}
    fp = teacher_fingerprint(s)
    cached = run_dir.teacher_pt
    if cached.is_file() and run_dir.teacher_settings.is_file() and not s.retrain_teacher:
        old = run_dir.read_teacher_settings()
        other = _diff(old, fp, TEACHER_IDENTITY)
        if not other:
            load_teacher(teacher, cached)
            old_time = None
            if run_dir.teacher_summary.is_file():
                old_time = run_dir.read_teacher_summary().get("train_time_s")
            ignored = _diff(old, fp, tuple(k for k in TEACHER_KEYS if k not in TEACHER_IDENTITY))
            log(f"teacher: reusing {cached} ({old.get('teacher')} trained earlier for {old.get('teacher_epochs')} "
                f"epoch(s), lr {old.get('teacher_lr')}; --retrain-teacher trains a new one)"
                + (f"; this command's teacher training settings differ and are not used ({', '.join(ignored)})"
                   if ignored else ""))
            return freeze(teacher), {"source": "cached", "path": str(cached), "train_time_s": old_time,
                                     "trained_with": old}
        log(f"teacher: {cached} is another teacher network or was trained on other data ({', '.join(other)}); "
            "training a new one")
    elif cached.is_file() and s.retrain_teacher:
        log(f"teacher: --retrain-teacher: replacing {cached}")
    return train_teacher(s, data, run_dir, teacher, log)


def train_teacher(settings: Settings, data: RunData, run_dir: RunDir, teacher: nn.Module,
                  log: Callable[[str], None] = print) -> tuple[nn.Module, dict[str, Any]]:
    """Train ``teacher`` into ``run_dir/teacher`` and stamp it with its settings."""
    from tg_cnn2gnn.data import augment_batch
    from tg_cnn2gnn.distill import freeze, pretrain_teacher
    s = settings
    augment = None
    if s.augment != "none" and (data.info.crop_padding > 0 or data.info.hflip):
        def augment(images: Tensor, _name: str = s.dataset) -> Tensor:
            return augment_batch(images, _name)
    log(f"teacher: training {s.teacher} for {s.teacher_epochs} epoch(s) on {data.n_train} images")
    t0 = time.perf_counter()
    if run_dir.teacher_settings.exists():
        run_dir.teacher_settings.unlink()   # a teacher.pt without its stamp is never reused
    with quiet():
        result = pretrain_teacher(
            teacher, data.x_train, data.y_train, epochs=s.teacher_epochs, batch_size=s.teacher_batch_size,
            optimizer=s.teacher_optimizer, lr=s.teacher_lr, weight_decay=s.teacher_weight_decay,
            scheduler=s.scheduler, augment=augment, val=data.val, out_dir=run_dir.teacher_dir, seed=s.seed,
            device=train_device(s), progress=s.progress, tensorboard=False,
            callbacks=[epoch_printer(log, "teacher", s.teacher_epochs)])
    elapsed = time.perf_counter() - t0
    fp = teacher_fingerprint(s)
    run_dir.write_teacher_summary({"train_time_s": elapsed, "history": result["history"]}, log)
    run_dir.write_teacher_settings(fp)
    return freeze(teacher), {"source": "trained", "path": result.get("path"), "train_time_s": elapsed,
                             "trained_with": fp}
