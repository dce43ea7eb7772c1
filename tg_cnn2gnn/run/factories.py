"""Models and training of a run: the teacher network, the student (``gnn`` or ``mlp``), and
:func:`train_student`, the one adapter between the run layer and the distillers.

Every distiller is built inside :func:`train_student` (``method``: ``cnn2gnn``, ``kd``,
``dkd``, ``ce``), so the command line, the examples and the benchmarks train students the
same way and a change of the distillation API touches this one function.
"""
from __future__ import annotations

import contextlib
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator

import torch
from torch import Tensor, nn

from tg_cnn2gnn.run.config import Settings
from tg_cnn2gnn.run.data import RunData
from tg_cnn2gnn.run.util import epoch_printer, quiet, train_device


def build_teacher_model(settings: Settings, info: Any) -> nn.Module:
    """The (randomly initialised) teacher of ``settings`` for dataset ``info``
    (``settings.teacher``; ``teacher_width`` for ``simple-cnn``)."""
    from tg_cnn2gnn.teachers import build_teacher
    kwargs = {"width": settings.teacher_width} if settings.teacher_width is not None else {}
    return build_teacher(settings.teacher, info.num_classes, in_channels=info.channels,
                         image_size=info.image_size, **kwargs)


def build_student_model(settings: Settings, num_train: int, in_features: int, num_classes: int) -> nn.Module:
    """The student of ``settings``.

    ``student="gnn"``: :class:`~tg_cnn2gnn.nn.CNN2GNN` = a :class:`~tg_cnn2gnn.nn.LearnedGraphHead`
    (``head_form``, ``head_hidden``, ``s``; anchor form with ``num_train`` outputs, one per
    training sample) and a :class:`~tg_cnn2gnn.nn.GraphStudent` (``num_layers`` ``conv``
    layers, ``hidden`` wide). ``sparse_grad=True`` is passed explicitly: the run layer trains
    with the package's lazy optimiser, which takes the anchor head's row-sparse gradients.
    ``student="mlp"``: :class:`~tg_cnn2gnn.baselines.MLPStudent` with the GNN's widths."""
    s = settings
    if s.student == "mlp":
        from tg_cnn2gnn.baselines import MLPStudent
        return MLPStudent(in_features, s.hidden, num_classes, num_layers=s.num_layers, dropout=s.dropout)
    from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead
    head = LearnedGraphHead(in_features, num_train=num_train if s.head_form == "anchor" else None, s=s.s,
                            hidden_channels=tuple(s.head_hidden), form=s.head_form,
                            embedding_channels=s.embedding_channels, code_scale=s.code_scale,
                            sparse_grad=True)
    student = GraphStudent(in_features, s.hidden, num_classes, num_layers=s.num_layers, conv=s.conv,
                           dropout=s.dropout)
    return CNN2GNN(head, student)


def needs_teacher(settings: Settings) -> bool:
    """Whether the method of ``settings`` reads a teacher (``ce`` and ``cnn2gnn`` with
    ``alpha = 0`` and no relation term do not)."""
    s = settings
    if s.method in ("kd", "dkd"):
        return True
    if s.method == "ce":
        return False
    return s.alpha > 0 or s.relation_weight > 0


def method_label(settings: Settings) -> str:
    """``"CNN2GNN"``, ``"KD"``, ``"DKD"`` or ``"CE"`` with the student (``-MLP`` / ``-GNN``)."""
    name = {"cnn2gnn": "CNN2GNN", "kd": "KD", "dkd": "DKD", "ce": "CE"}[settings.method]
    if settings.method == "cnn2gnn" and settings.student == "gnn":
        return name
    return f"{name}-{settings.student.upper()}"


#: settings added after run directories with checkpoints existed (issue 12's training graph)
LATER_SETTINGS = frozenset({"graph", "pool_size", "pool_refresh", "graph_nca", "nca_memory", "warm_start_anchors",
                            "relation_tau", "code_scale", "label_vote", "balanced_batches"})


