"""Per-epoch metrics: a CSV file (rewritten atomically from the full history each
epoch, so a resumed run never duplicates rows), TensorBoard scalars when
``tensorboard`` is installed, and a JSON summary."""
from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import IO, Any, Callable, Iterable


def _default_mode(fd: int) -> None:
    """Give a ``mkstemp`` file (created 0600) the permissions of a plain ``open`` (0666 & ~umask)."""
    mask = os.umask(0)
    os.umask(mask)
    try:
        os.fchmod(fd, 0o666 & ~mask)
    except (AttributeError, OSError):  # not available on every platform
        pass


def atomic_write(path: str | os.PathLike, write: Callable[[IO], None], *, binary: bool = False) -> Path:
    """Write ``path`` atomically: ``write(file)`` fills a temporary file in the same folder,
    which is flushed, fsynced and ``os.replace``-d over ``path`` (then the folder is fsynced
    where the platform allows). A crash leaves the old file or the new one, never half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _default_mode(fd)
        with (os.fdopen(fd, "wb") if binary else os.fdopen(fd, "w", encoding="utf-8", newline="")) as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    try:  # make the rename itself durable (POSIX); harmless where unsupported
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` to ``path`` atomically (:func:`atomic_write`)."""
    return atomic_write(path, lambda f: f.write(text))


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):
        try:
            return _jsonable(value.item())
        except (ValueError, RuntimeError):
            pass
    return value


def write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (non-finite floats become ``null``)."""
    return atomic_write_text(path, json.dumps(_jsonable(obj), indent=2, sort_keys=False) + "\n")


def rows_to_csv(rows: Iterable[dict[str, Any]]) -> str:
    """CSV text of ``rows`` (columns in first-seen order)."""
    rows = list(rows)
    columns: list[str] = []
    for r in rows:
        for k in r:
            if k not in columns:
                columns.append(k)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in columns})
    return buf.getvalue()


class MetricsLogger:
    """Collects one row of metrics per epoch.

    Args:
        out_dir: folder for ``{name}.csv`` (and TensorBoard event files under
            ``out_dir/tensorboard``); ``None`` keeps the rows in memory only.
        name: CSV file stem.
        enabled: ``False`` on non-zero ranks: nothing is written.
        tensorboard: ``"auto"`` (use it when installed), ``True`` (require it) or ``False``.
        rows: metrics of earlier epochs (when resuming).
    """

    def __init__(self, out_dir: str | os.PathLike | None, name: str = "metrics", *, enabled: bool = True,
                 tensorboard: bool | str = "auto", rows: list[dict[str, Any]] | None = None) -> None:
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.name = name
        self.enabled = enabled and self.out_dir is not None
        self.rows: list[dict[str, Any]] = list(rows or [])
        self._tb = None
        if self.enabled and tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter  # needs the tensorboard package
            except ImportError:
                if tensorboard is True:
                    raise ImportError("tensorboard=True but the tensorboard package is not installed; "
                                      "pip install tensorboard, or pass tensorboard=False") from None
            else:
                self._tb = SummaryWriter(log_dir=str(self.out_dir / "tensorboard" / name))

    @property
    def csv_path(self) -> Path | None:
        return None if self.out_dir is None else self.out_dir / f"{self.name}.csv"

    def log(self, row: dict[str, Any]) -> None:
        """Append one epoch's row; rewrite the CSV; add TensorBoard scalars."""
        self.rows.append(dict(row))
        if not self.enabled:
            return
        atomic_write_text(self.csv_path, rows_to_csv(self.rows))
        if self._tb is not None:
            step = int(row.get("epoch", len(self.rows)))
            for k, v in row.items():
                if k != "epoch" and isinstance(v, (int, float)) and not isinstance(v, bool) \
                        and math.isfinite(float(v)):
                    self._tb.add_scalar(f"{self.name}/{k}", float(v), step)
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
