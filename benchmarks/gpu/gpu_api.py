r"""The one adapter between the GPU scripts / CUDA tests and the package.

Every call the GPU benchmarks (``benchmarks/gpu/*.py``) and the CUDA tests
(``tests/cuda``) make into ``tg_cnn2gnn`` goes through this module, so a refactor of
the trainer, the run layer or the inference only needs this file retargeted.
Written against the API of ``main`` at 2b0ea0c:

* settings, data and models: :mod:`tg_cnn2gnn.pipeline` (``Settings``, ``validate``,
  ``load_data``, ``build_teacher_model``, ``build_student_model``);
* teacher training: :func:`tg_cnn2gnn.distill.pretrain_teacher` (fp16 AMP on CUDA);
* distillation: :meth:`tg_cnn2gnn.HeteroDistiller.fit`, ``.forward`` (one step), ``.predict``;
* costs: :func:`tg_cnn2gnn.pipeline.measure_teacher` / ``measure_student`` for FLOPs
  (device independent; they measure on a CPU copy) and :func:`gpu_latency` here for
  latency on the model's own device (the pipeline's latencies are CPU-only).

Shapes: images ``[N, C, H, W]`` (normalised), labels ``[N]``, node features ``[N, F]``
with ``F = C H W`` (the student reads flattened images).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

from tg_cnn2gnn import HeteroDistiller
from tg_cnn2gnn import pipeline as P
from tg_cnn2gnn.data import augment_batch
from tg_cnn2gnn.distill import compute_logits, freeze, pretrain_teacher
from tg_cnn2gnn.functional import sparse_simplex_graph
from tg_cnn2gnn.nn import make_optimizer

__all__ = ["Settings", "RunData", "settings", "load", "build_teacher", "build_student", "augment", "train_teacher",
           "teacher_meta", "save_teacher_shards", "load_teacher_shards", "make_distiller", "distill", "evaluate",
           "predict", "teacher_accuracy", "teacher_logits", "make_step_state", "train_step", "simplex_graph",
           "write_json", "sync", "measure", "gpu_latency", "peak_memory_mib"]

Settings = P.Settings
RunData = P.RunData


def settings(values: dict[str, Any]) -> P.Settings:
    """Checked :class:`~tg_cnn2gnn.pipeline.Settings` from a config mapping (unknown keys raise)."""
    return P.validate(P.Settings.from_dict(values, source="gpu config"))


def load(s: P.Settings) -> P.RunData:
    """Train / validation / test tensors of ``s`` (on the CPU; ``subset`` / ``test_subset`` applied)."""
    return P.load_data(s)


def build_teacher(s: P.Settings, data: P.RunData) -> nn.Module:
    """The randomly initialised teacher of ``s`` (seeded with ``s.seed``)."""
    torch.manual_seed(s.seed)
    return P.build_teacher_model(s, data.info)


def build_student(s: P.Settings, data: P.RunData) -> nn.Module:
    """The CNN2GNN model of ``s`` (head + GNN student; anchor head sized to the training part)."""
    torch.manual_seed(s.seed)
    return P.build_student_model(s, int(data.train_idx.numel()), int(data.x[0].numel()), data.info.num_classes)


def augment(s: P.Settings, images: Tensor) -> Tensor:
    """The dataset's random training augmentation (crop / flip) on a device batch ``[B, C, H, W]``."""
    return augment_batch(images, s.dataset)


