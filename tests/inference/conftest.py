"""Shared digits data for the inference tests (small: 600 training, 120 test samples)."""
import pytest
import torch

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402


@pytest.fixture(scope="session")
def digits():
    x, y = load_digits(return_X_y=True)
    x = (torch.tensor(x, dtype=torch.float32) / 16 - 0.3053) / 0.3760
    y = torch.tensor(y)
    return x[:600], y[:600], x[600:720], y[600:720]
