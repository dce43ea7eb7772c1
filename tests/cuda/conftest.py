"""CUDA test set (issue 14): runs on the GPU machine, skipped elsewhere.

Every test module here except ``test_gpu_scripts_smoke.py`` needs CUDA and is skipped
without it (one skip reason naming the script that runs them: ``benchmarks/gpu/run_all.sh 1``).
``test_gpu_scripts_smoke.py`` runs on the CPU: it runs the GPU scripts' ``--smoke`` mode so
that they are known to work before device time is spent.

Tolerances (float32 unless a test says otherwise) compare CUDA against the CPU on the
same inputs and weights: GPU kernels sum in another order (cuBLAS, atomics in scatter),
so values agree to float32 rounding, not bit for bit; TF32 stays off (torch's default for
matmul) so that 1e-4 relative holds.
"""
from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
if str(ROOT / "benchmarks" / "gpu") not in sys.path:
    sys.path.insert(0, str(ROOT / "benchmarks" / "gpu"))

#: Modules of this folder that run without CUDA.
CPU_MODULES = {"test_gpu_scripts_smoke.py"}

#: ``CUDA_TESTS_DEVICE=cpu`` runs the CUDA tests' logic on the CPU (CPU against CPU, so it
#: proves nothing about CUDA; it catches mistakes in the tests before device time is spent).
#: Tests marked ``real_cuda`` (sync debug mode, GradScaler, NCCL) are still skipped then.
DRY_RUN = __import__("os").environ.get("CUDA_TESTS_DEVICE") == "cpu"

#: float32 CUDA vs CPU.
RTOL, ATOL = 1e-4, 1e-5


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "real_cuda: needs a real GPU even in the CPU dry run")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs CUDA; run on the GPU machine with `bash benchmarks/gpu/run_all.sh 1`")
    for item in items:
        path = Path(str(item.fspath))
        if path.parent == HERE and path.name not in CPU_MODULES:
            if not DRY_RUN or item.get_closest_marker("real_cuda") is not None:
                item.add_marker(skip)


@pytest.fixture
def cuda() -> torch.device:
    """The device under test: CUDA (the CPU in the dry run)."""
    if DRY_RUN and not torch.cuda.is_available():
        return torch.device("cpu")
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    return torch.device("cuda", torch.cuda.current_device())   # tensors report "cuda:0", not "cuda"
