r"""The run directory: every file name of a run, and the one reader/writer of its JSON,
YAML, Markdown and plot files::

    run_dir/
      settings.json, settings.yaml  all settings of the run (``evaluate`` and ``--resume`` read the JSON;
                                    the YAML is a config file: ``--config run_dir/settings.yaml`` re-runs it)
      teacher/                      teacher.pt (final weights), teacher_metrics.csv, teacher_checkpoint.pt,
                                    teacher_best.pt, teacher_settings.json (what teacher.pt was trained with),
                                    teacher_summary.json, teacher_curves.png
      checkpoint.pt, best.pt        student, last epoch (plus optimiser state, for --resume) / best validation epoch
      metrics.csv                   one row per distillation epoch
      summary.json, table.md        accuracies, costs, wall times, hardware; the teacher-vs-student table
      training_curves.png           loss and accuracy per epoch
      evaluate.json                 the last ``cnn2gnn evaluate`` result

Writes are atomic (:func:`tg_cnn2gnn.distill.metrics.atomic_write`). Reading a damaged file
(not JSON, truncated, ``null``, a list where a mapping is expected, values of the wrong
type) raises one :class:`RunDirError` line naming the file and what was expected. Results
(summary, table, evaluation) that cannot be written are reported by a warning, never lost:
the caller still has and prints them.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, Callable

from tg_cnn2gnn.run.config import Settings, SettingsError


class RunDirError(SettingsError):
    """A file of a run directory is missing, damaged or not what it should be (one line)."""


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, (list, tuple)):
        return f"a list ({json.dumps(value)[:40]})"
    return f"{type(value).__name__} {json.dumps(value)[:40]}" if not isinstance(value, dict) else "an object"


class RunDir:
    """The files of one run directory (``path``); nothing is created until a write."""

    SETTINGS = "settings.json"
    SETTINGS_YAML = "settings.yaml"
    SUMMARY = "summary.json"
    TABLE = "table.md"
    CURVES = "training_curves.png"
    EVALUATE = "evaluate.json"
    CHECKPOINT = "checkpoint.pt"
    BEST = "best.pt"
    METRICS = "metrics.csv"
    TEACHER = "teacher"

    def __init__(self, path: str | os.PathLike) -> None:
        self.path = Path(path).expanduser()

    @classmethod
    def of(cls, settings: Settings) -> "RunDir":
        """``settings.out``, default ``runs/<dataset>``."""
        return cls(settings.out if settings.out else os.path.join("runs", settings.dataset))

    def __repr__(self) -> str:
        return f"RunDir({str(self.path)!r})"

    def __str__(self) -> str:
        return str(self.path)

    def file(self, name: str) -> Path:
        return self.path / name

    # ------------------------------------------------------------------ names
    settings_json = property(lambda self: self.path / self.SETTINGS)
    settings_yaml = property(lambda self: self.path / self.SETTINGS_YAML)
    summary_json = property(lambda self: self.path / self.SUMMARY)
    table_md = property(lambda self: self.path / self.TABLE)
    curves_png = property(lambda self: self.path / self.CURVES)
    evaluate_json = property(lambda self: self.path / self.EVALUATE)
    checkpoint = property(lambda self: self.path / self.CHECKPOINT)
    best = property(lambda self: self.path / self.BEST)
    metrics_csv = property(lambda self: self.path / self.METRICS)
    teacher_dir = property(lambda self: self.path / self.TEACHER)
    teacher_pt = property(lambda self: self.path / self.TEACHER / "teacher.pt")
    teacher_settings = property(lambda self: self.path / self.TEACHER / "teacher_settings.json")
    teacher_summary = property(lambda self: self.path / self.TEACHER / "teacher_summary.json")
    teacher_metrics = property(lambda self: self.path / self.TEACHER / "teacher_metrics.csv")
    teacher_curves = property(lambda self: self.path / self.TEACHER / "teacher_curves.png")

    # ------------------------------------------------------------------ reading
    @staticmethod
    def read_json(path: Path, what: str, expect: type = dict) -> Any:
        """The JSON value of ``path``, which must be a ``expect`` (``what`` describes it)."""
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise RunDirError(f"{path}: no such file (expected {what})") from None
        except (OSError, UnicodeDecodeError) as e:
            raise RunDirError(f"{path}: cannot read it ({type(e).__name__}: {e}); expected {what}") from None
        try:
            value = json.loads(text)
        except ValueError as e:
            raise RunDirError(f"{path}: not valid JSON ({str(e).splitlines()[0]}); expected {what}") from None
        if not isinstance(value, expect):
            raise RunDirError(f"{path}: expected {what}, got {_describe(value)}")
        return value

    @staticmethod
    def get(obj: dict[str, Any], key: str, expect: type | tuple[type, ...], path: Path, what: str) -> Any:
        """``obj[key]`` checked to be of type ``expect`` (``None`` when missing)."""
        value = obj.get(key)
        if value is not None and (not isinstance(value, expect) or isinstance(value, bool) and bool not in
                                  (expect if isinstance(expect, tuple) else (expect,))):
            raise RunDirError(f"{path}: {key!r} must be {what}, got {_describe(value)}")
        return value

    def read_settings(self) -> tuple[Settings, str | None]:
        """``(settings, command)`` of ``settings.json`` (unknown keys and wrong types: one line)."""
        raw = dict(self.read_json(self.settings_json, "a JSON object of settings (written by cnn2gnn)"))
        command = raw.pop("command", None)
        return Settings.from_dict(raw, source=str(self.settings_json)), command if isinstance(command, str) else None

    def read_summary(self) -> dict[str, Any]:
        return self.read_json(self.summary_json, "a JSON object (the summary of a distillation)")

    def has_teacher(self) -> bool:
        return self.teacher_pt.is_file()

    def read_teacher_settings(self) -> dict[str, Any]:
        """``teacher/teacher_settings.json``: the settings ``teacher.pt`` was trained with."""
        return self.read_json(self.teacher_settings, "a JSON object of the teacher's settings")

    def read_teacher_summary(self) -> dict[str, Any]:
        out = self.read_json(self.teacher_summary, "a JSON object (the teacher's summary)")
        self.get(out, "train_time_s", (int, float), self.teacher_summary, "a number of seconds")
        return out

    # ------------------------------------------------------------------ writing
    @staticmethod
    def _write_json(path: Path, obj: Any) -> None:
        from tg_cnn2gnn.distill.metrics import write_json
        write_json(path, obj)

    @staticmethod
    def _write_text(path: Path, text: str) -> None:
        from tg_cnn2gnn.distill.metrics import atomic_write_text
        atomic_write_text(path, text)

    @staticmethod
    def _try(path: Path, write: Callable[[], Any], log: Callable[[str], None]) -> bool:
        """Run ``write``; an unwritable file becomes a warning (the caller still shows the result)."""
        try:
            write()
            return True
        except OSError as e:
            log(f"warning: could not write {path} ({type(e).__name__}: {e.strerror or e}); the result is shown "
                "here only")
            return False

    def write_settings(self, settings: Settings, command: str) -> None:
        """``settings.json`` (with ``command``) and ``settings.yaml`` (a config file for a re-run)."""
        from tg_cnn2gnn.run.configfile import dump_yaml
        self.path.mkdir(parents=True, exist_ok=True)
        self._write_json(self.settings_json, {"command": command, **settings.to_dict()})
        self._write_text(self.settings_yaml, dump_yaml(settings, header=f"settings of `cnn2gnn {command}` in "
                                                                        f"{self.path}; re-run with --config"))

    def write_summary(self, summary: dict[str, Any], log: Callable[[str], None] = print) -> bool:
        return self._try(self.summary_json, lambda: self._write_json(self.summary_json, summary), log)

    def write_table(self, table: str, log: Callable[[str], None] = print) -> bool:
        return self._try(self.table_md, lambda: self._write_text(self.table_md, table), log)

    def write_evaluate(self, result: dict[str, Any], log: Callable[[str], None] = print) -> bool:
        return self._try(self.evaluate_json, lambda: self._write_json(self.evaluate_json, result), log)

    def write_teacher_settings(self, fingerprint: dict[str, Any]) -> None:
        self._write_json(self.teacher_settings, fingerprint)

    def write_teacher_summary(self, summary: dict[str, Any], log: Callable[[str], None] = print) -> bool:
        return self._try(self.teacher_summary, lambda: self._write_json(self.teacher_summary, summary), log)

    def plot(self, *, teacher_only: bool = False, teacher: bool = True, log: Callable[[str], None] = print) -> None:
        """``training_curves.png`` (student, plus the teacher when ``teacher``) or, with
        ``teacher_only``, ``teacher/teacher_curves.png``; a failure is a warning."""
        from tg_cnn2gnn.report import plot_curves
        out = self.teacher_curves if teacher_only else self.curves_png
        try:
            plot_curves(self.path, out, student=not teacher_only, teacher=teacher)
        except Exception as e:  # noqa: BLE001 - a plot must never lose a finished run
            log(f"warning: could not draw {out.name} ({type(e).__name__}: {e})")
