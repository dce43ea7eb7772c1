"""Shared fixtures for tg_cnn2gnn.nn tests (small, CPU, deterministic)."""
import pytest
import torch

# The machine is shared: keep every test single-threaded (also makes timings stable).
torch.set_num_threads(1)


@pytest.fixture
def gen():
    return torch.Generator().manual_seed(0)