def train_teacher(s: P.Settings, data: P.RunData, teacher: nn.Module, *, amp: bool, augment: bool,
                  out_dir: str | Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Cross-entropy pre-training of ``teacher`` on the training part (``s.teacher_*``
    settings, ``s.scheduler``), random crop augmentation when ``augment``; returns the
    package's result (``history`` with per-epoch ``train_time`` and ``val_acc``)."""
    tr, va = data.train_idx, data.val_idx
    aug = (lambda images: augment_batch(images, s.dataset)) if augment else None  # noqa: E731

    def every_epoch(epoch: int, row: dict[str, Any]) -> None:
        log(f"teacher epoch {epoch + 1}/{s.teacher_epochs}: loss {row.get('loss', float('nan')):.4f} "
            f"val {row.get('val_acc')} {row.get('train_time', 0.0):.1f} s")
    with P._quiet():
        return pretrain_teacher(teacher, data.x[tr], data.y[tr], epochs=s.teacher_epochs,
                                batch_size=s.teacher_batch_size, optimizer=s.teacher_optimizer, lr=s.teacher_lr,
                                weight_decay=s.teacher_weight_decay, scheduler=s.scheduler, augment=aug,
                                val=(data.x[va], data.y[va]) if va.numel() else None, out_dir=out_dir,
                                seed=s.seed, device=_device(s), amp=amp, distributed=False, progress=False,
                                tensorboard=False, callbacks=[every_epoch])


def teacher_meta(s: P.Settings) -> dict[str, Any]:
    """What a saved teacher was trained for; :func:`load_teacher_shards` refuses other settings."""
    return {"dataset": s.dataset, "teacher": s.teacher, "teacher_width": s.teacher_width, "seed": s.seed,
            "val_fraction": s.val_fraction, "split_seed": s.split_seed, "subset": s.subset}


def save_teacher_shards(teacher: nn.Module, folder: str | Path, meta: dict[str, Any], *,
                        shard_bytes: int = 15 << 20) -> list[Path]:
    """Write the teacher's state dict in float16 as ``teacher_shard<i>.pt`` files below
    ``shard_bytes`` each (the device tool returns at most 16 MiB per file); atomic writes;
    ``meta`` (:func:`teacher_meta`) goes into every shard."""
    from tg_cnn2gnn.distill.checkpoint import save_checkpoint
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, Tensor]] = [{}]
    size = 0
    for k, v in teacher.state_dict().items():
        v = v.detach().cpu()
        v = v.half() if v.is_floating_point() else v
        nbytes = v.numel() * v.element_size()
        if size and size + nbytes > shard_bytes:
            shards.append({})
            size = 0
        shards[-1][k] = v
        size += nbytes
    paths = []
    for i, shard in enumerate(shards):
        path = folder / f"teacher_shard{i}.pt"
        save_checkpoint({"model": shard, "meta": meta, "shards": len(shards)}, path, kind="teacher-shard")
        paths.append(path)
    return paths


def load_teacher_shards(teacher: nn.Module, folder: str | Path, meta: dict[str, Any]) -> nn.Module:
    """Load the shards of :func:`save_teacher_shards` (safe load) into ``teacher`` and freeze it."""
    from tg_cnn2gnn.distill.checkpoint import load_checkpoint
    state: dict[str, Tensor] = {}
    paths = sorted(Path(folder).glob("teacher_shard*.pt"))
    if not paths:
        raise FileNotFoundError(f"no teacher_shard*.pt in {str(folder)!r}; run part 2 first and copy its "
                                "teacher shards there (see benchmarks/gpu/README.md)")
    for p in paths:
        obj = load_checkpoint(p, kind="teacher-shard")
        if obj.get("meta") != meta or obj.get("shards") != len(paths):
            raise ValueError(f"teacher shard {str(p)!r} was written for {obj.get('meta')} "
                             f"({obj.get('shards')} shards), not for {meta} ({len(paths)} shards found)")
        state.update(obj["model"])
    ref = teacher.state_dict()
    state = {k: v.to(ref[k].dtype) for k, v in state.items()}
    teacher.load_state_dict(state, strict=True)
    return freeze(teacher)


class _Bf16Distiller(HeteroDistiller):
    """HeteroDistiller whose AMP autocast is bfloat16. The package's ``amp=True`` is float16
    only (``HeteroDistiller._autocast``); this override is the one private hook used here.
    Retarget: when the trainer takes an AMP dtype, pass it in :func:`make_distiller` instead."""

    def _autocast(self) -> Any:
        return torch.autocast(self.device.type, dtype=torch.bfloat16)


def make_distiller(s: P.Settings, teacher: nn.Module | None, model: nn.Module, *, amp: str | bool = "none"
                   ) -> HeteroDistiller:
    """A single-process :class:`~tg_cnn2gnn.HeteroDistiller` with the loss settings of ``s``;
    ``amp``: ``"none"``, ``"fp16"`` (the package's ``amp=True``; ``True`` means the same)
    or ``"bf16"`` (teacher and student under bfloat16 autocast; head and Eq. 3 stay float32)."""
    amp = "fp16" if amp is True else "none" if amp is False else amp
    if amp not in ("none", "fp16", "bf16"):
        raise ValueError(f"amp={amp!r} is not supported; allowed values: 'none', 'fp16', 'bf16'")
    cls = _Bf16Distiller if amp == "bf16" else HeteroDistiller
    return cls(teacher, model, alpha=s.alpha, tau=s.tau, kd_scale=s.kd_scale, relation_weight=s.relation_weight,
               device=_device(s), amp=amp != "none", distributed=False)