def build_graph_builder(settings: Settings) -> Any:
    """The training-graph builder of a CNN2GNN graph student (:mod:`tg_cnn2gnn.nn.pool_graph`).

    ``graph="pool"``: :class:`~tg_cnn2gnn.nn.pool_graph.TrainingPool` (Eq. 4 over ``pool_size``
    training samples, refreshed every ``pool_refresh`` epochs, NCA weight ``graph_nca``);
    ``graph="batch"`` with ``graph_nca > 0``: :class:`~tg_cnn2gnn.nn.pool_graph.BatchGraph`
    with the NCA term (over the batch and a queue of the last ``nca_memory`` samples); otherwise
    ``None``: the distiller's own batch-internal graph, exactly as before these settings existed
    (bit-identical runs for old configs)."""
    from tg_cnn2gnn.nn.pool_graph import BatchGraph, TrainingPool
    s = settings
    if s.method != "cnn2gnn" or s.student != "gnn":
        return None
    if s.graph == "pool":
        return TrainingPool(s.pool_size, refresh_every=s.pool_refresh, nca_weight=s.graph_nca, seed=s.seed)
    if s.graph_nca > 0:
        return BatchGraph(nca_weight=s.graph_nca, nca_memory=s.nca_memory)
    return None


def consistency_printer(model: nn.Module, data: RunData, log: Callable[[str], None],
                        queries: int = 1000, bank_size: int = 1000) -> list[Callable[[int, dict], None]]:
    """``[callback]`` logging, after each epoch, the class-consistency of ``model``'s learned graph
    (:func:`~tg_cnn2gnn.diagnostics.graph_class_consistency`) on the first ``queries`` validation
    samples against a ``bank_size`` training bank (seed 0; no global RNG touched, so training is
    unchanged); ``[]`` for a student without a learned graph or a run without validation split."""
    if data.val is None or not all(hasattr(model, a) for a in ("code", "dist", "s")):
        return []
    from tg_cnn2gnn.diagnostics import graph_class_consistency
    xv, yv = data.val[0][:queries], data.val[1][:queries]
    bank = min(bank_size, data.n_train)

    def callback(epoch: int, row: dict) -> None:
        dev = next(model.parameters()).device
        gc = graph_class_consistency(model, xv.to(dev), yv.to(dev), data.train_features.to(dev),
                                     data.y_train.to(dev), bank_size=bank)
        log(f"  graph class-consistency (validation, {gc['num_queries']} queries, bank {gc['bank_size']}): learned "
            f"{100 * gc['learned']:.1f} % (weighted {100 * gc['learned_weighted']:.1f} %), raw "
            f"{100 * gc['raw']:.1f} %, chance {100 * gc['chance']:.1f} %")
    return [callback]


def build_run_distiller(settings: Settings, teacher: nn.Module | None, student: nn.Module) -> Any:
    """The distiller of ``settings.method`` (:func:`~tg_cnn2gnn.distill.build_distiller`) with the
    settings' loss terms and, for ``cnn2gnn``, its training-graph builder; the teacher is dropped
    when the method does not read it (:func:`needs_teacher`). Construction only: no side effects."""
    from tg_cnn2gnn.distill import build_distiller
    s = settings
    use_teacher = teacher if needs_teacher(s) else None
    if s.method == "dkd":
        if use_teacher is None:
            raise ValueError("--method dkd needs a teacher")
        return build_distiller("dkd", use_teacher, student, alpha=s.dkd_alpha, beta=s.dkd_beta, tau=s.tau,
                               warmup_epochs=s.warmup_epochs)
    if s.method == "ce":
        return build_distiller("ce", None, student)
    if s.method == "kd":
        return build_distiller("kd", use_teacher, student, alpha=s.alpha if use_teacher else 0.0,
                               tau=s.tau, kd_scale=s.kd_scale)
    return build_distiller("cnn2gnn", use_teacher, student, alpha=s.alpha if use_teacher else 0.0,
                           tau=s.tau, kd_scale=s.kd_scale, relation_weight=s.relation_weight,
                           relation_tau=s.relation_tau, graph_builder=build_graph_builder(s))


