"""Shared fixtures of the distillation tests: scikit-learn's digits (real, offline) and a
small batch-norm CNN teacher trained on them once per session."""
from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from tg_cnn2gnn.data import load_tensors
from tg_cnn2gnn.distill import pretrain_teacher
from tg_cnn2gnn.teachers import build_teacher


@contextlib.contextmanager
def one_thread():
    """One intra-op thread: on a small shared machine, 2 OpenMP threads on tiny tensors are
    several times slower than 1 (spin-waiting under contention)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _single_thread():
    with one_thread():
        yield


@pytest.fixture(scope="session")
def digits():
    """``(x_train [1438, 1, 8, 8], y_train, x_test [359, 1, 8, 8], y_test)``, normalised."""
    x, y = load_tensors("digits", "train")
    xt, yt = load_tensors("digits", "test")
    return x, y, xt, yt


@pytest.fixture(scope="session")
def teacher_state(digits, tmp_path_factory):
    """Weights of a SimpleCNN (conv-BN-ReLU blocks) trained 8 epochs on digits (~97% test)."""
    x, y, xt, yt = digits
    torch.manual_seed(0)
    teacher = build_teacher("simple-cnn", 10, in_channels=1, image_size=8, width=8)
    with warnings.catch_warnings(), one_thread():
        warnings.simplefilter("ignore")
        result = pretrain_teacher(teacher, x, y, epochs=8, batch_size=64, lr=0.05, val=(xt, yt), progress=False,
                                  seed=0, out_dir=tmp_path_factory.mktemp("teacher"), device="cpu")
    return {k: v.clone() for k, v in teacher.state_dict().items()}, result