def distill(s: P.Settings, distiller: HeteroDistiller, data: P.RunData, *, out_dir: str | Path | None = None,
            log: Callable[[str], None] = print) -> dict[str, Any]:
    """:meth:`HeteroDistiller.fit` with the settings of ``s`` (cached teacher logits,
    validation carved with ``s.val_fraction``, test under ``s.mechanisms``); the summary."""
    def every_epoch(epoch: int, row: dict[str, Any]) -> None:
        if epoch == 0 or (epoch + 1) % 10 == 0 or epoch + 1 == s.epochs:
            log(f"distill epoch {epoch + 1}/{s.epochs}: loss {row.get('loss', float('nan')):.4f} "
                f"train {row.get('train_acc', float('nan')):.4f} val {row.get('val_acc')} "
                f"{row.get('train_time', 0.0):.2f}+{row.get('val_time', 0.0):.2f} s")
    with P._quiet():
        return distiller.fit(data.x, data.y, epochs=s.epochs, batch_size=s.batch_size, optimizer=s.optimizer,
                             lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay, scheduler=s.scheduler,
                             val_fraction=s.val_fraction or None, split_seed=s.split_seed,
                             val_mechanism=s.val_mechanism, test=(data.x_test, data.y_test),
                             test_mechanisms=tuple(s.mechanisms), eval_batch_size=s.eval_batch_size,
                             bank_size=s.bank_size, eval_seed=s.eval_seed,
                             cache_teacher_logits=bool(s.cache_teacher_logits and distiller.teacher is not None),
                             out_dir=out_dir, seed=s.seed, progress=False, tensorboard=False,
                             callbacks=[every_epoch])


def evaluate(distiller: HeteroDistiller, x: Tensor, y: Tensor, mechanisms: Sequence[str], *,
             train_x: Tensor | None = None, bank_size: int = 100, batch_size: int = 100) -> dict[str, float]:
    """Test accuracy ``{mechanism: acc}`` of the distilled student."""
    return distiller.evaluate(x, y, mechanism=tuple(mechanisms), train_x=train_x, bank_size=bank_size,
                              batch_size=batch_size)


def predict(model: nn.Module, x: Tensor, train_x: Tensor, mechanism: str, *, bank_size: int = 100,
            batch_size: int = 100, seed: int = 0) -> Tensor:
    """Student logits ``[T, C]`` for flattened samples ``x [T, F]`` (model's device)."""
    return model.predict(x, mechanism=mechanism, train_x=train_x, bank_size=bank_size, batch_size=batch_size,
                         seed=seed)


def teacher_accuracy(teacher: nn.Module, x: Tensor, y: Tensor, device: torch.device) -> float:
    logits = compute_logits(teacher, x, batch_size=1024, device=device)
    return float((logits.argmax(-1).cpu() == y).double().mean())


def teacher_logits(teacher: nn.Module, x: Tensor, device: torch.device, *, amp: bool = False) -> Tensor:
    """``[N, C]`` float32 teacher logits on ``device`` (the distiller's logit cache)."""
    return compute_logits(teacher, x, batch_size=1024, device=device, amp=amp)


# ----------------------------------------------------------------------------- one training step
def make_step_state(distiller: HeteroDistiller, s: P.Settings, *, amp: str = "none"
                    ) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler | None]:
    """Optimiser (the package's sparse-aware one, built as ``fit`` builds it) and, for
    ``amp="fp16"``, a ``GradScaler``."""
    kw: dict[str, Any] = {"momentum": s.momentum} if s.optimizer == "sgd" else {}
    opt = make_optimizer(distiller.learnable_parameters(), lr=s.lr, kind=s.optimizer,
                         weight_decay=s.weight_decay, **kw)
    scaler = torch.amp.GradScaler("cuda") if amp == "fp16" else None
    return opt, scaler