def train_student(settings: Settings, data: RunData, teacher: nn.Module | None, student: nn.Module,
                  run_dir: str | Path | None, *, log: Callable[[str], None] = print,
                  callbacks: Iterable[Callable[[int, dict], None]] | None = None, test: bool = True,
                  **overrides: Any) -> dict[str, Any]:
    """Distil ``teacher`` into ``student`` with the method of ``settings`` on ``data``'s
    training part, validated on its validation part, tested (last and best-validation
    weights, ``settings.mechanisms``) on its test split when ``test``.

    Args:
        run_dir: folder of the checkpoints and ``metrics.csv`` (``None``: nothing written).
        callbacks: ``callback(epoch, row)`` after each epoch (default: one log line per epoch).
        overrides: distiller ``fit`` arguments that replace the settings' (the benchmarks'
            learning-rate grids and timing runs), e.g. ``lr=0.05``, ``epochs=2``.

    Returns:
        the distiller's summary (``best_epoch``, ``best_val_acc``, ``test`` = ``{"last": {mech:
        acc}, "best_val": {...}}``, ``mean_train_time_per_epoch``, ``history``, ``device``, ...)
        plus ``train_time_s`` (wall time of the whole fit).
    """
    from tg_cnn2gnn.distill import Trainer
    from tg_cnn2gnn.run.config import RESUME_SAFE
    s = settings
    use_teacher = teacher if needs_teacher(s) else None
    distiller = build_run_distiller(s, teacher, student)
    if s.method == "cnn2gnn" and s.warm_start_anchors and not s.resume:
        from tg_cnn2gnn.nn.pool_graph import warm_start_anchors
        warm_start_anchors(student.head, data.train_features)
    augment = None
    if s.augment == "all" and (data.info.crop_padding > 0 or data.info.hflip):
        from tg_cnn2gnn.data import augment_batch

        def augment(images: Tensor, _name: str = s.dataset) -> Tensor:
            return augment_batch(images, _name)
    epochs = overrides.get("epochs", s.epochs)
    # settings added after checkpoints were first written enter the fingerprint only when not at
    # their default, so that an older run directory still resumes (a change from the default is caught)
    later = Settings().to_dict()
    fingerprint = {f"settings.{k}": v for k, v in s.to_dict().items()
                   if k not in RESUME_SAFE and not (k in LATER_SETTINGS and v == later[k])}
    kwargs: dict[str, Any] = dict(
        epochs=s.epochs, batch_size=s.batch_size, balanced_batches=s.balanced_batches, optimizer=s.optimizer,
        lr=s.lr, momentum=s.momentum,
        weight_decay=s.weight_decay, scheduler=s.scheduler, val_mechanism=s.val_mechanism,
        eval_batch_size=s.eval_batch_size, bank_size=min(s.bank_size, data.n_train), eval_seed=s.eval_seed,
        cache_teacher_logits=bool(s.cache_teacher_logits and use_teacher is not None and augment is None),
        augment=augment, out_dir=run_dir, resume=s.resume, seed=s.seed, progress=s.progress, tensorboard=False,
        device=train_device(s), distributed=False, fingerprint=fingerprint,
        callbacks=list(callbacks) if callbacks is not None else
        [epoch_printer(log, "distill", epochs), *consistency_printer(student, data, log)])
    kwargs.update(overrides)
    t0 = time.perf_counter()
    with quiet(), _deterministic(s.graph == "pool"):
        trainer = Trainer(distiller, **kwargs)
        summary = trainer.fit((data.x_train, data.y_train), val=data.val,
                              test=(data.x_test, data.y_test) if test else None,
                              test_mechanisms=tuple(s.mechanisms))
    summary["train_time_s"] = time.perf_counter() - t0
    summary["method"] = s.method
    return summary


@contextlib.contextmanager
def _deterministic(enabled: bool) -> Iterator[None]:
    """``torch.use_deterministic_algorithms`` for the duration of a fit when ``enabled``.

    Training against a pool (``graph: pool``) accumulates gradients into gathered pool rows
    with repeated indices; with more than one CPU thread PyTorch's default accumulation order
    varies from run to run, so runs were not repeatable. The deterministic kernels make them
    repeatable; other graphs keep PyTorch's defaults (and their bit-for-bit results)."""
    if not enabled:
        yield
        return
    before = torch.are_deterministic_algorithms_enabled()
    warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(before, warn_only=warn_only)
