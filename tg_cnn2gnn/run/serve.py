"""A trained run as a deployable predictor: ``cnn2gnn export`` and ``cnn2gnn predict``.

:func:`load_run_model` rebuilds the student of a run directory from ``settings.json`` and its
checkpoint (``weights_only`` loads); :func:`export_run_dir` freezes it into a
:class:`~tg_cnn2gnn.inference.BankPredictor` file; :func:`predict_files` reads images and
prints the top classes, from a run directory or an exported file. The image reading,
formatting and file formats live in :mod:`tg_cnn2gnn.inference.commands`.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, NamedTuple, Sequence

from torch import nn

from tg_cnn2gnn.run.config import WHICH_CHOICES, Settings, SettingsError, validate
from tg_cnn2gnn.run.data import RunData, load_data
from tg_cnn2gnn.run.factories import build_student_model
from tg_cnn2gnn.run.rundir import RunDir


class LoadedRun(NamedTuple):
    """A run's settings, data, student (eval mode, CPU) and the checkpoint it came from."""
    run_dir: RunDir
    settings: Settings
    data: RunData
    model: nn.Module
    checkpoint: Path
    epoch: int | None


def find_run(path: Path) -> tuple[RunDir, Path]:
    """``(run_dir, checkpoint file)`` for a run directory or a checkpoint file inside one."""
    if path.is_dir():
        return RunDir(path), path / RunDir.CHECKPOINT
    if path.is_file():
        for parent in (path.parent, path.parent.parent):
            if (parent / RunDir.SETTINGS).is_file():
                return RunDir(parent), path
        raise SettingsError(f"no settings.json next to {str(path)!r} (or in its parent folder): a run directory "
                            "written by `cnn2gnn distill` is needed")
    raise SettingsError(f"{str(path)!r} does not exist (give a run directory or a checkpoint file in one)")


def load_run_model(path: str | os.PathLike, *, which: str | None = None, command: str = "evaluate",
                   **changes: Any) -> LoadedRun:
    """Rebuild the student of a run directory (``which``: ``"last"`` = ``checkpoint.pt``,
    ``"best"`` = ``best.pt``) or of a checkpoint file in one; ``changes`` replace settings
    that do not alter the model (``root``, ``bank_size``, ``device``, ...)."""
    from tg_cnn2gnn.distill import CheckpointError, load_checkpoint
    run_dir, ckpt = find_run(Path(path).expanduser())
    if which is not None:
        if which not in WHICH_CHOICES:
            raise SettingsError(f"--which={which}: unknown value; valid values: {', '.join(WHICH_CHOICES)}")
        if Path(path).is_dir():
            ckpt = run_dir.best if which == "best" else run_dir.checkpoint
    settings, _ = run_dir.read_settings()
    changes = {k: v for k, v in changes.items() if v is not None}
    settings = validate(settings.replace(**changes, teacher_checkpoint=None, resume=False, retrain_teacher=False),
                        command=command)
    if not ckpt.is_file():
        raise SettingsError(f"no student checkpoint {str(ckpt)!r}: the run has not finished a distillation "
                            "epoch (run `cnn2gnn distill` first)")
    obj = load_checkpoint(ckpt, map_location="cpu")
    kind = obj.get("kind")
    if kind not in ("distiller", "distiller-best"):
        raise CheckpointError(f"checkpoint file {str(ckpt)!r} is a {kind!r} checkpoint, expected a student "
                              "checkpoint (checkpoint.pt or best.pt of a distillation run)")
    data = load_data(settings)
    model = build_student_model(settings, data.n_train, data.in_features, data.info.num_classes)
    try:
        model.load_state_dict(obj["model"])
    except (RuntimeError, KeyError, TypeError) as e:
        raise CheckpointError(f"checkpoint file {str(ckpt)!r} does not fit the model of "
                              f"{run_dir.settings_json} ({str(e).splitlines()[0][:200]})") from None
    epoch = obj.get("epoch")
    return LoadedRun(run_dir, settings, data, model.eval(), ckpt, epoch if isinstance(epoch, int) else None)


def _meta(run: LoadedRun) -> dict[str, Any]:
    from tg_cnn2gnn.data import class_names
    from tg_cnn2gnn.inference.commands import predictor_meta
    try:
        names = class_names(run.settings.dataset)
    except ValueError:
        names = None
    return predictor_meta(run.data.info, names, run_dir=str(run.run_dir), checkpoint=str(run.checkpoint))


def _require_bank_predictor(model: nn.Module, settings: Settings) -> None:
    if not hasattr(model, "bank_predictor"):
        raise SettingsError(f"the run's student ({settings.student}) has no bank predictor: export and predict "
                            "need a graph student (--student gnn)")


def export_run_dir(path: str | os.PathLike, out: str | os.PathLike, *, which: str | None = None,
                   bank_size: int | None = None, seed: int | None = None, deterministic: bool = False,
                   root: str | None = None, search: str = "exact", nlist: int | None = None,
                   nprobe: int | None = None, label_vote: float = 0.0) -> Path:
    """Freeze the run's student and its bank into ``out`` (``.pt2``: ``torch.export`` program;
    otherwise a safe checkpoint that :func:`tg_cnn2gnn.inference.load_predictor` reads).
    ``search="ivf"``: approximate neighbour search over ``nlist`` lists, ``nprobe`` probed.
    ``label_vote > 0``: the file holds the bank's labels and adds their vote
    (:mod:`tg_cnn2gnn.inference.label_vote`)."""
    from tg_cnn2gnn.inference.commands import export_run
    run = load_run_model(path, which=which, root=root)
    _require_bank_predictor(run.model, run.settings)
    bank = min(bank_size or run.settings.bank_size, run.data.n_train)
    return export_run(run.model, run.data.train_features, _meta(run), out, bank_size=bank,
                      seed=run.settings.eval_seed if seed is None else seed, deterministic=deterministic,
                      search=search, nlist=nlist, nprobe=nprobe,
                      train_y=run.data.y_train if label_vote else None, label_vote=label_vote)


def predict_files(source: str | os.PathLike, images: Sequence[str], *, k: int = 3, which: str | None = None,
                  root: str | None = None) -> Any:
    """Top-``k`` classes of image files (PNG/JPEG/...) or ``.npy`` batches, with a run directory's
    bank predictor or an exported predictor file. Returns a
    :class:`tg_cnn2gnn.inference.commands.Prediction` (``lines``, ``errors``, ``logits``)."""
    from tg_cnn2gnn.inference.commands import load_for_predict, predict_images
    src = Path(source).expanduser()
    if src.is_file() and not (src.parent / RunDir.SETTINGS).is_file() \
            and not (src.parent.parent / RunDir.SETTINGS).is_file():
        predictor, meta = load_for_predict(src)
    else:
        run = load_run_model(src, which=which, root=root)
        _require_bank_predictor(run.model, run.settings)
        predictor = run.model.bank_predictor(run.data.train_features,
                                             bank_size=min(run.settings.bank_size, run.data.n_train),
                                             seed=run.settings.eval_seed)
        meta = _meta(run)
    return predict_images(predictor, meta, list(images), k=k)

