r"""The one adapter between the GPU scripts / CUDA tests and the package.

Every call the GPU benchmarks (``benchmarks/gpu/*.py``) and the CUDA tests
(``tests/cuda``) make into ``tg_cnn2gnn`` goes through this module, so a refactor of
the trainer, the run layer or the inference only needs this file retargeted.
Written against the run layer and the distiller registry + Trainer of ``integ`` at e061f91:

* settings, data and models: :mod:`tg_cnn2gnn.run` (``Settings``, ``validate``,
  ``load_data`` -> ``RunData``, ``build_teacher_model``, ``build_student_model``);
* teacher training: :func:`tg_cnn2gnn.distill.pretrain_teacher` (fp16 AMP on CUDA);
* distillation: :func:`tg_cnn2gnn.run.factories.train_student` (the distiller registry +
  :class:`~tg_cnn2gnn.distill.Trainer`, as the command line trains); one training step:
  :func:`~tg_cnn2gnn.distill.build_distiller` and ``Distiller.forward_train``;
* costs: :func:`tg_cnn2gnn.run.measure.measure_teacher` / ``measure_student`` for FLOPs
  (device independent; they count on a CPU copy) and :func:`gpu_latency` here for
  latency on the model's own device (the run layer's latencies are CPU-only).

bfloat16: the Trainer's ``amp`` is float16 + GradScaler only (``TrainLoop.autocast``), so
``amp="bf16"`` is one small override of the public ``forward_train`` (:class:`Bf16CNN2GNN`)
used by the step probes; :func:`distill` (the Trainer) takes ``"none"`` and ``"fp16"``.

Shapes: images ``[N, C, H, W]`` (normalised), labels ``[N]``, node features ``[N, F]``
with ``F = C H W`` (the student reads flattened images).
"""
from __future__ import annotations

import functools
import operator
from pathlib import Path
from typing import Any, Callable

import torch
from torch import Tensor, nn

from tg_cnn2gnn.data import augment_batch
from tg_cnn2gnn.distill import CNN2GNNDistiller, Distiller, TrainBatch, compute_logits, freeze, pretrain_teacher
from tg_cnn2gnn.functional import sparse_simplex_graph
from tg_cnn2gnn.nn import make_optimizer
from tg_cnn2gnn.run import RunData, Settings, build_student_model, build_teacher_model, load_data, split_data
from tg_cnn2gnn.run import validate as _validate
from tg_cnn2gnn.run.factories import build_run_distiller, train_student
from tg_cnn2gnn.run.measure import hardware, measure_student, measure_teacher, median_time
from tg_cnn2gnn.run.util import device_of, quiet

__all__ = ["Settings", "RunData", "AMP_MODES", "settings", "load", "split", "device", "build_teacher",
           "build_student", "augment", "train_teacher", "teacher_meta", "save_teacher_shards", "load_teacher_shards",
           "Bf16CNN2GNN", "make_distiller", "distill", "predict", "teacher_accuracy", "teacher_logits",
           "make_step_state", "train_step", "start_epoch", "kd_mlp_settings", "graph_consistency", "label_vote",
           "simplex_graph", "write_json", "sync", "hardware", "measure", "gpu_latency", "peak_memory_mib"]

#: ``amp`` values of the step functions: float32, bfloat16 autocast, float16 autocast + GradScaler.
AMP_MODES = ("none", "bf16", "fp16")


def settings(values: dict[str, Any]) -> Settings:
    """Checked :class:`~tg_cnn2gnn.run.Settings` from a config mapping (unknown keys raise)."""
    return _validate(Settings.from_dict(values, source="gpu config"))


def load(s: Settings) -> RunData:
    """Train / validation / test tensors of ``s`` (on the CPU; ``subset`` / ``test_subset`` applied)."""
    return load_data(s)


def split(x: Tensor, y: Tensor, x_test: Tensor, y_test: Tensor, info: Any, *, val_fraction: float = 0.0,
          split_seed: int = 0) -> RunData:
    """A :class:`RunData` from tensors already in memory (synthetic data of the throughput run)."""
    return split_data(x, y, x_test, y_test, info, val_fraction=val_fraction, split_seed=split_seed)


def device(s: Settings) -> torch.device:
    """The device of ``s`` (``auto``: CUDA when available)."""
    return device_of(s)


def build_teacher(s: Settings, data: RunData) -> nn.Module:
    """The randomly initialised teacher of ``s`` (seeded with ``s.seed``)."""
    torch.manual_seed(s.seed)
    return build_teacher_model(s, data.info)


