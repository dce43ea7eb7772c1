"""Small helpers of the run layer: thread count, warning filter, epoch log lines, device."""
from __future__ import annotations

import contextlib
import warnings
from typing import Any, Callable, Iterator

import torch

from tg_cnn2gnn.run.config import Settings


@contextlib.contextmanager
def threads(n: int | None) -> Iterator[None]:
    """``torch.set_num_threads(n)`` inside the block (``None``: leave torch's choice)."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence torch's FutureWarnings and the AMP-on-CPU notice during training."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=FutureWarning)
        warnings.filterwarnings("ignore", message=".*amp=True only takes effect.*")
        yield


def epoch_printer(log: Callable[[str], None], what: str, epochs: int) -> Callable[[int, dict], None]:
    """A training callback that logs ``<what> epoch e/E | loss | train acc | val acc | seconds``."""
    def callback(epoch: int, row: dict[str, Any]) -> None:
        parts = [f"{what} epoch {epoch + 1}/{epochs}", f"loss {row.get('loss', float('nan')):.4f}",
                 f"train acc {row.get('train_acc', float('nan')):.4f}"]
        if row.get("val_acc") is not None:
            parts.append(f"val acc {row['val_acc']:.4f}")
        parts.append(f"{row.get('train_time', 0.0) + row.get('val_time', 0.0):.1f} s")
        log(" | ".join(parts))
    return callback


def device_of(settings: Settings) -> torch.device:
    """``settings.device`` as a torch device (``auto``: CUDA when available)."""
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)


def train_device(settings: Settings) -> str | None:
    """The ``device`` argument of the package's trainers (``None`` = their own automatic choice)."""
    return None if settings.device == "auto" else settings.device
