r"""CNN2GNN heterogeneous distillation (paper §3.3, Algorithm 2)."""
from __future__ import annotations

import math
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from tg_cnn2gnn.distill._data import (DatasetSource, TensorSource, as_eval_data, check_features,
                                      check_images, check_labels, materialize)
from tg_cnn2gnn.distill._engine import (SCHEDULERS, Callback, TrainLoop, build_scheduler, check_float,
                                        warn_cpu_amp)
from tg_cnn2gnn.distill.batch import DistillData
from tg_cnn2gnn.distill.checkpoint import load_checkpoint
from tg_cnn2gnn.distill.ddp import (DistContext, allreduce_sum, broadcast_module, broadcast_object,
                                    setup_distributed)
from tg_cnn2gnn.distill.loss import DistillationLoss, check_tau, relation_loss
from tg_cnn2gnn.distill.metrics import write_json
from tg_cnn2gnn.distill.teacher import compute_logits, freeze, load_teacher, pretrain_teacher
from tg_cnn2gnn.functional._checks import check_choice, check_positive_int

#: Optimisers of :meth:`HeteroDistiller.fit` (via :func:`tg_cnn2gnn.nn.make_optimizer`).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")


def _split(labels: Tensor, val_fraction: float, seed: int) -> tuple[Tensor, Tensor]:
    from tg_cnn2gnn.data import train_val_split
    return train_val_split(labels, val_fraction, seed=seed)


