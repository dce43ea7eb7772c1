import os

import pytest
import torch

# CI machines have 2 cores; keep torch from oversubscribing them under pytest-xdist.
torch.set_num_threads(max(1, min(2, (os.cpu_count() or 1))))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    yield
