"""The run layer: how a CNN2GNN run flows, one module per step.

* :mod:`~tg_cnn2gnn.run.config` -- :class:`Settings` (schema, coercion, validation, differences),
* :mod:`~tg_cnn2gnn.run.configfile` -- YAML/TOML settings files,
* :mod:`~tg_cnn2gnn.run.data` -- load, subset and split once (:class:`RunData`),
* :mod:`~tg_cnn2gnn.run.factories` -- teacher and student networks, :func:`train_student`,
* :mod:`~tg_cnn2gnn.run.teacher_cache` -- the run directory's teacher (reuse or train),
* :mod:`~tg_cnn2gnn.run.measure` -- FLOPs, latency, parameters, hardware, accuracy,
* :mod:`~tg_cnn2gnn.run.rundir` -- :class:`RunDir`, every file of a run directory,
* :mod:`~tg_cnn2gnn.run.commands` -- ``train-teacher``, ``distill``, ``evaluate``.

The command line (:mod:`tg_cnn2gnn.cli`) is a layer of flags over this package; nothing
here imports it.
"""
from tg_cnn2gnn.run.commands import check_resume, evaluate_run, run_distill, run_train_teacher
from tg_cnn2gnn.run.config import (MECHANISM_NAMES, METHOD_CHOICES, RESUME_SAFE, SETTING_FIELDS, STUDENT_CHOICES,
                                   Settings, SettingsError, coerce, settings_diff, validate)
from tg_cnn2gnn.run.configfile import load_config, settings_from_file
from tg_cnn2gnn.run.data import RunData, load_data, split_data
from tg_cnn2gnn.run.factories import build_student_model, build_teacher_model, train_student
from tg_cnn2gnn.run.rundir import RunDir, RunDirError

__all__ = ["Settings", "SettingsError", "coerce", "validate", "settings_diff", "RESUME_SAFE", "SETTING_FIELDS",
           "MECHANISM_NAMES", "METHOD_CHOICES", "STUDENT_CHOICES", "load_config", "settings_from_file", "RunData",
           "load_data", "split_data", "build_teacher_model", "build_student_model", "train_student", "RunDir",
           "RunDirError", "run_train_teacher", "run_distill", "evaluate_run", "check_resume"]
