r"""The trainer: runs any :class:`~tg_cnn2gnn.distill.distillers.Distiller` (paper Algorithm 2,
lines 4-10, for CNN2GNN).

It owns the loop (:class:`~tg_cnn2gnn.distill._engine.TrainLoop`: shuffling, optimiser and LR
steps, AMP, DDP gradient all-reduce, per-epoch metrics, atomic checkpoints, exact resume),
validation, best/last tracking and the final test. It does not split data (the caller
passes ``val``) and writes no ``summary.json`` (the run layer does); it writes
``checkpoint.pt``, ``best.pt`` and ``metrics.csv`` to ``out_dir``.

Example::

    from tg_cnn2gnn.distill import Trainer, build_distiller
    d = build_distiller("kd", teacher, MLP(64, 64, 10), tau=4.0)
    summary = Trainer(d, epochs=20, lr=0.01, cache_teacher_logits=True).fit((x, y), val=(xv, yv),
                                                                            test=(xt, yt))
"""
from __future__ import annotations

import functools
import operator
import os
import platform
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import torch
from torch import Tensor
from torch.utils.data import Dataset

from tg_cnn2gnn.distill import _checks as C
from tg_cnn2gnn.distill._data import DatasetSource, TensorSource, as_eval_data
from tg_cnn2gnn.distill._engine import SCHEDULERS, Callback, TrainLoop, build_scheduler, warn_cpu_amp
from tg_cnn2gnn.distill._evaluate import accuracy, accuracy_with, cache_logits
from tg_cnn2gnn.distill.checkpoint import load_checkpoint
from tg_cnn2gnn.distill.ddp import DistContext, broadcast_module, broadcast_object, setup_distributed
from tg_cnn2gnn.distill.distillers.base import Distiller, TrainBatch
from tg_cnn2gnn.distill.teacher import compute_logits

#: Optimiser names (built by :func:`tg_cnn2gnn.nn.make_optimizer`, sparse-gradient aware).
OPTIMIZERS: tuple[str, ...] = ("sgd", "adam", "adamw")


