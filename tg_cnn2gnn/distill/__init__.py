r"""Heterogeneous distillation of a CNN teacher into a graph head + GNN student
(paper §3.3, Algorithm 2): the loss, the distiller, teacher pre-training, safe
checkpoints, seeding and multi-process (torchrun) utilities.

Layout: a :class:`Distiller` (``distillers/``: ``cnn2gnn``, ``kd``, ``dkd``, ``ce``, by name
through :func:`build_distiller`) owns teacher and student and gives the loss terms of a
mini-batch; the :class:`Trainer` owns the loop, validation, checkpoints, resume and DDP.

Example (in-memory tensors; the same script runs under
``torchrun --nproc_per_node=2 script.py``, gloo on CPU / nccl on GPU, rank 0 writing)::

    from tg_cnn2gnn.data import load_tensors, train_val_split
    from tg_cnn2gnn.distill import Trainer, build_distiller, pretrain_teacher
    from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead
    from tg_cnn2gnn.teachers import build_teacher

    x, y = load_tensors("fashion-mnist", "train")       # [60000, 1, 28, 28]
    xt, yt = load_tensors("fashion-mnist", "test")
    tr, va = train_val_split(y, 0.1, seed=0)
    teacher = build_teacher("simple-cnn", 10, in_channels=1, image_size=28)
    pretrain_teacher(teacher, x[tr], y[tr], epochs=3, out_dir="runs/teacher")
    model = CNN2GNN(LearnedGraphHead(784, num_train=len(tr), s=10), GraphStudent(784, 256, 10))
    d = build_distiller("cnn2gnn", teacher, model, alpha=1.0, tau=4.0)
    summary = Trainer(d, epochs=200, batch_size=100, lr=0.01, cache_teacher_logits=True,
                      out_dir="runs/student").fit((x[tr], y[tr]), val=(x[va], y[va]), test=(xt, yt))
    summary["test"]["best_val"]["batch"]    # test accuracy, val-selected weights, Mechanism 2

The old ``HeteroDistiller(teacher, model).fit(x, y, ...)`` (carves the validation split
itself and writes ``summary.json``) still works (:mod:`tg_cnn2gnn.distill.fit`).

Files in ``out_dir``: ``checkpoint.pt`` (every epoch, atomic; ``resume=True`` continues from
it bit for bit), ``best.pt`` (best validation accuracy), ``metrics.csv`` (per epoch: lr,
loss, its terms, train/val accuracy, times); ``teacher*.pt`` and
``teacher_metrics.csv`` from :func:`pretrain_teacher`. All loads use
``torch.load(..., weights_only=True)`` and fail with a :class:`CheckpointError` naming the file.
"""
from tg_cnn2gnn.distill.batch import DistillData
from tg_cnn2gnn.distill.checkpoint import CheckpointError, load_checkpoint, save_checkpoint
from tg_cnn2gnn.distill.distillers import (DISTILLERS, CEDistiller, CNN2GNNDistiller, DKDDistiller, Distiller,
                                            KDDistiller, TrainBatch, build_distiller)
from tg_cnn2gnn.distill.fit import HeteroDistiller
from tg_cnn2gnn.distill.loss import (KD_SCALES, DistillationLoss, distillation_loss, kd_divergence,
                                     relation_loss)
from tg_cnn2gnn.distill.metrics import MetricsLogger
from tg_cnn2gnn.distill.seed import capture_rng_state, restore_rng_state, seed_everything
from tg_cnn2gnn.distill.teacher import accuracy, compute_logits, freeze, load_teacher, pretrain_teacher
from tg_cnn2gnn.distill.trainer import OPTIMIZERS, Trainer

__all__ = [
    "CEDistiller",
    "CNN2GNNDistiller",
    "CheckpointError",
    "DISTILLERS",
    "DKDDistiller",
    "Distiller",
    "KDDistiller",
    "TrainBatch",
    "Trainer",
    "build_distiller",
    "DistillData",
    "DistillationLoss",
    "HeteroDistiller",
    "KD_SCALES",
    "MetricsLogger",
    "OPTIMIZERS",
    "accuracy",
    "capture_rng_state",
    "compute_logits",
    "distillation_loss",
    "freeze",
    "kd_divergence",
    "load_checkpoint",
    "load_teacher",
    "pretrain_teacher",
    "relation_loss",
    "restore_rng_state",
    "save_checkpoint",
    "seed_everything",
]
