"""Time probes and a synchronisation finder for the GPU scripts and the CUDA tests.

Only :mod:`gpu_api` is called for the package; the rest is torch.
"""
from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path
from typing import Any, Callable

import gpu_api as api
import torch
from torch import nn


def time_teacher_steps(s: api.Settings, data: api.RunData, teacher: nn.Module, *, amp: bool, augment: bool,
                       steps: int = 12) -> float:
    """Seconds per teacher training step (batch ``s.teacher_batch_size``, SGD, AMP as the
    trainer runs it) on a throw-away copy of ``teacher``: median of the last half of ``steps``."""
    dev = api.device(s)
    net = copy.deepcopy(teacher).to(dev).train()
    opt = torch.optim.SGD(net.parameters(), lr=1e-3, momentum=0.9)
    scaler = torch.amp.GradScaler("cuda", enabled=amp and dev.type == "cuda")
    xb = data.x_train[:s.teacher_batch_size].to(dev)
    yb = data.y_train[:s.teacher_batch_size].to(dev)
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        images = api.augment(s, xb) if augment else xb
        with torch.autocast(dev.type, dtype=torch.float16, enabled=amp and dev.type == "cuda"):
            loss = nn.functional.cross_entropy(net(images), yb)
        opt.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
        api.sync(dev)
        times.append(time.perf_counter() - t0)
    tail = sorted(times[steps // 2:])
    return tail[len(tail) // 2]


def time_distill_steps(s: api.Settings, data: api.RunData, teacher: nn.Module | None, *, steps: int = 30,
                       amp: str = "none") -> dict[str, float]:
    """Seconds per distillation step (:func:`gpu_api.train_step`: ``forward_train`` of a fresh
    model of ``s``, random cached logits) and per validation pass (``s.val_mechanism`` on the
    validation part), on ``s``'s device."""
    dev = api.device(s)
    model = api.build_student(s, data)
    d = api.make_distiller(s, teacher, model, amp=amp)
    opt, scaler = api.make_step_state(d, s, amp=amp)
    n = data.n_train
    x = data.x_train.to(dev)
    y = data.y_train.to(dev)
    cache = torch.randn(n, data.info.num_classes, device=dev)
    api.start_epoch(d, x, y)   # a pool builder (graph: pool) keeps the training set and its codes
    g = torch.Generator().manual_seed(0)
    times = []
    d.train()
    for _ in range(steps):
        pos = torch.randperm(n, generator=g)[:s.batch_size].to(dev)
        t0 = time.perf_counter()
        api.train_step(d, opt, scaler, x[pos], y[pos], pos, cache, amp=amp)
        api.sync(dev)
        times.append(time.perf_counter() - t0)
    tail = sorted(times[steps // 2:])
    out = {"step_s": tail[len(tail) // 2]}
    if data.n_val:
        xv = data.x_val.flatten(1).to(dev)
        t0 = time.perf_counter()
        api.predict(model, xv, x.flatten(1), s.val_mechanism, bank_size=s.bank_size, batch_size=s.eval_batch_size)
        api.sync(dev)
        out["val_s"] = time.perf_counter() - t0
    else:
        out["val_s"] = 0.0
    return out


def sync_sites(fn: Callable[[], Any]) -> list[str]:
    """``file:line`` of every host synchronisation ``fn()`` makes on CUDA (empty on the
    CPU), found with ``torch.cuda.set_sync_debug_mode("warn")``."""
    if not torch.cuda.is_available():
        fn()
        return []
    prev = torch.cuda.get_sync_debug_mode()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            fn()
        finally:
            torch.cuda.set_sync_debug_mode(prev)
    return [f"{Path(w.filename).name}:{w.lineno}" for w in caught if "synchroniz" in str(w.message)]