class Trainer:
    r"""Train a distiller's student.

    Args:
        distiller: what to train (its :meth:`~Distiller.forward_train` gives the loss terms).
        epochs, batch_size: paper: 200 and 100. The last partial batch is merged into the
            previous one (every graph has ``>= batch_size`` nodes).
        optimizer: ``"adam"``, ``"adamw"``, ``"sgd"`` (:func:`tg_cnn2gnn.nn.make_optimizer`), or a
            callable ``params -> torch.optim.Optimizer`` (e.g. ``partial(torch.optim.Adam, lr=1e-3)``).
        lr, momentum, nesterov, weight_decay: of the named optimiser (momentum/nesterov: SGD).
        scheduler, step_size, gamma: ``"cosine"`` (to 0 over ``epochs``), ``"step"`` (``gamma``
            every ``step_size`` epochs, default ``epochs // 3``) or ``"none"``; per epoch.
        seed: seeds torch/NumPy/random (``seed + rank``) and the shuffling: a CPU run is
            reproducible bit for bit.
        device: default ``cuda`` (``cuda:LOCAL_RANK`` under torchrun) when available, else CPU.
        amp: float16 autocast + GradScaler on CUDA (ignored on CPU, with a warning).
        distributed: ``"auto"``, ``True`` or ``False`` (:func:`~tg_cnn2gnn.distill.ddp.setup_distributed`).
        cache_teacher_logits: compute the teacher's logits for the training set once, kept on
            the device (exact only without random augmentation; refused with ``augment``).
        augment: ``callable(images [B, C, H, W]) -> images`` per training batch (global RNG).
        out_dir: folder for ``checkpoint.pt``, ``best.pt``, ``metrics.csv``; ``None``: no files.
        resume: continue from ``out_dir/checkpoint.pt``; refused, listing ``name: old -> new``,
            when any loss-, model- or evaluation-affecting setting or ``fingerprint`` entry differs.
        fingerprint: the caller's settings that must match on resume (e.g. model widths, ``s``,
            dropout, data subset); stored in the checkpoint and reported in the summary.
        val_mechanism: inference mechanism of the per-epoch validation accuracy.
        eval_batch_size, bank_size, eval_seed: forwarded to ``predict`` (``batch_size``,
            ``bank_size``, ``seed``).
        progress, tensorboard: tqdm bars (rank 0); TensorBoard scalars (``"auto"``: when installed).
        callbacks: ``callback(epoch, row)`` after each epoch's checkpoint.
        num_workers: DataLoader workers (Dataset input).
        balanced_batches: class-balanced mini-batches, each holding the classes in the training
            set's proportions (:func:`~tg_cnn2gnn.distill.ddp.stratified_permutation`; a fresh
            order per epoch); default a uniform shuffle. With a learned batch graph this bounds
            how many same-class candidates each node has.
    """

    def __init__(self, distiller: Distiller, *, epochs: int = 200, batch_size: int = 100,
                 optimizer: str | Callable[..., torch.optim.Optimizer] = "adam", lr: float = 0.01,
                 momentum: float = 0.9, nesterov: bool = False, weight_decay: float = 0.0,
                 scheduler: str = "cosine", step_size: int | None = None, gamma: float = 0.1, seed: int = 0,
                 device: str | torch.device | None = None, amp: bool = False, distributed: bool | str = "auto",
                 cache_teacher_logits: bool = False, augment: Callable[[Tensor], Tensor] | None = None,
                 out_dir: str | os.PathLike | None = None, resume: bool = False,
                 fingerprint: dict[str, Any] | None = None, val_mechanism: str = "bank",
                 eval_batch_size: int = 100, bank_size: int = 100, eval_seed: int = 0, progress: bool = True,
                 tensorboard: bool | str = "auto", callbacks: Iterable[Callback] = (), num_workers: int = 0,
                 balanced_batches: bool = False) -> None:
        if not isinstance(distiller, Distiller):
            raise TypeError(f"distiller must be a tg_cnn2gnn.distill.Distiller, got {type(distiller).__name__}")
        C.check_positive_int("epochs", epochs)
        C.check_positive_int("batch_size", batch_size)
        if isinstance(optimizer, str):
            C.check_choice("optimizer", optimizer, OPTIMIZERS)
        elif not callable(optimizer):
            raise TypeError(f"optimizer must be one of {OPTIMIZERS} or a callable params -> Optimizer, "
                            f"got {type(optimizer).__name__}")
        C.check_float("lr", lr, inclusive=False)
        C.check_float("momentum", momentum)
        C.check_float("weight_decay", weight_decay)
        C.check_choice("scheduler", scheduler, SCHEDULERS)
        C.check_positive_int("step_size", step_size, allow_none=True)
        C.check_float("gamma", gamma, inclusive=False)
        for name, v in (("seed", seed), ("eval_seed", eval_seed), ("num_workers", num_workers)):
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise ValueError(f"{name} must be an int >= 0, got {v!r}")
        C.check_positive_int("eval_batch_size", eval_batch_size)
        C.check_positive_int("bank_size", bank_size)
        if not isinstance(balanced_batches, bool):
            raise TypeError(f"balanced_batches must be a bool, got {balanced_batches!r}")
        C.check_choice("val_mechanism", val_mechanism, distiller.mechanisms)
        if cache_teacher_logits and augment is not None:
            raise ValueError("cache_teacher_logits=True is only valid without random augmentation: the cached "
                             "logits are those of the un-augmented images; pass augment=None or "
                             "cache_teacher_logits=False")
        if cache_teacher_logits and distiller.teacher is None:
            raise ValueError("cache_teacher_logits=True needs a teacher")
        if resume and out_dir is None:
            raise ValueError("resume=True needs out_dir (the folder holding the checkpoint)")
        if fingerprint is not None and not isinstance(fingerprint, dict):
            raise TypeError(f"fingerprint must be a dict or None, got {type(fingerprint).__name__}")
        self.distiller = distiller
        self.epochs, self.batch_size, self.optimizer, self.lr = epochs, batch_size, optimizer, float(lr)
        self.momentum, self.nesterov, self.weight_decay = float(momentum), bool(nesterov), float(weight_decay)
        self.scheduler, self.step_size, self.gamma, self.seed = scheduler, step_size, float(gamma), seed
        self.device, self.amp, self.distributed = device, bool(amp), distributed
        self.cache_teacher_logits, self.augment = bool(cache_teacher_logits), augment
        self.out_dir = None if out_dir is None else Path(out_dir)
        self.resume, self.fingerprint = bool(resume), dict(fingerprint or {})
        self.val_mechanism, self.eval_batch_size = val_mechanism, eval_batch_size
        self.bank_size, self.eval_seed = bank_size, eval_seed
        self.progress, self.tensorboard, self.callbacks = progress, tensorboard, list(callbacks)
        self.num_workers = num_workers
        self.balanced_batches = balanced_batches
        # set by fit
        self.ctx: DistContext | None = None
        self.train_features: Tensor | None = None   # [n_train, F] on the device, row k = training id k
        self.teacher_cache: Tensor | None = None    # [n_train, C] on the device

    # ------------------------------------------------------------------ data
    def _source(self, train: Any, features: Tensor | None) -> Any:
        if hasattr(train, "iterate") and hasattr(train, "node_features"):
            return train                                       # a prepared source (legacy Dataset path)
        if isinstance(train, Dataset) and not isinstance(train, (tuple, list)):
            if features is not None or self.augment is not None:
                raise ValueError("with Dataset input, features and augment must be None (augmentation "
                                 "belongs in the dataset's transform)")
            return DatasetSource(train, torch.arange(len(train)), self.num_workers)  # type: ignore[arg-type]
        if not isinstance(train, (tuple, list)) or len(train) != 2:
            raise TypeError(f"train must be a pair (x, y) or a Dataset, got {type(train).__name__}")
        x = C.check_finite("train[0] (x)", C.check_images("train[0] (x)", train[0]))
        y = C.check_labels("train[1] (y)", train[1], x.size(0))
        f = C.check_finite("features", C.check_features("features", features, x.size(0)))
        return TensorSource(x, y, f)

    def _check_labels(self, source: Any, val: Any, test: Any) -> None:
        num_classes = self.distiller.num_classes
        ys = [("train labels", source.y if isinstance(source, TensorSource) else None)]
        ys += [(f"{n}[1] (labels)", d[1]) for n, d in (("val", val), ("test", test)) if d is not None]
        train_y = ys[0][1]
        if num_classes is None and train_y is not None:    # the student does not say: training labels decide
            num_classes = int(train_y.max()) + 1
        if num_classes is not None:
            for name, y in ys:
                if y is not None:
                    C.check_label_range(name, y, num_classes)

    def _config(self, n_train: int, world_size: int, features: bool, has_val: bool) -> dict[str, Any]:
        factory = getattr(self.optimizer, "func", self.optimizer)      # unwrap functools.partial
        opt = self.optimizer if isinstance(self.optimizer, str) else getattr(factory, "__name__",
                                                                             type(factory).__name__)
        own = {"n_train": n_train, "epochs": self.epochs, "batch_size": self.batch_size, "optimizer": opt,
               "lr": self.lr, "momentum": self.momentum if opt == "sgd" else None, "nesterov": self.nesterov,
               "weight_decay": self.weight_decay, "scheduler": self.scheduler, "step_size": self.step_size,
               "gamma": self.gamma, "seed": self.seed, "world_size": world_size, **self.distiller.hparams(),
               "cache_teacher_logits": self.cache_teacher_logits, "augment": self.augment is not None,
               "features": features, "val_mechanism": self.val_mechanism if has_val else None,
               "eval_batch_size": self.eval_batch_size, "bank_size": self.bank_size, "eval_seed": self.eval_seed,
               # only when on, so that checkpoints written before the option existed still resume
               **({"balanced_batches": True} if self.balanced_batches else {})}
        clash = [k for k, v in self.fingerprint.items() if k in own and own[k] != v]
        if clash:
            raise ValueError(f"fingerprint entries {clash} contradict the trainer's own settings "
                             f"({', '.join(f'{k}={own[k]!r}' for k in clash)})")
        return {**self.fingerprint, **own}

    def _make_optimizer(self) -> torch.optim.Optimizer:
        params = self.distiller.learnable_parameters()
        if not isinstance(self.optimizer, str):
            return self.optimizer(params)
        from tg_cnn2gnn.nn import make_optimizer
        kw: dict[str, Any] = {"momentum": self.momentum, "nesterov": self.nesterov} \
            if self.optimizer == "sgd" else {}
        return make_optimizer(params, lr=self.lr, kind=self.optimizer, weight_decay=self.weight_decay, **kw)

    # ------------------------------------------------------------------ fit
    def fit(self, train: Any, val: Any = None, test: Any = None, *, features: Tensor | None = None,
            test_mechanisms: str | Sequence[str] = ("bank", "batch")) -> dict[str, Any]:
        r"""Train, validate every epoch, then test the last and the best-validation weights.

        Args:
            train: ``(x [N, C, H, W], y [N])`` (the fast path) or a map-style Dataset of
                ``(image, label[, index])``; sample ``k`` is training id ``k`` (anchor neuron ``k``).
            val, test: ``(x, y)``, ``(x, y, features)`` or a Dataset, or ``None``.
            features: ``[N, F]`` node features instead of the flattened images (the teacher
                still reads the images).
            test_mechanisms: mechanisms of the final test.

        Every tensor is checked before training: shapes, NaN/Inf (naming the rows) and labels
        in ``[0, num_classes)``.

        Returns:
            the summary (rank 0's, broadcast): settings, ``best_epoch``, ``best_val_acc``,
            ``last_val_acc``, ``test = {"last": {mech: acc}, "best_val": {mech: acc}}``,
            ``teacher_test_acc``, mean times per epoch and the per-epoch ``history``.
        """
        d = self.distiller
        mechs = (test_mechanisms,) if isinstance(test_mechanisms, str) else tuple(test_mechanisms)
        for m in mechs:
            C.check_choice("test_mechanisms[i]", m, d.mechanisms)
        source = self._source(train, features)
        val_data = self._eval_data("val", val)
        test_data = self._eval_data("test", test)
        self._check_labels(source, val_data, test_data)
        n_train = len(source)

        ctx = self.ctx = setup_distributed(self.distributed, self.device)
        dev = ctx.device
        warn_cpu_amp(self.amp, dev)
        if n_train < 2 * ctx.world_size:
            raise ValueError(f"too few training samples ({n_train}) for {ctx.world_size} process(es)")
        if hasattr(d.student, "set_num_train"):
            d.student.set_num_train(n_train)
        num_train = getattr(d.student, "num_train", None)
        if num_train is not None and num_train != n_train:
            raise ValueError(f"the model's anchor head has num_train={num_train} outputs but the training part "
                             f"has {n_train} samples; build the head with num_train={n_train}")
        d.to(dev)
        train_feats = self.train_features = source.node_features().to(dev)   # moved once
        train_y = source.y.to(dev)

        self.teacher_cache, cache_time = None, None
        if self.cache_teacher_logits:
            t0 = time.perf_counter()
            self.teacher_cache = cache_logits(d.teacher, source.images(), ctx, self.eval_batch_size, self.amp)
            cache_time = time.perf_counter() - t0
        if hasattr(d, "set_teacher_cache"):      # e.g. teacher logits of a training graph's pool nodes
            d.set_teacher_cache(self.teacher_cache)

        opt = self._make_optimizer()
        sched = build_scheduler(opt, self.scheduler, self.epochs, self.step_size, self.gamma)
        broadcast_module(d.student)
        config = self._config(n_train, ctx.world_size, features is not None, val_data is not None)
        cache, augment, state = self.teacher_cache, self.augment, {"epoch": 0}

        def epoch_start(epoch: int) -> None:
            state["epoch"] = epoch
            d.on_epoch_start(epoch, train_feats, train_y)

        def step(images: Tensor, labels: Tensor, feats: Tensor | None, pos: Tensor):
            if augment is not None:
                images = augment(images)
            t_logits = cache.index_select(0, pos) if cache is not None else None
            logits, terms = d.forward_train(TrainBatch(images, labels, pos, feats, t_logits), state["epoch"])
            loss = functools.reduce(operator.add, terms.values())
            parts = {"loss": loss.detach(), **{k: v.detach() for k, v in terms.items()}, **d.metrics}
            return loss, parts, logits

        def validate() -> float:
            return accuracy(d, val_data, self.val_mechanism, train_feats, self.eval_batch_size, self.bank_size,
                            self.eval_seed)

        loop = TrainLoop(module=d.student, params=d.learnable_parameters(), optimizer=opt, scheduler=sched,
                         ctx=ctx, amp=self.amp, out_dir=self.out_dir, prefix="", kind="distiller", config=config,
                         progress=self.progress, tensorboard=self.tensorboard, callbacks=self.callbacks,
                         train_mode=lambda: d.train(True), desc="distill", epoch_start=epoch_start)
        best_state: dict[str, Any] = {}

        def keep_best(epoch: int, row: dict[str, Any]) -> None:   # in-memory copy of the best weights
            if ctx.is_main and row.get("best_epoch") == epoch:
                best_state["epoch"] = epoch
                best_state["state"] = {k: v.detach().clone() for k, v in d.student.state_dict().items()}

        loop.callbacks.insert(0, keep_best)
        result = loop.run(source, step, validate if val_data is not None else None, epochs=self.epochs,
                          batch_size=self.batch_size, seed=self.seed, tail="merge", resume=self.resume,
                          balanced=self.balanced_batches)
        d.eval()
        summary = self._summary(result, config, val_data, test_data, mechs, best_state, cache_time) \
            if ctx.is_main else None
        return broadcast_object(summary)

    def _eval_data(self, name: str, data: Any) -> Any:
        if data is None:
            return None
        x, y, f = as_eval_data(name, data)
        C.check_finite(f"{name}[0] (x)", x)
        C.check_finite(f"{name}[2] (features)", f)
        return x, y, f

    def _summary(self, result: dict[str, Any], config: dict[str, Any], val_data: Any, test_data: Any,
                 mechs: tuple[str, ...], best_state: dict[str, Any], cache_time: float | None) -> dict[str, Any]:
        d, dev, hist = self.distiller, self.ctx.device, result["history"]
        summary: dict[str, Any] = {
            "seed": self.seed, "world_size": self.ctx.world_size, "device": str(dev),
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
            ev = (self.train_features, self.eval_batch_size, self.bank_size, self.eval_seed)
            last = {m: accuracy(d, test_data, m, *ev) for m in mechs}
            best_model_acc = last
            if result["best_epoch"] is not None and hist and result["best_epoch"] != hist[-1]["epoch"]:
                state = best_state.get("state") if best_state.get("epoch") == result["best_epoch"] else None
                best_file = None if self.out_dir is None else self.out_dir / "best.pt"
                if state is None and best_file is not None and best_file.is_file():
                    state = load_checkpoint(best_file, kind="distiller-best")["model"]
                best_model_acc = accuracy_with(d, state, test_data, mechs, *ev) if state is not None \
                    else {m: None for m in mechs}
            summary["test"] = {"last": last, "best_val": best_model_acc}
            if d.teacher is not None:
                logits = compute_logits(d.teacher, test_data[0], batch_size=256, device=dev)
                summary["teacher_test_acc"] = float((logits.argmax(-1).cpu() == test_data[1]).double().mean())
            summary["test_time"] = time.perf_counter() - t0
        summary["history"] = hist
        return summary
