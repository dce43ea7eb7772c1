"""Helpers of the distillation tests (models, teachers, settings)."""
from __future__ import annotations

import torch

from tg_cnn2gnn.distill import HeteroDistiller
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead
from tg_cnn2gnn.teachers import build_teacher

#: Small settings that keep every run on digits well under a second per epoch on one core.
S = 10
HIDDEN = 64


def make_teacher(teacher_state) -> torch.nn.Module:
    teacher = build_teacher("simple-cnn", 10, in_channels=1, image_size=8, width=8)
    teacher.load_state_dict(teacher_state[0])
    return teacher


def make_model(num_train: int, *, seed: int = 0, dropout: float = 0.5, form: str = "anchor") -> CNN2GNN:
    torch.manual_seed(seed)
    head = LearnedGraphHead(64, num_train=num_train, s=S, hidden_channels=(HIDDEN,), form=form)
    return CNN2GNN(head, GraphStudent(64, HIDDEN, 10, dropout=dropout))


def num_train(y, val_fraction=0.1) -> int:
    return HeteroDistiller.num_train_for(y, val_fraction)


#: fit() settings used by most tests: SGD with momentum, cosine schedule.
FIT = dict(batch_size=100, optimizer="sgd", lr=0.05, momentum=0.9, progress=False, tensorboard=False)