def build_student(s: Settings, data: RunData) -> nn.Module:
    """The CNN2GNN model of ``s`` (head + GNN student; anchor head sized to the training part)."""
    torch.manual_seed(s.seed)
    return build_student_model(s, data.n_train, data.in_features, data.info.num_classes)


def augment(s: Settings, images: Tensor) -> Tensor:
    """The dataset's random training augmentation (crop / flip) on a device batch ``[B, C, H, W]``."""
    return augment_batch(images, s.dataset)


def train_teacher(s: Settings, data: RunData, teacher: nn.Module, *, amp: bool, augment: bool,
                  out_dir: str | Path | None = None, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Cross-entropy pre-training of ``teacher`` on the training part (``s.teacher_*``
    settings, ``s.scheduler``), random crop augmentation when ``augment``, fp16 AMP when
    ``amp``; returns the package's result (``history`` with per-epoch ``train_time`` and
    ``val_acc``). (The run layer's ``teacher_cache.train_teacher`` takes no ``amp`` and
    writes a run directory, so :func:`~tg_cnn2gnn.distill.pretrain_teacher` is called here.)"""
    aug = (lambda images: augment_batch(images, s.dataset)) if augment else None  # noqa: E731

    def every_epoch(epoch: int, row: dict[str, Any]) -> None:
        log(f"teacher epoch {epoch + 1}/{s.teacher_epochs}: loss {row.get('loss', float('nan')):.4f} "
            f"val {row.get('val_acc')} {row.get('train_time', 0.0):.1f} s")
    with quiet():
        return pretrain_teacher(teacher, data.x_train, data.y_train, epochs=s.teacher_epochs,
                                batch_size=s.teacher_batch_size, optimizer=s.teacher_optimizer, lr=s.teacher_lr,
                                weight_decay=s.teacher_weight_decay, scheduler=s.scheduler, augment=aug,
                                val=data.val, out_dir=out_dir, seed=s.seed, device=device(s), amp=amp,
                                distributed=False, progress=False, tensorboard=False, callbacks=[every_epoch])


def teacher_meta(s: Settings) -> dict[str, Any]:
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


class Bf16CNN2GNN(CNN2GNNDistiller):
    """The CNN2GNN distiller with its training forward under bfloat16 autocast (teacher and
    GNN; the graph head and Eq. 3 stay float32, :meth:`~Distiller.make_batch` turns autocast
    off for them). The Trainer's ``amp`` is float16 only (``TrainLoop.autocast``); this one
    override of the public ``forward_train`` is the bf16 path. Retarget: when the Trainer
    takes an AMP dtype, drop this class and pass the dtype in :func:`distill` / :func:`train_step`."""

    def forward_train(self, batch: TrainBatch, epoch: int) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.autocast(batch.images.device.type, dtype=torch.bfloat16):
            return super().forward_train(batch, epoch)


def _check_amp(amp: str | bool, allowed: tuple[str, ...] = AMP_MODES, why: str = "") -> str:
    amp = "fp16" if amp is True else "none" if amp is False else amp
    if amp not in allowed:
        raise ValueError(f"amp={amp!r} is not supported{why}; allowed values: {', '.join(map(repr, allowed))}")
    return amp


def make_distiller(s: Settings, teacher: nn.Module | None, model: nn.Module, *, amp: str | bool = "none"
                   ) -> Distiller:
    """The distiller of ``s`` as ``train_student`` builds it
    (:func:`tg_cnn2gnn.run.factories.build_run_distiller`: the loss settings and, for ``cnn2gnn``,
    the training-graph builder of ``s``, e.g. ``graph: pool`` / ``graph_nca``), moved to ``s``'s
    device, for :func:`train_step`; call :func:`start_epoch` before the first step (a pool builder
    needs the training set). Methods: ``cnn2gnn`` with a gnn student, or ``kd`` with an mlp
    student (:func:`kd_mlp_settings`; fp32 / fp16 only). ``amp="bf16"`` gives
    :class:`Bf16CNN2GNN` (same state, weights and loss); ``"fp16"`` and ``"none"`` the plain
    distiller (fp16 autocast is :func:`train_step`'s, as the Trainer's is its loop's)."""
    amp = _check_amp(amp)
    if (s.method, s.student) == ("kd", "mlp"):   # the KD-MLP baseline
        _check_amp(amp, ("none", "fp16"), " for the KD-MLP baseline")
    elif (s.method, s.student) != ("cnn2gnn", "gnn"):
        raise ValueError(f"method={s.method!r}, student={s.student!r}: the GPU step probes build the cnn2gnn "
                         "distiller of a gnn student or the kd distiller of an mlp student only")
    d = build_run_distiller(s, teacher, model)
    if amp == "bf16":
        d.__class__ = Bf16CNN2GNN   # a subclass with no state of its own: only forward_train differs
    return d.to(device(s))


def distill(s: Settings, data: RunData, teacher: nn.Module | None, model: nn.Module, *, amp: str | bool = "none",
            out_dir: str | Path | None = None, log: Callable[[str], None] = print, **overrides: Any
            ) -> dict[str, Any]:
    """Distil ``teacher`` into ``model`` as the command line does
    (:func:`tg_cnn2gnn.run.factories.train_student`: the distiller of ``s.method``, a
    :class:`~tg_cnn2gnn.distill.Trainer` with the settings of ``s``, cached teacher logits,
    validation on ``data``'s validation part, test under ``s.mechanisms``); ``amp``: ``"none"``
    or ``"fp16"`` (the Trainer's ``amp=True``); ``overrides``: Trainer arguments (e.g.
    ``distributed=True``). Returns the summary (``history``, ``test``, ``train_time_s``, ...)."""
    amp = _check_amp(amp, ("none", "fp16"), " by the Trainer (its AMP is float16 + GradScaler only)")

    def every_epoch(epoch: int, row: dict[str, Any]) -> None:   # every epoch: a run killed at its limit keeps its curve
        log(f"distill epoch {epoch + 1}/{s.epochs}: loss {row.get('loss', float('nan')):.4f} "
            f"train {row.get('train_acc', float('nan')):.4f} val {row.get('val_acc')} "
            f"{row.get('train_time', 0.0):.2f}+{row.get('val_time', 0.0):.2f} s")
    overrides.setdefault("progress", False)
    return train_student(s, data, teacher, model, out_dir, log=log, callbacks=[every_epoch], amp=amp == "fp16",
                         **overrides)


def start_epoch(distiller: Distiller, x: Tensor, y: Tensor, epoch: int = 0) -> None:
    """The Trainer's per-epoch hook (``on_epoch_start``: a pool builder keeps the training set
    ``x [N, ...]``, ``y [N]`` and refreshes its pool codes); a no-op for distillers without one."""
    hook = getattr(distiller, "on_epoch_start", None)
    if hook is not None:
        hook(epoch, x, y)


def kd_mlp_settings(s: Settings) -> Settings:
    """``s`` as Hinton KD into an MLP of the same widths, data and budget (the main job's
    KD-MLP row, :func:`tg_cnn2gnn.run.commands.as_kd_mlp`)."""
    from tg_cnn2gnn.run.commands import as_kd_mlp
    return as_kd_mlp(s)


def graph_consistency(model: nn.Module, data: RunData, s: Settings) -> dict[str, Any] | None:
    """Class-consistency of ``model``'s learned graph on the test split against a 1,000-sample
    training bank, as the run summary reports it (``None`` for a student without a graph)."""
    from tg_cnn2gnn.run.commands import graph_consistency as _gc
    return _gc(model, data, s)


def label_vote(model: nn.Module, data: RunData, s: Settings, log: Callable[[str], None] = print
               ) -> dict[str, Any] | None:
    """Test accuracy with the learned graph's label vote (``s.label_vote``; bank = the whole
    training split), as the run summary reports it; ``None`` when ``label_vote`` is 0."""
    from tg_cnn2gnn.run.commands import label_vote_result
    return label_vote_result(model, data, s.replace(measure=False), log=log)


def predict(model: nn.Module, x: Tensor, train_x: Tensor, mechanism: str, *, bank_size: int = 100,
            batch_size: int = 100, seed: int = 0) -> Tensor:
    """Student logits ``[T, C]`` for flattened samples ``x [T, F]`` (model's device)."""
    return model.predict(x, mechanism=mechanism, train_x=train_x, bank_size=bank_size, batch_size=batch_size,
                         seed=seed)


def teacher_accuracy(teacher: nn.Module, x: Tensor, y: Tensor, device: torch.device) -> float:
    logits = compute_logits(teacher, x, batch_size=1024, device=device)
    return float((logits.argmax(-1).cpu() == y).double().mean())


def teacher_logits(teacher: nn.Module, x: Tensor, device: torch.device, *, amp: bool = False) -> Tensor:
    """``[N, C]`` float32 teacher logits on ``device`` (the Trainer's logit cache)."""
    return compute_logits(teacher, x, batch_size=1024, device=device, amp=amp)


# ----------------------------------------------------------------------------- one training step
def make_step_state(distiller: Distiller, s: Settings, *, amp: str = "none", init_scale: float = 2.0 ** 16
                    ) -> tuple[torch.optim.Optimizer, torch.amp.GradScaler | None]:
    """Optimiser (the package's sparse-aware one, built as the Trainer builds it) and, for
    ``amp="fp16"``, a ``GradScaler`` starting at ``init_scale`` (torch's default 2^16 overflows
    the first steps' fp16 gradients, which the scaler then skips while it backs off)."""
    kw: dict[str, Any] = {"momentum": s.momentum} if s.optimizer == "sgd" else {}
    opt = make_optimizer(distiller.learnable_parameters(), lr=s.lr, kind=s.optimizer,
                         weight_decay=s.weight_decay, **kw)
    scaler = torch.amp.GradScaler("cuda", init_scale=init_scale) if _check_amp(amp) == "fp16" else None
    return opt, scaler


def train_step(distiller: Distiller, opt: torch.optim.Optimizer, scaler: torch.amp.GradScaler | None,
               images: Tensor, labels: Tensor, pos: Tensor, cache: Tensor | None, *, amp: str = "none",
               epoch: int = 0) -> Tensor:
    """One distillation step as the Trainer's loop runs it (``distill/_engine.py``
    ``TrainLoop._epoch``): zero_grad, ``forward_train`` on a :class:`TrainBatch` with the
    cached teacher logits ``cache[pos]``, the loss = sum of the terms, backward, optimiser
    step; ``amp``: ``none``, ``fp16`` (autocast + ``scaler``) or ``bf16`` (the distiller of
    :func:`make_distiller` autocasts itself, no scaler). Not included: the loop's per-step
    metric sums and its non-finite flag (device tensors, read once per epoch). Returns the
    detached loss (a device tensor: reading it is the caller's synchronisation, not the step's)."""
    amp = _check_amp(amp)
    opt.zero_grad(set_to_none=True)
    ctx = torch.autocast(images.device.type, dtype=torch.float16) if amp == "fp16" else \
        torch.autocast(images.device.type, enabled=False)
    t_logits = cache.index_select(0, pos) if cache is not None else None
    with ctx:
        _, terms = distiller.forward_train(TrainBatch(images, labels, pos, None, t_logits), epoch)
        loss = functools.reduce(operator.add, terms.values())
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


def sync(dev: torch.device | str) -> None:
    """Wait for the device's queued work (no-op on the CPU)."""
    dev = torch.device(dev)
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)