def train_step(distiller: HeteroDistiller, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
               images: Tensor, labels: Tensor, pos: Tensor, cache: Tensor | None, *, amp: str = "none") -> Tensor:
    """One distillation step as the trainer runs it (zero_grad, loss of Eq. 6 with cached
    teacher logits ``cache[pos]``, backward, optimiser step); ``amp`` = ``none``, ``fp16``
    (autocast + ``scaler``) or ``bf16`` (autocast, no scaler), matching the ``amp`` the
    distiller was made with (:func:`make_distiller`: the student's own autocast is the
    distiller's). Returns the detached loss (a device tensor: reading it is the caller's
    synchronisation, not the step's)."""
    opt.zero_grad(set_to_none=True)
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}.get(amp)
    ctx = torch.autocast(images.device.type, dtype=dtype) if dtype is not None else \
        torch.autocast(images.device.type, enabled=False)
    t_logits = cache.index_select(0, pos) if cache is not None else None
    with ctx:
        loss, _, _ = distiller(images, labels, pos, t_logits)
    if scaler is not None:
        scaler.scale(loss).backward()
        scaler.step(opt)
        scaler.update()
    else:
        loss.backward()
        opt.step()
    return loss.detach()


# ----------------------------------------------------------------------------- graph core
def simplex_graph(x: Tensor, s: int, *, metric: str = "sqeuclidean", chunk_size: int | None = None
                  ) -> tuple[Tensor, Tensor]:
    """The sparse simplex graph of Eq. 3 over the rows of ``x [N, D]``: ``edge_index [2, E]``, ``edge_weight [E]``."""
    return sparse_simplex_graph(x, s, metric=metric, chunk_size=chunk_size)


# ----------------------------------------------------------------------------- costs
def write_json(path: str | Path, obj: Any) -> None:
    """Atomic JSON write (the package's writer)."""
    from tg_cnn2gnn.distill.metrics import write_json as _write
    _write(Path(path), obj)


def sync(device: torch.device | str) -> None:
    P._sync(torch.device(device))


def measure(teacher: nn.Module, model: nn.Module, train_x: Tensor, x_test: Tensor, s: P.Settings, *,
            repeats: int = 20) -> dict[str, Any]:
    """Parameters and FLOPs per test sample (teacher; student under ``s.mechanisms``), counted
    by the pipeline (FLOPs do not depend on the device), plus latencies on the models' own device."""
    out = {"teacher": P.measure_teacher(teacher, x_test, latency=False),
           "student": P.measure_student(model, train_x, x_test, mechanisms=tuple(s.mechanisms),
                                        bank_size=s.bank_size, eval_batch_size=s.eval_batch_size,
                                        seed=s.eval_seed, latency=False)}
    out["latency_ms"] = gpu_latency(teacher, model, train_x, x_test, s, repeats=repeats)
    return out


@torch.no_grad()
def gpu_latency(teacher: nn.Module, model: nn.Module, train_x: Tensor, x_test: Tensor, s: P.Settings,
                *, n_batched: int = 10000, repeats: int = 20) -> dict[str, Any]:
    """Latency in ms per sample on the models' device: batch 1 (one ``predict`` / forward
    call) and batched (teacher batches of 1024, every test sample; student mechanisms on
    ``n_batched`` samples), synchronised after each call, median of ``repeats`` (3 batched)."""
    dev = next(model.parameters()).device
    teacher.eval()
    model.eval()
    xt = x_test[:n_batched].to(dev)
    tx = train_x.to(dev)
    flat = xt.flatten(1)

    def timed(fn: Callable[[], Any], reps: int) -> float:
        return P.median_time(lambda: (fn(), P._sync(dev)), min(reps, repeats), warmup=2)

    def teach_batched() -> None:
        for a in range(0, xt.size(0), 1024):
            teacher(xt[a:a + 1024])
    out: dict[str, Any] = {"device": str(dev), "n_batched": int(xt.size(0)),
                           "teacher": {"batch1": 1e3 * timed(lambda: teacher(xt[:1]), repeats),
                                       "batched": 1e3 * timed(teach_batched, 3) / xt.size(0)}}
    for mech in s.mechanisms:
        def call(x: Tensor, m: str = mech) -> Tensor:
            return predict(model, x, tx, m, bank_size=s.bank_size, batch_size=s.eval_batch_size, seed=s.eval_seed)
        row: dict[str, float] = {}
        if mech in ("bank", "one_by_one"):
            row["batch1"] = 1e3 * timed(lambda: call(flat[:1]), repeats)
        row["batched"] = 1e3 * timed(lambda: call(flat), 3) / flat.size(0)
        out[mech] = row
    return out


def _device(s: P.Settings) -> torch.device:
    return P._device(s)


def peak_memory_mib(device: torch.device) -> float | None:
    if device.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(device) / 2 ** 20