class HeteroDistiller(nn.Module):
    r"""Distil a CNN teacher into a graph head + GNN student (CNN2GNN, paper Algorithm 2).

    The distiller owns the teacher and the student model (as mdistiller's
    ``distillers/_base.py``): the teacher is frozen (``requires_grad=False``), kept in
    eval mode even when :meth:`train` is called, and run under ``torch.no_grad``; only the
    model's parameters (graph head + student) are optimised
    (:meth:`learnable_parameters`). For a mini-batch :math:`\mathcal{B}` of training
    samples the loss is paper Eq. 6 and 7:

    .. math::
        \mathcal{L} = \frac{1}{|\mathcal{B}|}\sum_{i\in\mathcal{B}}\mathrm{CE}(f(v_i; A), y_i)
          + \alpha\, c\, \mathrm{KL}\big(q(f_T(x_i), \tau)\,\|\,q(f(v_i; A), \tau)\big),

    KL averaged over the batch, :math:`c=\tau^2` (``kd_scale="tau2"``) or 1 (``"none"``).

    Each mini-batch travels as a PyG :class:`~tg_cnn2gnn.distill.DistillData` (``x`` =
    flattened samples, ``y``, ``index`` = training-sample positions, ``teacher_logits``,
    and the head's ``edge_index``/``edge_weight``); the student is called by
    :meth:`student_forward` (``model.student(data.x, data.edge_index, data.edge_weight)``),
    which a subclass may override to run any PyG model on the ``Data`` graph.

    **Cached teacher logits** (``fit(cache_teacher_logits=True)``): the teacher's logits
    are computed once for the training set instead of at every step. This is exact only
    when a sample's teacher input is the same at every epoch -- no random augmentation
    (``augment=None``; for Dataset input, a deterministic transform) -- and the teacher is
    deterministic in eval mode (dropout is off and batch norm uses its running statistics
    in eval mode, which is how the distiller always runs it). It is refused with ``augment``.

    **Devices**: CUDA when available, CPU otherwise (or ``device=``). ``amp=True``
    runs the teacher and the student under ``torch.autocast(float16)`` with a
    ``GradScaler`` on CUDA (ignored on CPU, with a warning); the graph head and Eq. 3 run
    in float32. **Multi-process** (``torchrun --nproc_per_node=N``; gloo on CPU, nccl on
    GPU): every rank trains on its own shard of each epoch and its mini-batch is its own
    graph; gradients are all-reduced (sparse anchor-head gradients included, see
    :mod:`tg_cnn2gnn.distill.ddp`); only rank 0 writes files.

    Args:
        teacher: the CNN teacher (any ``nn.Module`` mapping images ``[B, C, H, W]`` to logits
            ``[B, C]``), or ``None`` when ``alpha == 0`` (plain student training).
        model: the student model: a :class:`~tg_cnn2gnn.nn.CNN2GNN` or any module with
            ``graph(x [B, F], index [B]) -> (edge_index, edge_weight)``, a ``student``
            ``(x, edge_index, edge_weight) -> logits`` and ``predict(x, mechanism=..., train_x=...)``.
        alpha: weight of the KD term (paper: 1).
        tau: temperature.
        kd_scale: ``"tau2"`` (Hinton's :math:`\tau^2` factor) or ``"none"``.
        device: default ``cuda`` (``cuda:LOCAL_RANK`` under torchrun) when available, else CPU.
        amp: mixed precision on CUDA.
        distributed: ``"auto"`` (join torchrun's process group when ``WORLD_SIZE > 1``, or an
            initialised group), ``True`` or ``False``.
        relation_weight: weight of the teacher-relation term for the graph head (ours, not in
            the paper; :func:`~tg_cnn2gnn.distill.relation_loss`): the edge-weighted rate at
            which a node's neighbours belong to another class according to the teacher's
            probabilities. ``0`` (default) is the paper's objective.
        relation_tau: temperature of the teacher probabilities in the relation term.
    """

    def __init__(self, teacher: nn.Module | None, model: nn.Module, *, alpha: float = 1.0, tau: float = 4.0,
                 kd_scale: str = "tau2", device: str | torch.device | None = None, amp: bool = False,
                 distributed: bool | str = "auto", relation_weight: float = 0.0, relation_tau: float = 1.0
                 ) -> None:
        super().__init__()
        self.criterion = DistillationLoss(alpha, tau, kd_scale)
        if isinstance(relation_weight, bool) or not isinstance(relation_weight, (int, float)) \
                or not math.isfinite(relation_weight) or relation_weight < 0:
            raise ValueError(f"relation_weight must be a finite number >= 0, got {relation_weight!r}")
        self.relation_weight = float(relation_weight)
        self.relation_tau = check_tau(relation_tau)
        if teacher is None:
            if self.criterion.alpha != 0.0:
                raise ValueError(f"teacher is None but alpha={alpha}; pass a teacher or alpha=0")
            if self.relation_weight != 0.0:
                raise ValueError(f"teacher is None but relation_weight={relation_weight}; the relation "
                                 "term needs a teacher")
        elif not isinstance(teacher, nn.Module):
            raise TypeError(f"teacher must be an nn.Module (or None with alpha=0), got {type(teacher).__name__}")
        if not isinstance(model, nn.Module):
            raise TypeError(f"model must be an nn.Module (e.g. tg_cnn2gnn.nn.CNN2GNN), got {type(model).__name__}")
        missing = [a for a in ("graph", "student", "predict") if not hasattr(model, a)]
        if missing:
            raise TypeError(f"model {type(model).__name__} lacks {missing}; it must provide graph(x, index), "
                            "a student(x, edge_index, edge_weight) and predict(x, mechanism=..., train_x=...) "
                            "like tg_cnn2gnn.nn.CNN2GNN")
        self.ctx: DistContext = setup_distributed(distributed, device)
        self.amp = bool(amp)
        warn_cpu_amp(self.amp, self.ctx.device)
        self.model = model
        if teacher is not None:
            self.teacher = freeze(teacher)
        else:
            self.teacher = None
        self.to(self.ctx.device)
        self.train_features: Tensor | None = None  # set by fit: [n_train, F] (row k = training id k)
        self.teacher_cache: Tensor | None = None

    # ---------------------------------------------------------------- properties
    @property
    def uses_teacher(self) -> bool:
        """Whether training needs the teacher's logits (KD term or relation term)."""
        return self.teacher is not None and (self.alpha > 0 or self.relation_weight > 0)

    @property
    def alpha(self) -> float:
        return self.criterion.alpha

    @property
    def tau(self) -> float:
        return self.criterion.tau

    @property
    def kd_scale(self) -> str:
        return self.criterion.kd_scale

    @property
    def device(self) -> torch.device:
        return self.ctx.device

    def train(self, mode: bool = True) -> "HeteroDistiller":
        """Set the student model's mode; the teacher always stays in eval mode."""
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()
        return self

    def learnable_parameters(self) -> list[nn.Parameter]:
        """The parameters the optimiser sees: the model's (graph head and student), never the teacher's."""
        return [p for p in self.model.parameters() if p.requires_grad]

    # ---------------------------------------------------------------- one batch
    def _autocast(self) -> Any:
        if self.amp and self.device.type == "cuda":
            return torch.autocast("cuda", dtype=torch.float16)
        return torch.autocast(self.device.type, enabled=False)

    @torch.no_grad()
    def teacher_logits(self, images: Tensor) -> Tensor:
        """The frozen teacher's logits ``[B, C]`` (float32) for images ``[B, C, H, W]`` (eval, no grad)."""
        if self.teacher is None:
            raise ValueError("this distiller has no teacher (alpha=0)")
        self.teacher.eval()
        with self._autocast():
            return self.teacher(images).float()

    def make_batch(self, x: Tensor, y: Tensor, index: Tensor, teacher_logits: Tensor | None = None) -> DistillData:
        r"""The mini-batch graph: node features ``x [B, F]``, labels ``y [B]``, training
        indices ``index [B]``, ``teacher_logits [B, C]`` and the head's learned graph
        ``edge_index [2, E]``, ``edge_weight [E]`` (computed in float32, differentiable)."""
        x = x.flatten(1) if x.dim() > 2 else x
        with torch.autocast(x.device.type, enabled=False):
            edge_index, edge_weight = self.model.graph(x.float(), index)
        data = DistillData(x=x, y=y, index=index, edge_index=edge_index, edge_weight=edge_weight)
        if teacher_logits is not None:
            data.teacher_logits = teacher_logits
        return data

    def student_forward(self, data: DistillData) -> Tensor:
        """Logits ``[B, C]`` of the student on the mini-batch graph (override to swap the GNN)."""
        with self._autocast():
            return self.model.student(data.x, data.edge_index, data.edge_weight)

    def forward(self, images: Tensor, labels: Tensor, index: Tensor, teacher_logits: Tensor | None = None,
                features: Tensor | None = None) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """One training step's loss (paper Eq. 6).

        Args:
            images: ``[B, C, H, W]`` (the teacher's input; flattened they are the node features).
            labels: ``[B]``.
            index: ``[B]`` training-sample positions (anchor head neurons).
            teacher_logits: ``[B, C]`` precomputed logits; computed here when ``None`` and ``alpha > 0``.
            features: ``[B, F]`` node features instead of the flattened images.

        Returns:
            ``(loss, parts, student_logits)``; ``parts`` = detached ``loss``, ``ce``, ``kd``.
        """
        if teacher_logits is None and self.uses_teacher:
            teacher_logits = self.teacher_logits(images)
        nodes = features if features is not None else images.flatten(1)
        data = self.make_batch(nodes, labels, index, teacher_logits)
        logits = self.student_forward(data)
        t_logits = data.teacher_logits if "teacher_logits" in data else None
        loss, parts = self.criterion(logits.float(), t_logits, labels)
        if self.relation_weight > 0:
            rel = relation_loss(data.edge_index, data.edge_weight, t_logits, self.relation_tau)
            loss = loss + self.relation_weight * rel
            parts = {**parts, "loss": loss.detach(), "rel": rel.detach()}
        return loss, parts, logits

    # ---------------------------------------------------------------- teacher
    def pretrain_teacher(self, x: Tensor | Dataset, y: Tensor | None = None, **kwargs: Any) -> dict[str, Any]:
        """Train the teacher with cross-entropy (Algorithm 2, line 3); see
        :func:`tg_cnn2gnn.distill.pretrain_teacher` for the arguments. The teacher is frozen
        again afterwards."""
        if self.teacher is None:
            raise ValueError("this distiller has no teacher")
        kwargs.setdefault("device", self.device)
        kwargs.setdefault("amp", self.amp)
        try:
            return pretrain_teacher(self.teacher, x, y, **kwargs)
        finally:
            freeze(self.teacher)

    def load_teacher(self, path: str | os.PathLike, *, strict: bool = True) -> "HeteroDistiller":
        """Load teacher weights (ours or a user's state-dict file; ``weights_only=True``) and freeze."""
        if self.teacher is None:
            raise ValueError("this distiller has no teacher")
        load_teacher(self.teacher, path, strict=strict)
        freeze(self.teacher.to(self.device))
        self.teacher_cache = None
        return self

    @staticmethod
    def num_train_for(labels: Tensor | Dataset, val_fraction: float | None = 0.1, split_seed: int = 0) -> int:
        """How many training samples :meth:`fit` keeps after carving ``val_fraction`` of
        ``labels`` (or a Dataset) for validation: the anchor head's ``num_train``."""
        from tg_cnn2gnn.data import get_labels
        y = get_labels(labels)
        if not val_fraction:
            return int(y.numel())
        return int(_split(y, val_fraction, split_seed)[0].numel())

    # ---------------------------------------------------------------- fit
    def fit(self, x: Tensor | Dataset, y: Tensor | None = None, *, epochs: int = 200, batch_size: int = 100,
            optimizer: str = "adam", lr: float = 0.01, momentum: float = 0.9, weight_decay: float = 0.0,
            nesterov: bool = False, scheduler: str = "cosine", step_size: int | None = None, gamma: float = 0.1,
            val: tuple | Dataset | None = None, val_fraction: float | None = 0.1, split_seed: int = 0,
            val_mechanism: str = "bank", test: tuple | Dataset | None = None,
            test_mechanisms: str | Sequence[str] = ("bank", "batch"), eval_batch_size: int = 100,
            bank_size: int = 100, eval_seed: int = 0, cache_teacher_logits: bool = False,
            augment: Callable[[Tensor], Tensor] | None = None, features: Tensor | None = None,
            out_dir: str | os.PathLike | None = None, resume: bool = False, seed: int = 0,
            progress: bool = True, tensorboard: bool | str = "auto", num_workers: int = 0,
            eval_dataset: Dataset | None = None, callbacks: Iterable[Callback] = ()) -> dict[str, Any]:
        r"""Distil the teacher into the model (Algorithm 2, lines 4-9), then test (line 10).

        Args:
            x: training images ``[N, C, H, W]`` (in memory; the fast path), or a map-style
                Dataset yielding ``(image, label)`` or ``(image, label, index)``.
            y: labels ``[N]`` (tensor input).
            epochs, batch_size: paper: 200 and 100. The last partial batch of an epoch is
                merged into the previous one (every graph has ``>= batch_size`` nodes).
            optimizer: ``"adam"``, ``"adamw"`` or ``"sgd"`` (momentum, nesterov), built by
                :func:`tg_cnn2gnn.nn.make_optimizer` (accepts the anchor head's sparse gradients).
            lr, weight_decay: paper lr: 0.01.
            scheduler: ``"cosine"`` (to 0 over ``epochs``), ``"step"`` (``gamma`` every
                ``step_size`` epochs, default ``epochs // 3``) or ``"none"``; stepped per epoch.
            val: explicit validation data ``(x, y)``, ``(x, y, features)`` or a Dataset; then
                nothing is carved from ``x``.
            val_fraction: otherwise, the share of ``x`` held out (stratified,
                :func:`tg_cnn2gnn.data.train_val_split` with ``split_seed``) for validation;
                ``None``/0: no validation (the "best" checkpoint is then the last one). The
                anchor head must have ``num_train`` = the remaining samples
                (:meth:`num_train_for`); they are numbered ``0 .. num_train-1`` in order.
            val_mechanism: inference mechanism for the per-epoch validation accuracy.
            test: ``(x, y)``, ``(x, y, features)`` or a Dataset evaluated at the end with the
                last and the best-validation weights, under every mechanism of ``test_mechanisms``.
            eval_batch_size, bank_size, eval_seed: forwarded to ``model.predict``
                (``batch_size``, ``bank_size``, ``seed``).
            cache_teacher_logits: compute the teacher's logits once (see the class docstring
                for when this is valid; refused with ``augment``).
            augment: ``callable(images [B, C, H, W]) -> images`` applied to each training batch
                (teacher and student see the same augmented batch), e.g.
                ``partial(tg_cnn2gnn.data.augment_batch, name="cifar10")``. It should draw from
                torch's global RNG (seeded and checkpointed) for exact resume.
            features: ``[N, F]`` node features for the student and the head instead of the
                flattened images (the teacher still reads the images).
            out_dir: folder for ``checkpoint.pt`` (every epoch, atomic), ``best.pt``,
                ``metrics.csv`` (plus TensorBoard when installed) and ``summary.json``;
                ``None`` writes nothing.
            resume: continue from ``out_dir/checkpoint.pt`` if it exists (model, optimiser,
                scheduler, RNG states, epoch, metrics); the settings must match.
            seed: seeds torch/NumPy/random (``seed + rank``) and the shuffling (an explicit
                generator per epoch): a CPU run is reproducible bit for bit.
            progress: tqdm bars (rank 0).
            num_workers: DataLoader workers (Dataset input).
            eval_dataset: Dataset input: the same samples without random augmentation, used to
                read the training features for inference, validation carving and cached logits.
            callbacks: ``callback(epoch, row)`` after each epoch's checkpoint.

        Returns:
            the summary (also ``out_dir/summary.json``): settings, ``best_epoch``,
            ``best_val_acc``, ``last_val_acc``, ``test`` = ``{"last": {mech: acc},
            "best_val": {mech: acc}}``, ``teacher_test_acc``, mean times per epoch, and the
            per-epoch ``history``.
        """
        check_positive_int("epochs", epochs)
        check_positive_int("batch_size", batch_size)
        check_choice("optimizer", optimizer, OPTIMIZERS)
        check_float("lr", lr, inclusive=False)
        check_float("momentum", momentum)
        check_float("weight_decay", weight_decay)
        check_choice("scheduler", scheduler, SCHEDULERS)
        check_positive_int("eval_batch_size", eval_batch_size)
        check_positive_int("bank_size", bank_size)
        if isinstance(test_mechanisms, str):
            test_mechanisms = (test_mechanisms,)
        allowed = tuple(getattr(self.model, "mechanisms", ("bank", "batch", "one_by_one", "direct")))
        check_choice("val_mechanism", val_mechanism, allowed)
        for m in test_mechanisms:
            check_choice("test_mechanisms[i]", m, allowed)
        if cache_teacher_logits and augment is not None:
            raise ValueError("cache_teacher_logits=True is only valid without random augmentation: the cached "
                             "logits are those of the un-augmented images; pass augment=None or "
                             "cache_teacher_logits=False")
        if cache_teacher_logits and self.teacher is None:
            raise ValueError("cache_teacher_logits=True needs a teacher")
        if val_fraction is not None and val_fraction != 0:
            check_float("val_fraction", val_fraction, inclusive=False)
            if val_fraction >= 1:
                raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
        ctx = self.ctx
        dev = ctx.device

        # ------------------------------------------------------------ data
        carve = val is None and bool(val_fraction)
        val_data = as_eval_data("val", val) if val is not None else None
        if isinstance(x, Dataset):
            if y is not None or features is not None or augment is not None:
                raise ValueError("with Dataset input, y, features and augment must be None (labels and "
                                 "augmentation come from the dataset)")
            from tg_cnn2gnn.data import get_labels
            labels = get_labels(eval_dataset if eval_dataset is not None else x)
            if carve:
                tr, va = _split(labels, val_fraction, split_seed)
                vx, vy = materialize(eval_dataset if eval_dataset is not None else x, va, num_workers)
                val_data = (vx, vy, None)
            else:
                tr = torch.arange(labels.numel())
            source: Any = DatasetSource(x, tr, num_workers, eval_dataset)
        else:
            x = check_images("x", x)
            y = check_labels("y", y, x.size(0))
            features = check_features("features", features, x.size(0))
            if carve:
                tr, va = _split(y, val_fraction, split_seed)
                val_data = (x[va], y[va], None if features is None else features[va])
                x, y = x[tr], y[tr]
                features = None if features is None else features[tr]
            source = TensorSource(x, y, features)
        n_train = len(source)
        num_train = getattr(self.model, "num_train", None)
        if num_train is not None and num_train != n_train:
            raise ValueError(f"the model's anchor head has num_train={num_train} outputs but the training part "
                             f"has {n_train} samples"
                             + (f" ({n_train + len(val_data[1])} minus {len(val_data[1])} carved for validation "
                                f"with val_fraction={val_fraction}, split_seed={split_seed})" if carve else "")
                             + f"; build the head with num_train={n_train} (HeteroDistiller.num_train_for)")
        if n_train < 2 * ctx.world_size:
            raise ValueError(f"too few training samples ({n_train}) for {ctx.world_size} process(es)")
        test_data = as_eval_data("test", test) if test is not None else None
        self.train_features = source.node_features()

        # ------------------------------------------------------------ teacher logits cache
        self.teacher_cache = None
        cache_time = None
        if cache_teacher_logits:
            t0 = time.perf_counter()
            self.teacher_cache = self._cache_logits(source.images(), eval_batch_size)
            cache_time = time.perf_counter() - t0

        # ------------------------------------------------------------ optimiser
        from tg_cnn2gnn.nn import make_optimizer
        kw: dict[str, Any] = {"momentum": momentum, "nesterov": nesterov} if optimizer == "sgd" else {}
        opt = make_optimizer(self.learnable_parameters(), lr=lr, kind=optimizer, weight_decay=weight_decay, **kw)
        sched = build_scheduler(opt, scheduler, epochs, step_size, gamma)
        broadcast_module(self.model)

        cache = self.teacher_cache
        use_teacher = self.uses_teacher

        def step(images: Tensor, labels: Tensor, feats: Tensor | None, pos: Tensor):
            if augment is not None:
                images = augment(images)
            if cache is not None:
                t_logits = cache.index_select(0, pos)
            elif use_teacher:
                t_logits = self.teacher_logits(images)
            else:
                t_logits = None
            return self.forward(images, labels, pos, t_logits, feats)

        train_feats = self.train_features.to(dev)   # moved once, reused by every validation

        def validate() -> float:
            return self._accuracy(val_data, val_mechanism, train_feats, eval_batch_size, bank_size, eval_seed)

        config = {"n_train": n_train, "epochs": epochs, "batch_size": batch_size, "optimizer": optimizer, "lr": lr,
                  "momentum": momentum if optimizer == "sgd" else None, "nesterov": nesterov,
                  "weight_decay": weight_decay, "scheduler": scheduler, "step_size": step_size, "gamma": gamma,
                  "seed": seed, "world_size": ctx.world_size, "alpha": self.alpha, "tau": self.tau,
                  "relation_weight": self.relation_weight, "relation_tau": self.relation_tau,
                  "kd_scale": self.kd_scale, "cache_teacher_logits": bool(cache_teacher_logits),
                  "augment": augment is not None, "features": features is not None,
                  "val_fraction": val_fraction if carve else None, "split_seed": split_seed,
                  "val_mechanism": val_mechanism if val_data is not None else None}
        loop = TrainLoop(module=self.model, params=self.learnable_parameters(), optimizer=opt, scheduler=sched,
                         ctx=ctx, amp=self.amp, out_dir=out_dir, prefix="", kind="distiller", config=config,
                         progress=progress, tensorboard=tensorboard, callbacks=callbacks,
                         train_mode=lambda: self.train(True), desc="distill")
        best_state: dict[str, Any] = {}

        def keep_best(epoch: int, row: dict[str, Any]) -> None:  # in-memory copy of the best weights
            if ctx.is_main and row.get("best_epoch") == epoch:
                best_state["epoch"] = epoch
                best_state["state"] = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

        loop.callbacks.insert(0, keep_best)
        result = loop.run(source, step, validate if val_data is not None else None, epochs=epochs,
                          batch_size=batch_size, seed=seed, tail="merge", resume=resume)
        self.eval()

        # ------------------------------------------------------------ summary (rank 0)
        summary: dict[str, Any] | None = None
        if ctx.is_main:
            hist = result["history"]
            summary = {
                "seed": seed, "world_size": ctx.world_size, "device": str(dev),
                "cpu": platform.processor() or platform.machine(), "torch_threads": torch.get_num_threads(),
                **{k: v for k, v in config.items() if k not in ("seed", "world_size")},
                "n_val": None if val_data is None else int(val_data[1].numel()),
                "best_epoch": result["best_epoch"], "best_val_acc": result["best_val_acc"],
                "last_val_acc": hist[-1]["val_acc"] if hist else None,
                "resumed_from": result["resumed_from"],
                "mean_train_time_per_epoch": (sum(r["train_time"] for r in hist) / len(hist)) if hist else None,
                "mean_val_time_per_epoch": (sum(r["val_time"] for r in hist) / len(hist)) if hist else None,
                "teacher_cache_time": cache_time,
            }
            if test_data is not None:
                t0 = time.perf_counter()
                last = {m: self._accuracy(test_data, m, train_feats, eval_batch_size, bank_size, eval_seed)
                        for m in test_mechanisms}
                best_model_acc = last
                if result["best_epoch"] is not None and hist and result["best_epoch"] != hist[-1]["epoch"]:
                    state = best_state.get("state") if best_state.get("epoch") == result["best_epoch"] else None
                    if state is None and out_dir is not None and (Path(out_dir) / "best.pt").is_file():
                        state = load_checkpoint(Path(out_dir) / "best.pt", kind="distiller-best")["model"]
                    if state is not None:
                        best_model_acc = self._accuracy_with(state, test_data, test_mechanisms, train_feats,
                                                             eval_batch_size, bank_size, eval_seed)
                    else:
                        best_model_acc = {m: None for m in test_mechanisms}
                summary["test"] = {"last": last, "best_val": best_model_acc}
                if self.teacher is not None:
                    logits = compute_logits(self.teacher, test_data[0], batch_size=256, device=dev)
                    summary["teacher_test_acc"] = float((logits.argmax(-1).cpu() == test_data[1]).double().mean())
                summary["test_time"] = time.perf_counter() - t0
            summary["history"] = hist
            if out_dir is not None:
                write_json(Path(out_dir) / "summary.json", summary)
        summary = broadcast_object(summary)
        return summary

    # ---------------------------------------------------------------- evaluation
    def _cache_logits(self, images: Tensor, batch_size: int) -> Tensor:
        """Teacher logits for all training images (each rank computes its share; all-reduced)."""
        ctx = self.ctx
        n = images.size(0)
        if not ctx.enabled:
            return compute_logits(self.teacher, images, batch_size=max(batch_size, 256), device=ctx.device,
                                  amp=self.amp)
        rows = torch.arange(ctx.rank, n, ctx.world_size)
        part = compute_logits(self.teacher, images[rows], batch_size=max(batch_size, 256), device=ctx.device,
                              amp=self.amp)
        full = torch.zeros(n, part.size(1), dtype=part.dtype, device=ctx.device)
        full[rows.to(ctx.device)] = part
        return allreduce_sum(full)

    def _accuracy(self, data: tuple[Tensor, Tensor, Tensor | None], mechanism: str, train_x: Tensor,
                  batch_size: int, bank_size: int, seed: int) -> float:
        x, y, f = data
        logits = self.predict(x, mechanism=mechanism, train_x=train_x, features=f, batch_size=batch_size,
                              bank_size=bank_size, seed=seed)
        return float((logits.argmax(-1).cpu() == y.cpu()).double().mean())

    def _accuracy_with(self, state: dict[str, Tensor], data: tuple, mechanisms: Sequence[str], train_x: Tensor,
                       batch_size: int, bank_size: int, seed: int) -> dict[str, float]:
        current = {k: v.detach().clone() for k, v in self.model.state_dict().items()}
        try:
            self.model.load_state_dict(state)
            return {m: self._accuracy(data, m, train_x, batch_size, bank_size, seed) for m in mechanisms}
        finally:
            self.model.load_state_dict(current)

    @torch.no_grad()
    def predict(self, x: Tensor, *, mechanism: str = "bank", train_x: Tensor | None = None,
                features: Tensor | None = None, batch_size: int = 100, bank_size: int = 100, seed: int = 0,
                **kwargs: Any) -> Tensor:
        """Student logits ``[T, C]`` for unseen images ``x [T, C, H, W]`` (or node features via ``features``).

        Args:
            mechanism: ``"bank"``, ``"batch"`` (paper Mechanism 2), ``"one_by_one"`` (Mechanism 1)
                or ``"direct"`` (embedding head); see :meth:`tg_cnn2gnn.nn.CNN2GNN.predict`.
            train_x: ``[n_train, F]`` training features, row ``k`` = training id ``k``
                (default: those of the last :meth:`fit`).
            features: ``[T, F]`` node features instead of ``x.flatten(1)``.
            batch_size, bank_size, seed, **kwargs: forwarded to ``model.predict``.
        """
        if train_x is None:
            train_x = self.train_features
        if train_x is None and mechanism != "direct":
            raise ValueError(f"mechanism={mechanism!r} needs train_x, the training features [n_train, F] "
                             "(they are remembered after fit())")
        nodes = features if features is not None else x.flatten(1)
        dev = self.device
        return self.model.predict(nodes.to(dev), mechanism=mechanism,
                                  train_x=None if train_x is None else train_x.to(dev),
                                  batch_size=batch_size, bank_size=bank_size, seed=seed, **kwargs)

    def evaluate(self, x: Tensor | Dataset, y: Tensor | None = None, *,
                 mechanism: str | Sequence[str] = "bank", train_x: Tensor | None = None,
                 features: Tensor | None = None, batch_size: int = 100, bank_size: int = 100,
                 seed: int = 0) -> dict[str, float]:
        """Test accuracy of the student under one or several inference mechanisms.

        Args:
            x: images ``[T, C, H, W]`` (with ``y [T]``) or a Dataset of ``(image, label)``.
            mechanism: a mechanism name or a sequence of them.
            train_x: training features ``[n_train, F]`` (default: remembered from :meth:`fit`).
            features: node features ``[T, F]`` instead of the flattened images.

        Returns:
            ``{mechanism: accuracy}``.
        """
        mechs = (mechanism,) if isinstance(mechanism, str) else tuple(mechanism)
        allowed = tuple(getattr(self.model, "mechanisms", ("bank", "batch", "one_by_one", "direct")))
        for m in mechs:
            check_choice("mechanism", m, allowed)
        data = as_eval_data("x", x) if isinstance(x, Dataset) else as_eval_data("(x, y)", (x, y))
        if features is not None:
            data = (data[0], data[1], check_features("features", features, data[0].size(0)))
        train_x = train_x if train_x is not None else self.train_features
        return {m: self._accuracy(data, m, train_x, batch_size, bank_size, seed) for m in mechs}

    def extra_repr(self) -> str:
        return f"alpha={self.alpha}, tau={self.tau}, kd_scale={self.kd_scale!r}, device={self.device}"