def measure(teacher: nn.Module, model: nn.Module, train_x: Tensor, x_test: Tensor, s: Settings, *,
            repeats: int = 20) -> dict[str, Any]:
    """Parameters and FLOPs per test sample (teacher; student under ``s.mechanisms``), counted
    by :mod:`tg_cnn2gnn.run.measure` (FLOPs do not depend on the device), plus latencies on
    the models' own device."""
    out = {"teacher": measure_teacher(teacher, x_test, latency=False),
           "student": measure_student(model, train_x, x_test, mechanisms=tuple(s.mechanisms),
                                      bank_size=s.bank_size, eval_batch_size=s.eval_batch_size,
                                      seed=s.eval_seed, latency=False)}
    out["latency_ms"] = gpu_latency(teacher, model, train_x, x_test, s, repeats=repeats)
    return out


@torch.no_grad()
def gpu_latency(teacher: nn.Module, model: nn.Module, train_x: Tensor, x_test: Tensor, s: Settings,
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
        return median_time(lambda: (fn(), sync(dev)), min(reps, repeats), warmup=2)

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
    if hasattr(model, "bank_predictor"):
        # the frozen-bank predictor (the deployed form of ``bank``: the bank's codes computed once)
        pred = model.bank_predictor(tx, bank_size=min(s.bank_size, tx.size(0)), seed=s.eval_seed).eval()
        out["predictor"] = {"batch1": 1e3 * timed(lambda: pred(flat[:1]), repeats),
                            "batched": 1e3 * timed(lambda: pred(flat), 3) / flat.size(0)}
    return out


def peak_memory_mib(dev: torch.device) -> float | None:
    if dev.type != "cuda":
        return None
    return torch.cuda.max_memory_allocated(dev) / 2 ** 20
