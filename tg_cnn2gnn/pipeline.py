r"""The CNN2GNN pipeline shared by the command line and the examples.

Teacher -> distillation -> evaluation -> table, with every setting in one
:class:`Settings` object and every result in a *run directory*::

    run_dir/
      settings.json          all settings of the run (what ``evaluate`` rebuilds the model from)
      teacher/               teacher.pt (final weights), teacher_metrics.csv, teacher_checkpoint.pt,
                             teacher_best.pt, teacher_settings.json (what the cached teacher was trained with)
      checkpoint.pt          student model, last epoch (plus optimiser state, for --resume)
      best.pt                student model, best validation epoch
      metrics.csv            one row per distillation epoch (loss, ce, kd, train_acc, val_acc, times)
      summary.json           accuracies, parameter counts, FLOPs, latencies, wall times, hardware
      table.md               the teacher-vs-student table (also printed)
      training_curves.png    loss and accuracy per epoch (student; teacher when trained in this run)

Programmatic use::

    from tg_cnn2gnn.pipeline import Settings, run_distill, evaluate_run
    summary = run_distill(Settings(dataset="digits", teacher_epochs=3, epochs=5, s=10, out="runs/digits"))
    evaluate_run("runs/digits", mechanisms=("bank",))

**Data.** Whole splits are loaded as tensors (:func:`tg_cnn2gnn.data.load_tensors`,
normalised). ``subset`` keeps a class-stratified part of the training split;
``val_fraction`` of what remains is held out (stratified, ``split_seed``) for validation
-- for the teacher's logged validation accuracy and for the student's checkpoint
selection. Both are trained on the same training part. Test accuracy is reported for the
last epoch and for the best-validation epoch (DESIGN §5).

**Cost measures** (:func:`measure_teacher`, :func:`measure_student`). FLOPs are counted by
:class:`torch.utils.flop_counter.FlopCounterMode`: matrix products and convolutions count
two FLOPs per multiply-add, element-wise work (activations, normalisation, pooling, the
GCN's neighbour sums, Eq. 3's top-k) counts zero. Teacher: one image
(:func:`tg_cnn2gnn.teachers.flops_per_sample`). Student, ``bank`` mechanism: the
*marginal* cost of one test sample joined to its graph, measured as
``F(predict 2 samples) - F(predict 1 sample)`` in one chunk: the head's MLP on the
sample, its learned distances to the bank samples and both GCN layers' transforms of
its node; the bank's own part (head on the bank, the bank's GCN states) does not depend
on the test samples, is computed once per chunk of test samples, and is reported
separately (``bank_part``). Student, ``batch`` mechanism (Mechanism 2): everything for
one test batch of ``eval_batch_size`` samples (including the head on the training batch
``R``) divided by the batch size. Latency: median wall time on the CPU (or the run's
device) in eval mode without gradients, for one sample (``batch 1``: a complete
``predict`` call, the bank recomputed) and per sample over up to 1,000 test samples
(``batched``: teacher batches of 256, bank chunks of 128, Mechanism 2 batches of
``eval_batch_size``). Costs are always measured on the CPU (a CPU copy of a model trained
on a GPU), with the run's ``threads``. Mechanism 2 needs at least 3 test samples, so it has no batch-1
latency.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import platform
import statistics
import sys
import time
import warnings
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Callable, NamedTuple, Sequence

import torch
from torch import Tensor, nn

MECHANISM_NAMES = ("bank", "batch", "one_by_one", "direct")
AUGMENT_CHOICES = ("none", "teacher", "all")
KD_SCALE_CHOICES = ("tau2", "none")
OPTIMIZER_CHOICES = ("adam", "adamw", "sgd")
SCHEDULER_CHOICES = ("cosine", "step", "none")
HEAD_FORM_CHOICES = ("anchor", "embedding")
WHICH_CHOICES = ("last", "best")


class SettingsError(ValueError):
    """A bad setting (name, value, combination): shown to command-line users as one line."""


def _opt(default: Any, kind: str, help: str, **extra: Any) -> Any:
    """A :class:`Settings` field with the metadata the command line builds its flags from."""
    meta = {"kind": kind, "help": help, **extra}
    if isinstance(default, (list, tuple)):
        return field(default_factory=lambda d=tuple(default): d, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Settings:
    r"""Every setting of a CNN2GNN run. Defaults follow the paper (§4.1, DESIGN §4) where it
    states them: ``s = 50``, ``alpha = 1``, batch 100, 200 epochs, lr 0.01, graph head
    512-256, a 2-layer GCN student. The temperature defaults to ``tau = 4`` with Hinton's
    :math:`\tau^2` factor (``kd_scale="tau2"``), the common KD choice; the paper's suggested
    16-64 make :math:`\tau^2` very large, use ``kd_scale="none"`` with those."""

    # data
    dataset: str = _opt("fashion-mnist", "str", "dataset name: fashion-mnist, digits, cifar10, cifar100, stl10, "
                                                "mini-imagenet")
    root: str | None = _opt(None, "str?", "data folder (default: $TG_CNN2GNN_DATA or ./data; Fashion-MNIST "
                                          "is also found in /usr/share/datasets/fashion-mnist)")
    subset: int | None = _opt(None, "int?", "keep a class-stratified subset of about this many training "
                                            "images (default: all)")
    test_subset: int | None = _opt(None, "int?", "keep a class-stratified subset of about this many test "
                                                 "images (default: all)")
    val_fraction: float = _opt(0.1, "float", "share of the training images held out (stratified) for "
                                             "validation / checkpoint selection; 0 = none")
    split_seed: int = _opt(0, "int", "seed of the subset and validation splits")
    download: bool = _opt(False, "bool", "let torchvision download a missing dataset (fashion-mnist, cifar10, "
                                         "cifar100, stl10; needs a network)")
    check_integrity: bool = _opt(True, "bool", "verify the MD5 sums of CIFAR / STL-10 files (turn off for "
                                               "copies that are not the official release)")
    # teacher
    teacher: str = _opt("simple-cnn", "str", "CNN teacher name (simple-cnn, resnet18/34/50/101/152, "
                                             "vgg8/11/13/16/19, wrn-16-2, wrn-40-1, wrn-40-2)")
    teacher_width: int | None = _opt(None, "int?", "width of the simple-cnn teacher (default: its own, 32)")
    teacher_epochs: int = _opt(30, "int", "teacher pre-training epochs")
    teacher_batch_size: int = _opt(128, "int", "teacher pre-training batch size")
    teacher_optimizer: str = _opt("sgd", "str", "teacher optimiser", choices=OPTIMIZER_CHOICES)
    teacher_lr: float = _opt(0.05, "float", "teacher learning rate")
    teacher_weight_decay: float = _opt(5e-4, "float", "teacher weight decay")
    teacher_checkpoint: str | None = _opt(None, "str?", "load the teacher from this file instead of "
                                                        "training it (ours or a state-dict file)")
    augment: str = _opt("none", "str", "random crop/flip augmentation: none, teacher (teacher training "
                                       "only), all (teacher and distillation; disables cached teacher "
                                       "logits)", choices=AUGMENT_CHOICES)
    # student model
    s: int = _opt(50, "int", "sparsity of the learned graph (paper Eq. 3)")
    head_form: str = _opt("anchor", "str", "graph head: anchor (the paper's, one output per training "
                                           "sample) or embedding (ours, inductive)", choices=HEAD_FORM_CHOICES)
    head_hidden: tuple[int, ...] = _opt((512, 256), "ints", "hidden widths of the graph head")
    embedding_channels: int = _opt(64, "int", "embedding size of the embedding head")
    hidden: int = _opt(256, "int", "hidden width of the GNN student")
    conv: str = _opt("gcn", "str", "graph convolution of the student (a name of tg_cnn2gnn.nn.CONVS)")
    num_layers: int = _opt(2, "int", "graph convolutions in the student")
    dropout: float = _opt(0.5, "float", "student dropout")
    # distillation
    alpha: float = _opt(1.0, "float", "weight of the distillation (KL) term, paper Eq. 6")
    tau: float = _opt(4.0, "float", "distillation temperature")
    kd_scale: str = _opt("tau2", "str", "factor of the KL term: tau2 (Hinton's tau^2) or none",
                         choices=KD_SCALE_CHOICES)
    relation_weight: float = _opt(0.0, "float", "weight of the teacher-relation term for the graph head "
                                  "(ours, not in the paper; 0 = the paper's Eq. 6)")
    epochs: int = _opt(200, "int", "distillation epochs")
    batch_size: int = _opt(100, "int", "distillation batch size (one learned graph per batch)")
    optimizer: str = _opt("adam", "str", "student optimiser", choices=OPTIMIZER_CHOICES)
    lr: float = _opt(0.01, "float", "student learning rate")
    momentum: float = _opt(0.9, "float", "SGD momentum (optimizer sgd)")
    weight_decay: float = _opt(0.0, "float", "student weight decay")
    scheduler: str = _opt("cosine", "str", "learning-rate schedule (teacher and student)",
                          choices=SCHEDULER_CHOICES)
    cache_teacher_logits: bool = _opt(True, "bool", "compute the teacher's logits once (exact without "
                                                    "augmentation during distillation)")
    # evaluation
    mechanisms: tuple[str, ...] = _opt(("bank", "batch"), "strs", "inference mechanisms for the test "
                                                                   "accuracy", choices=MECHANISM_NAMES)
    val_mechanism: str = _opt("bank", "str", "inference mechanism of the validation accuracy",
                              choices=MECHANISM_NAMES)
    bank_size: int = _opt(100, "int", "training samples in the inference bank (and Mechanism 2's "
                                      "training batch)")
    eval_batch_size: int = _opt(100, "int", "test batch size of Mechanism 2 (batch) and direct")
    eval_seed: int = _opt(0, "int", "seed of the bank draw")
    measure: bool = _opt(True, "bool", "measure FLOPs and CPU latency per sample for the table")
    # run
    out: str | None = _opt(None, "str?", "run directory (default: runs/<dataset>)")
    seed: int = _opt(0, "int", "random seed (initialisation, shuffling)")
    device: str = _opt("auto", "str", "auto (CUDA when available), cpu, cuda, cuda:N")
    threads: int | None = _opt(None, "int?", "torch CPU threads (default: torch's own choice)")
    resume: bool = _opt(False, "bool", "continue an interrupted distillation from the run directory")
    progress: bool = _opt(False, "bool", "tqdm progress bars")

    def replace(self, **changes: Any) -> "Settings":
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: (list(v) if isinstance(v := getattr(self, f.name), tuple) else v) for f in fields(self)}

    @classmethod
    def from_dict(cls, values: dict[str, Any], *, source: str = "settings") -> "Settings":
        """Settings from a mapping (``-`` or ``_`` in keys); unknown keys raise :class:`SettingsError`."""
        known = {f.name: f for f in fields(cls)}
        kwargs = {}
        for key, value in values.items():
            name = str(key).replace("-", "_")
            if name not in known:
                raise SettingsError(f"unknown setting {key!r} in {source}; valid settings: {', '.join(known)}")
            kwargs[name] = coerce(name, value, source=source)
        return cls(**kwargs)


SETTING_FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in fields(Settings)}


def coerce(name: str, value: Any, *, source: str = "settings") -> Any:
    """Convert a config-file (or flag) value to the type of setting ``name``; one clear error otherwise."""
    f = SETTING_FIELDS[name]
    kind: str = f.metadata["kind"]
    optional = kind.endswith("?")
    base = kind.rstrip("?")
    where = f"{name} (in {source})"
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in ("", "none", "null")):
        if optional:
            return None
        raise SettingsError(f"{where} must not be empty")
    try:
        if base == "int":
            if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                raise ValueError
            return int(value)
        if base == "float":
            if isinstance(value, bool):
                raise ValueError
            out = float(value)
            if not math.isfinite(out):
                raise ValueError
            return out
        if base == "bool":
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in ("true", "yes", "1", "on", "false", "no", "0",
                                                                    "off"):
                return value.strip().lower() in ("true", "yes", "1", "on")
            raise ValueError
        if base in ("ints", "strs"):
            items = value.replace(",", " ").split() if isinstance(value, str) else value
            if not isinstance(items, (list, tuple)):
                items = [items]
            if base == "ints":
                if any(isinstance(v, bool) or (isinstance(v, float) and not v.is_integer()) for v in items):
                    raise ValueError
                return tuple(int(v) for v in items)
            if any(not isinstance(v, str) for v in items):
                raise ValueError
            return tuple(items)
        if not isinstance(value, str):
            raise ValueError
        return value
    except (TypeError, ValueError):
        what = {"int": "an integer", "float": "a finite number", "bool": "true or false", "str": "a string",
                "ints": "a list of integers", "strs": "a list of names"}[base]
        raise SettingsError(f"{where} must be {what}{' or null' if optional else ''}, got {value!r}") from None


def validate(settings: Settings, *, command: str = "distill") -> Settings:
    """Check every setting (names against the registries, ranges, combinations) and return a
    normalised copy (canonical dataset/teacher names, lower-case choices).

    Raises:
        SettingsError: one line naming the setting, its value and what is allowed.
    """
    from tg_cnn2gnn.data.info import DATASETS, canonical_name
    from tg_cnn2gnn.nn.student import CONVS
    from tg_cnn2gnn.teachers import TEACHERS

    # types first (programmatic use may bypass coerce)
    s = Settings(**{f.name: coerce(f.name, getattr(settings, f.name)) for f in fields(Settings)})

    def bad(name: str, msg: str) -> SettingsError:
        flag = "--" + name.replace("_", "-")
        return SettingsError(f"{flag}={_show(getattr(s, name))}: {msg}")

    try:
        dataset = canonical_name(s.dataset)
    except ValueError:
        raise SettingsError(f"unknown dataset {s.dataset!r}; valid datasets: {', '.join(DATASETS)}") from None
    key = s.teacher.strip().lower().replace("_", "-")
    if key not in TEACHERS:
        raise SettingsError(f"unknown teacher {s.teacher!r}; valid teachers: {', '.join(TEACHERS)}")
    if s.conv.lower() not in CONVS:
        raise SettingsError(f"unknown conv {s.conv!r}; valid convs: {', '.join(CONVS)}")
    for name in ("teacher_optimizer", "optimizer", "scheduler", "augment", "kd_scale", "head_form",
                 "val_mechanism"):
        choices = SETTING_FIELDS[name].metadata["choices"]
        if getattr(s, name) not in choices:
            raise bad(name, f"unknown value; valid values: {', '.join(choices)}")
    if not s.mechanisms:
        raise bad("mechanisms", f"give at least one mechanism of {', '.join(MECHANISM_NAMES)}")
    for m in s.mechanisms:
        if m not in MECHANISM_NAMES:
            raise SettingsError(f"unknown mechanism {m!r}; valid mechanisms: {', '.join(MECHANISM_NAMES)}")
    if len(set(s.mechanisms)) != len(s.mechanisms):
        raise bad("mechanisms", "mechanisms are listed more than once")
    if s.head_form == "anchor":
        for name, values in (("mechanisms", s.mechanisms), ("val_mechanism", (s.val_mechanism,))):
            if "direct" in values:
                raise bad(name, "mechanism 'direct' needs test-test distances, which only the embedding head "
                                "has (--head-form embedding); the anchor head supports bank, batch, one_by_one")
    positive = ["epochs", "teacher_epochs", "batch_size", "teacher_batch_size", "hidden", "num_layers",
                "embedding_channels", "eval_batch_size"]
    for name in positive:
        if getattr(s, name) < 1:
            raise bad(name, "must be a positive integer")
    for name in ("subset", "test_subset", "teacher_width", "threads"):
        if getattr(s, name) is not None and getattr(s, name) < 1:
            raise bad(name, "must be a positive integer (or left out)")
    for name in ("seed", "split_seed", "eval_seed"):
        if not 0 <= getattr(s, name) < 2 ** 32:
            raise bad(name, "must be an integer in [0, 2**32)")
    if not s.head_hidden or any(h < 1 for h in s.head_hidden):
        raise bad("head_hidden", "must be one or more positive integers, e.g. 512 256")
    if s.batch_size < 3:
        raise bad("batch_size", "must be at least 3 (Eq. 3 needs s + 1 other samples in a batch)")
    if s.s < 1:
        raise bad("s", "must be a positive integer")
    if s.s > s.batch_size - 2:
        raise bad("s", f"must be smaller than the batch size minus 1 (Eq. 3 needs the (s+1)-th nearest of "
                       f"the other {s.batch_size - 1} samples of a batch of {s.batch_size}); use "
                       f"--s {max(1, s.batch_size - 2)} or less, or a larger --batch-size")
    if s.bank_size < 3:
        raise bad("bank_size", "must be at least 3")
    if ("batch" in s.mechanisms or s.val_mechanism == "batch") and s.eval_batch_size < 3:
        raise bad("eval_batch_size", "Mechanism 2 (batch) needs test batches of at least 3 samples")
    if s.alpha < 0:
        raise bad("alpha", "must be >= 0 (0 trains the student without the teacher)")
    if s.tau <= 0:
        raise bad("tau", "must be > 0")
    if s.relation_weight < 0:
        raise bad("relation_weight", "must be >= 0 (0 = the paper's objective)")
    for name in ("lr", "teacher_lr"):
        if getattr(s, name) <= 0:
            raise bad(name, "must be > 0")
    for name in ("weight_decay", "teacher_weight_decay", "momentum"):
        if getattr(s, name) < 0:
            raise bad(name, "must be >= 0")
    if not 0 <= s.dropout < 1:
        raise bad("dropout", "must be in [0, 1)")
    if not 0 <= s.val_fraction < 1:
        raise bad("val_fraction", "must be in [0, 1)")
    if s.augment == "all" and s.cache_teacher_logits:
        s = s.replace(cache_teacher_logits=False)  # random augmentation: logits must be recomputed
    if s.teacher_width is not None and key != "simple-cnn":
        raise bad("teacher_width", f"only applies to the simple-cnn teacher, not {key!r}")
    if s.device != "auto":
        try:
            dev = torch.device(s.device)
        except (RuntimeError, TypeError):
            raise bad("device", "not a torch device; use auto, cpu, cuda or cuda:N") from None
        if dev.type == "cuda" and not torch.cuda.is_available():
            raise bad("device", "CUDA is not available on this machine")
    if s.teacher_checkpoint is not None and not Path(s.teacher_checkpoint).expanduser().is_file():
        raise bad("teacher_checkpoint", "no such file")
    return s.replace(dataset=dataset, teacher=key, conv=s.conv.lower())


def _show(value: Any) -> str:
    if isinstance(value, tuple):
        return " ".join(map(str, value))
    return str(value)


# ----------------------------------------------------------------------------------- data
class RunData(NamedTuple):
    """Tensors of a run: training split (after ``subset``) and test split, normalised images."""

    x: Tensor            # [N, C, H, W] training split (train + validation parts)
    y: Tensor            # [N]
    x_test: Tensor       # [T, C, H, W]
    y_test: Tensor       # [T]
    train_idx: Tensor    # positions of the training part in x (anchor head neuron k = train_idx[k])
    val_idx: Tensor      # positions of the validation part in x (may be empty)
    info: Any            # tg_cnn2gnn.data.DatasetInfo


def _stratified_subset(y: Tensor, n: int | None, seed: int) -> Tensor | None:
    from tg_cnn2gnn.data import stratified_split
    if n is None or n >= y.numel():
        return None
    return stratified_split(y, n / y.numel(), seed=seed)[1]


def load_data(settings: Settings) -> RunData:
    """Load the dataset's train and test splits (normalised tensors), apply ``subset`` /
    ``test_subset`` and the validation split. Missing files raise the loader's
    :class:`FileNotFoundError` (it says where the files were looked for and how to get them)."""
    from tg_cnn2gnn.data import dataset_info, load_tensors, train_val_split
    s = settings
    info = dataset_info(s.dataset)
    kw = {"download": s.download, "check_integrity": s.check_integrity}
    try:
        x, y = load_tensors(s.dataset, "train", s.root, **kw)
    except ValueError as e:
        if "MD5" in str(e):  # name the command-line switch beside the Python argument
            raise SettingsError(f"{' '.join(str(e).split())} (command line: --no-check-integrity)") from None
        raise
    keep = _stratified_subset(y, s.subset, s.split_seed)
    if keep is not None:
        x, y = x[keep], y[keep]
    xt, yt = load_tensors(s.dataset, "test", s.root, **kw)
    keep = _stratified_subset(yt, s.test_subset, s.split_seed)
    if keep is not None:
        xt, yt = xt[keep], yt[keep]
    if s.val_fraction:
        tr, va = train_val_split(y, s.val_fraction, seed=s.split_seed)
    else:
        tr, va = torch.arange(y.numel()), torch.zeros(0, dtype=torch.long)
    if tr.numel() < s.batch_size:
        raise SettingsError(f"only {tr.numel()} training images after --subset/--val-fraction, fewer than "
                            f"--batch-size={s.batch_size}")
    if tr.numel() < s.bank_size:
        raise SettingsError(f"--bank-size={s.bank_size} exceeds the {tr.numel()} training images")
    return RunData(x, y, xt, yt, tr, va, info)


# ----------------------------------------------------------------------------------- models
def build_teacher_model(settings: Settings, info: Any) -> nn.Module:
    """The (randomly initialised) teacher of ``settings`` for dataset ``info``."""
    from tg_cnn2gnn.teachers import build_teacher
    kwargs = {"width": settings.teacher_width} if settings.teacher_width is not None else {}
    return build_teacher(settings.teacher, info.num_classes, in_channels=info.channels,
                         image_size=info.image_size, **kwargs)


def build_student_model(settings: Settings, num_train: int, in_features: int, num_classes: int) -> nn.Module:
    """:class:`~tg_cnn2gnn.nn.CNN2GNN`: a :class:`~tg_cnn2gnn.nn.LearnedGraphHead` (``head_form``,
    ``head_hidden``, ``s``; anchor form with ``num_train`` outputs) and a
    :class:`~tg_cnn2gnn.nn.GraphStudent` (``num_layers`` ``conv`` layers, ``hidden`` wide)."""
    from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead
    s = settings
    head = LearnedGraphHead(in_features, num_train=num_train if s.head_form == "anchor" else None, s=s.s,
                            hidden_channels=tuple(s.head_hidden), form=s.head_form,
                            embedding_channels=s.embedding_channels)
    student = GraphStudent(in_features, s.hidden, num_classes, num_layers=s.num_layers, conv=s.conv,
                           dropout=s.dropout)
    return CNN2GNN(head, student)


def _device(settings: Settings) -> torch.device:
    if settings.device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(settings.device)


def run_dir_of(settings: Settings) -> Path:
    return Path(settings.out if settings.out else os.path.join("runs", settings.dataset)).expanduser()


TEACHER_KEYS = ("dataset", "subset", "val_fraction", "split_seed", "teacher", "teacher_width", "teacher_epochs",
                "teacher_batch_size", "teacher_optimizer", "teacher_lr", "teacher_weight_decay", "scheduler",
                "augment_teacher", "seed")


def teacher_fingerprint(settings: Settings) -> dict[str, Any]:
    """The settings a trained teacher depends on (a cached ``teacher.pt`` is reused only when they match)."""
    d = settings.to_dict()
    d["augment_teacher"] = settings.augment != "none"
    return {k: d[k] for k in TEACHER_KEYS}


def _write_json(path: Path, obj: Any) -> None:
    from tg_cnn2gnn.distill.metrics import write_json
    write_json(path, obj)


def _read_json(path: Path) -> Any:
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _quiet() -> contextlib.AbstractContextManager:
    cm = warnings.catch_warnings()

    class _Ctx:
        def __enter__(self) -> None:
            cm.__enter__()
            warnings.filterwarnings("ignore", category=FutureWarning)
            warnings.filterwarnings("ignore", message=".*amp=True only takes effect.*")

        def __exit__(self, *exc: Any) -> None:
            cm.__exit__(*exc)
    return _Ctx()


def _epoch_printer(log: Callable[[str], None], what: str, epochs: int) -> Callable[[int, dict], None]:
    def callback(epoch: int, row: dict[str, Any]) -> None:
        parts = [f"{what} epoch {epoch + 1}/{epochs}", f"loss {row.get('loss', float('nan')):.4f}",
                 f"train acc {row.get('train_acc', float('nan')):.4f}"]
        if row.get("val_acc") is not None:
            parts.append(f"val acc {row['val_acc']:.4f}")
        parts.append(f"{row.get('train_time', 0.0) + row.get('val_time', 0.0):.1f} s")
        log(" | ".join(parts))
    return callback


def obtain_teacher(settings: Settings, data: RunData, run_dir: Path,
                   log: Callable[[str], None] = print) -> tuple[nn.Module, dict[str, Any]]:
    """The teacher of the run: loaded from ``teacher_checkpoint``, reused from
    ``run_dir/teacher/teacher.pt`` when it was trained with the same settings, or trained
    now (cross-entropy, paper Algorithm 2 line 3) on the training part. Returns the frozen
    teacher (eval mode) and ``{"source", "path", "train_time_s"}``."""
    from tg_cnn2gnn.data import augment_batch
    from tg_cnn2gnn.distill import freeze, load_teacher, pretrain_teacher
    s = settings
    torch.manual_seed(s.seed)
    teacher = build_teacher_model(s, data.info)
    tdir = run_dir / "teacher"
    cached = tdir / "teacher.pt"
    stamp = tdir / "teacher_settings.json"
    if s.teacher_checkpoint is not None:
        load_teacher(teacher, Path(s.teacher_checkpoint).expanduser())
        log(f"teacher: loaded {s.teacher} from {s.teacher_checkpoint}")
        return freeze(teacher), {"source": "checkpoint", "path": str(s.teacher_checkpoint), "train_time_s": None}
    fp = teacher_fingerprint(s)
    if cached.is_file() and stamp.is_file():
        try:
            old = _read_json(stamp)
        except (OSError, ValueError):
            old = None
        if old == fp:
            load_teacher(teacher, cached)
            prev = old_time = None
            with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
                prev = _read_json(tdir / "teacher_summary.json")
                old_time = prev.get("train_time_s")
            log(f"teacher: reusing {cached} (trained earlier with the same settings)")
            return freeze(teacher), {"source": "cached", "path": str(cached), "train_time_s": old_time}
        log(f"teacher: {cached} was trained with other settings; training a new one")
    tr, va = data.train_idx, data.val_idx
    augment = None
    if s.augment != "none" and (data.info.crop_padding > 0 or data.info.hflip):
        def augment(images: Tensor, _name: str = s.dataset) -> Tensor:
            return augment_batch(images, _name)
    log(f"teacher: training {s.teacher} for {s.teacher_epochs} epoch(s) on {tr.numel()} images")
    t0 = time.perf_counter()
    if stamp.exists():
        stamp.unlink()
    with _quiet():
        result = pretrain_teacher(
            teacher, data.x[tr], data.y[tr], epochs=s.teacher_epochs, batch_size=s.teacher_batch_size,
            optimizer=s.teacher_optimizer, lr=s.teacher_lr, weight_decay=s.teacher_weight_decay,
            scheduler=s.scheduler, augment=augment, val=(data.x[va], data.y[va]) if va.numel() else None,
            out_dir=tdir, seed=s.seed, device=None if s.device == "auto" else s.device, progress=s.progress,
            tensorboard=False, callbacks=[_epoch_printer(log, "teacher", s.teacher_epochs)])
    elapsed = time.perf_counter() - t0
    _write_json(tdir / "teacher_summary.json", {"train_time_s": elapsed, "history": result["history"]})
    _write_json(stamp, fp)
    return freeze(teacher), {"source": "trained", "path": result.get("path"), "train_time_s": elapsed}


# ----------------------------------------------------------------------------------- measuring
def median_time(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of ``fn()`` counted by :class:`torch.utils.flop_counter.FlopCounterMode`."""
    from torch.utils.flop_counter import FlopCounterMode
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _on_cpu(module: nn.Module) -> nn.Module:
    """``module`` itself when it lives on the CPU, else a CPU copy (costs are CPU costs)."""
    p = next(module.parameters(), None)
    if p is None or p.device.type == "cpu":
        return module
    import copy
    return copy.deepcopy(module).cpu()


@torch.no_grad()
def measure_teacher(teacher: nn.Module, x_test: Tensor, *, latency: bool = True, batched: int = 256,
                    repeats: int = 20) -> dict[str, Any]:
    """Parameters, FLOPs per image and latency (ms per image: batch of 1, and batched)."""
    from tg_cnn2gnn.teachers import count_parameters, flops_per_sample
    teacher = _on_cpu(teacher)
    out: dict[str, Any] = {"params": count_parameters(teacher),
                           "flops_per_sample": flops_per_sample(teacher, tuple(x_test.shape[1:]))}
    if latency:
        dev = next(teacher.parameters()).device
        teacher.eval()
        one = x_test[:1].to(dev)
        many = x_test[:1000].to(dev)

        def single() -> None:
            teacher(one)
            _sync(dev)

        def batch() -> None:
            for a in range(0, many.size(0), batched):
                teacher(many[a:a + batched])
            _sync(dev)
        out["latency_ms_batch1"] = 1e3 * median_time(single, repeats, warmup=3)
        out["latency_ms_batched"] = 1e3 * median_time(batch, 3) / many.size(0)
        out["latency_batch_size"] = batched
    return out


@torch.no_grad()
def measure_student(model: nn.Module, train_x: Tensor, x_test: Tensor, *, mechanisms: Sequence[str],
                    bank_size: int = 100, eval_batch_size: int = 100, seed: int = 0, latency: bool = True,
                    repeats: int = 10) -> dict[str, Any]:
    """Parameters (head + student, student alone, head), FLOPs per test sample and latency per
    test sample for each mechanism (see the module docstring for how they are counted).

    Args:
        model: a trained :class:`~tg_cnn2gnn.nn.CNN2GNN`.
        train_x: ``[n_train, F]`` training features (row ``k`` = training id ``k``).
        x_test: ``[T, F]`` (or images) test samples.
    """
    from tg_cnn2gnn.teachers import count_parameters
    model = _on_cpu(model)
    model.eval()
    dev = next(model.parameters()).device
    train_x = train_x.to(dev)
    xt = x_test.flatten(1).to(dev)
    out: dict[str, Any] = {"params_total": count_parameters(model), "params_student": count_parameters(model.student),
                           "params_head": count_parameters(model.head), "flops": {}, "latency_ms": {}}
    bank_size = min(bank_size, train_x.size(0))

    def predict(x: Tensor, mechanism: str, **kw: Any) -> Tensor:
        return model.predict(x, mechanism=mechanism, train_x=train_x, bank_size=bank_size, seed=seed,
                             batch_size=eval_batch_size, **kw)

    for mech in mechanisms:
        if mech in ("bank", "one_by_one"):
            one = count_flops(lambda: predict(xt[:1], mech, chunk_size=2))
            two = count_flops(lambda: predict(xt[:2], mech, chunk_size=2))
            marginal = two - one
            out["flops"][mech] = {"per_sample": marginal, "fixed_part": one - marginal, "single_call": one,
                                  "counted_as": "marginal cost of one test sample (F(2) - F(1)); fixed_part: "
                                                "the bank's own share, once per chunk of test samples"}
        else:
            b = min(eval_batch_size, xt.size(0))
            if b < 3:
                continue
            total = count_flops(lambda: predict(xt[:b], mech))
            out["flops"][mech] = {"per_sample": total / b, "batch": b,
                                  "counted_as": f"one test batch of {b} divided by {b}"}
        if latency:
            many = xt[:1000]
            lat: dict[str, Any] = {}
            if mech in ("bank", "one_by_one"):
                lat["batch1"] = 1e3 * median_time(lambda: (predict(xt[:1], mech), _sync(dev)), repeats, warmup=2)
            if many.size(0) >= 3:
                lat["batched"] = 1e3 * median_time(lambda: (predict(many, mech), _sync(dev)), 3) / many.size(0)
                lat["batched_n"] = int(many.size(0))
            out["latency_ms"][mech] = lat
    return out


def hardware() -> dict[str, Any]:
    """CPU model, cores, torch threads and versions (for the tables)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info


# ----------------------------------------------------------------------------------- runs
class _Threads:
    def __init__(self, n: int | None) -> None:
        self.n = n
        self.before = torch.get_num_threads()

    def __enter__(self) -> None:
        if self.n is not None:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc: Any) -> None:
        torch.set_num_threads(self.before)


def _save_settings(settings: Settings, run_dir: Path, command: str) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    _write_json(run_dir / "settings.json", {"command": command, **settings.to_dict()})


def run_train_teacher(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``cnn2gnn train-teacher``: train (or reuse) the teacher of ``settings`` in
    ``run_dir/teacher``, test it, measure it, write ``teacher/teacher_summary.json``."""
    from tg_cnn2gnn.distill import accuracy
    settings = validate(settings, command="train-teacher")
    start = time.perf_counter()
    run_dir = run_dir_of(settings)
    with _Threads(settings.threads):
        data = load_data(settings)
        (run_dir / "teacher").mkdir(parents=True, exist_ok=True)
        teacher, tinfo = obtain_teacher(settings.replace(teacher_checkpoint=None), data, run_dir, log)
        dev = _device(settings)
        teacher.to(dev)
        acc = accuracy(teacher, data.x_test, data.y_test, device=dev)
        meas = measure_teacher(teacher, data.x_test, latency=settings.measure)
        summary = {"command": "train-teacher", "dataset": settings.dataset, "teacher": settings.teacher,
                   "test_acc": acc, **tinfo, **meas, "n_train": int(data.train_idx.numel()),
                   "n_val": int(data.val_idx.numel()), "n_test": int(data.y_test.numel()),
                   "wall_time_s": time.perf_counter() - start, "hardware": hardware(),
                   "settings": teacher_fingerprint(settings)}
        prev: dict[str, Any] = {}
        with contextlib.suppress(OSError, ValueError):
            prev = _read_json(run_dir / "teacher" / "teacher_summary.json")
        _write_json(run_dir / "teacher" / "teacher_summary.json", {**prev, **summary})
        with contextlib.suppress(Exception):
            from tg_cnn2gnn.report import plot_curves
            plot_curves(run_dir, run_dir / "teacher" / "teacher_curves.png", student=False)
    from tg_cnn2gnn.report import fmt_count, fmt_ms
    log(f"teacher {settings.teacher}: test accuracy {acc:.4f} ({data.y_test.numel()} test images); "
        f"{fmt_count(meas['params'])} parameters, {fmt_count(meas['flops_per_sample'])} FLOPs / sample"
        + (f", CPU latency {fmt_ms(meas['latency_ms_batch1'])} / sample (batch of 1)" if settings.measure else "")
        + f"; files in {run_dir / 'teacher'}")
    return summary


def run_distill(settings: Settings, log: Callable[[str], None] = print) -> dict[str, Any]:
    """``cnn2gnn distill`` and the examples: teacher (trained, cached or loaded) -> CNN2GNN
    distillation -> test accuracy under ``mechanisms`` (last and best-validation epoch) ->
    parameters, FLOPs, latency -> ``summary.json``, ``table.md``, ``training_curves.png``.

    Returns the summary (see the module docstring for the run directory's files)."""
    from tg_cnn2gnn.distill import HeteroDistiller, accuracy
    from tg_cnn2gnn.report import make_table, plot_curves
    settings = validate(settings, command="distill")
    s = settings
    start = time.perf_counter()
    run_dir = run_dir_of(s)
    with _Threads(s.threads):
        data = load_data(s)
        _save_settings(s, run_dir, "distill")
        log(f"run directory: {run_dir}")
        log(f"data: {s.dataset}, {data.train_idx.numel()} train / {data.val_idx.numel()} validation / "
            f"{data.y_test.numel()} test images")
        need_teacher = s.alpha > 0 or s.relation_weight > 0
        teacher, tinfo = (obtain_teacher(s, data, run_dir, log) if need_teacher
                          else (None, {"source": "none (alpha = 0)", "path": None, "train_time_s": None}))
        t_teacher_done = time.perf_counter()
        num_train = int(data.train_idx.numel())
        in_features = int(data.x[0].numel())
        torch.manual_seed(s.seed)
        model = build_student_model(s, num_train, in_features, data.info.num_classes)
        distiller = HeteroDistiller(teacher, model, alpha=s.alpha, tau=s.tau, kd_scale=s.kd_scale,
                                    relation_weight=s.relation_weight, device=None if s.device == "auto" else s.device, distributed=False)
        mechs = list(s.mechanisms)
        log(f"distillation: {s.epochs} epoch(s), batch {s.batch_size}, s = {s.s}, alpha = {s.alpha}, "
            f"tau = {s.tau} ({s.kd_scale}), {s.optimizer} lr {s.lr}")
        augment = None
        if s.augment == "all" and (data.info.crop_padding > 0 or data.info.hflip):
            from tg_cnn2gnn.data import augment_batch

            def augment(images: Tensor, _name: str = s.dataset) -> Tensor:
                return augment_batch(images, _name)
        t0 = time.perf_counter()
        with _quiet():
            dsum = distiller.fit(
                data.x, data.y, epochs=s.epochs, batch_size=s.batch_size, optimizer=s.optimizer, lr=s.lr,
                momentum=s.momentum, weight_decay=s.weight_decay, scheduler=s.scheduler,
                val_fraction=s.val_fraction or None, split_seed=s.split_seed, val_mechanism=s.val_mechanism,
                test=(data.x_test, data.y_test), test_mechanisms=tuple(mechs), eval_batch_size=s.eval_batch_size,
                bank_size=s.bank_size, eval_seed=s.eval_seed,
                cache_teacher_logits=bool(s.cache_teacher_logits and teacher is not None and augment is None),
                augment=augment, out_dir=run_dir, resume=s.resume, seed=s.seed, progress=s.progress,
                tensorboard=False, callbacks=[_epoch_printer(log, "distill", s.epochs)])
        distill_time = time.perf_counter() - t0
        dev = distiller.device
        teacher_acc = dsum.get("teacher_test_acc")
        if teacher is not None and teacher_acc is None:
            teacher_acc = accuracy(teacher, data.x_test, data.y_test, device=dev)
        log("measuring parameters, FLOPs and latency" if s.measure else "counting parameters and FLOPs")
        train_x = data.x[data.train_idx].flatten(1)
        smeas = measure_student(model, train_x, data.x_test, mechanisms=mechs, bank_size=s.bank_size,
                                eval_batch_size=s.eval_batch_size, seed=s.eval_seed, latency=s.measure)
        tmeas = measure_teacher(teacher, data.x_test, latency=s.measure) if teacher is not None else None
        summary: dict[str, Any] = {
            "command": "distill",
            "dataset": s.dataset,
            "n_train": num_train, "n_val": int(data.val_idx.numel()), "n_test": int(data.y_test.numel()),
            "teacher": None if teacher is None else {"name": s.teacher, "test_acc": teacher_acc, **tinfo, **tmeas},
            "student": {
                "head_form": s.head_form, "conv": s.conv, "num_layers": s.num_layers, "s": s.s,
                "test_acc": dsum.get("test", {}), "best_epoch": dsum.get("best_epoch"),
                "best_val_acc": dsum.get("best_val_acc"), "last_val_acc": dsum.get("last_val_acc"),
                "train_time_s": distill_time, "mean_train_time_per_epoch_s": dsum.get("mean_train_time_per_epoch"),
                **smeas,
            },
            "wall_time_s": None,  # filled below
            "teacher_stage_time_s": t_teacher_done - start,
            "hardware": hardware(),
            "device": str(dev),
            "settings": s.to_dict(),
            "distill": {k: v for k, v in dsum.items() if k != "history"},
        }
        summary["wall_time_s"] = time.perf_counter() - start
        _write_json(run_dir / "summary.json", summary)
        table = make_table(summary)
        (run_dir / "table.md").write_text(table, encoding="utf-8")
        try:
            plot_curves(run_dir, run_dir / "training_curves.png",
                        teacher=(tinfo.get("source") == "trained"
                                 or (run_dir / "teacher" / "teacher_metrics.csv").is_file()))
        except Exception as e:  # noqa: BLE001 - a plot must never lose a finished run
            log(f"warning: could not draw training_curves.png ({type(e).__name__}: {e})")
    summary["table"] = table
    return summary


# ----------------------------------------------------------------------------------- evaluate
def _find_run(path: Path) -> tuple[Path, Path]:
    """``(run_dir, checkpoint file)`` for a run directory or a checkpoint inside one."""
    if path.is_dir():
        return path, path / "checkpoint.pt"
    if path.is_file():
        for parent in (path.parent, path.parent.parent):
            if (parent / "settings.json").is_file():
                return parent, path
        raise SettingsError(f"no settings.json next to {str(path)!r} (or in its parent folder): evaluate needs "
                            "the run directory written by `cnn2gnn distill`")
    raise SettingsError(f"{str(path)!r} does not exist (give a run directory or a checkpoint file in one)")


def evaluate_run(path: str | os.PathLike, *, mechanisms: Sequence[str] | None = None, which: str | None = None,
                 root: str | None = None, bank_size: int | None = None, eval_batch_size: int | None = None,
                 eval_seed: int | None = None, device: str | None = None, threads: int | None = None,
                 write: bool = True) -> dict[str, Any]:
    """Test accuracy of a distilled student from its run directory (``cnn2gnn evaluate``).

    The model is rebuilt from ``settings.json``; the weights come from ``checkpoint.pt``
    (``which="last"``, default) or ``best.pt`` (``"best"``), or from the checkpoint file
    given as ``path``. The data (subset, validation split, bank) are those of the run, so
    the result reproduces ``summary.json``'s ``student.test_acc`` for the same mechanism
    and settings. Writes ``evaluate.json`` into the run directory when ``write``.

    Returns:
        ``{"mechanisms": {name: accuracy}, "checkpoint": path, ...}``.
    """
    from tg_cnn2gnn.distill import CheckpointError, load_checkpoint
    run_dir, ckpt = _find_run(Path(path).expanduser())
    if which is not None:
        if which not in WHICH_CHOICES:
            raise SettingsError(f"--which={which}: unknown value; valid values: {', '.join(WHICH_CHOICES)}")
        if Path(path).is_dir():
            ckpt = run_dir / ("best.pt" if which == "best" else "checkpoint.pt")
    raw = _read_json(run_dir / "settings.json")
    raw.pop("command", None)
    settings = Settings.from_dict(raw, source=str(run_dir / "settings.json"))
    changes: dict[str, Any] = {}
    for name, value in (("root", root), ("bank_size", bank_size), ("eval_batch_size", eval_batch_size),
                        ("eval_seed", eval_seed), ("device", device), ("threads", threads)):
        if value is not None:
            changes[name] = value
    if mechanisms is not None:
        changes["mechanisms"] = tuple(mechanisms)
    settings = validate(settings.replace(**changes, teacher_checkpoint=None), command="evaluate")
    if not ckpt.is_file():
        raise SettingsError(f"no student checkpoint {str(ckpt)!r}: the run has not finished a distillation "
                            "epoch (run `cnn2gnn distill` first)")
    with _Threads(settings.threads):
        obj = load_checkpoint(ckpt, map_location="cpu")
        kind = obj.get("kind")
        if kind not in ("distiller", "distiller-best"):
            raise CheckpointError(f"checkpoint file {str(ckpt)!r} is a {kind!r} checkpoint, expected a student "
                                  "checkpoint (checkpoint.pt or best.pt of a distillation run)")
        data = load_data(settings)
        model = build_student_model(settings, int(data.train_idx.numel()), int(data.x[0].numel()),
                                    data.info.num_classes)
        try:
            model.load_state_dict(obj["model"])
        except (RuntimeError, KeyError) as e:
            raise CheckpointError(f"checkpoint file {str(ckpt)!r} does not fit the model of {run_dir}/settings.json "
                                  f"({str(e).splitlines()[0][:200]})") from None
        dev = _device(settings)
        model.to(dev).eval()
        train_x = data.x[data.train_idx].flatten(1).to(dev)
        xt = data.x_test.flatten(1).to(dev)
        accs: dict[str, float] = {}
        for mech in settings.mechanisms:
            logits = model.predict(xt, mechanism=mech, train_x=train_x, batch_size=settings.eval_batch_size,
                                   bank_size=settings.bank_size, seed=settings.eval_seed)
            accs[mech] = float((logits.argmax(-1).cpu() == data.y_test).double().mean())
    result = {"run_dir": str(run_dir), "checkpoint": str(ckpt), "epoch": obj.get("epoch"),
              "mechanisms": accs, "n_test": int(data.y_test.numel()), "bank_size": settings.bank_size,
              "eval_batch_size": settings.eval_batch_size, "eval_seed": settings.eval_seed}
    if write:
        _write_json(run_dir / "evaluate.json", result)
    return result


# ----------------------------------------------------------------------------------- examples
def example_main(dataset: str, defaults: dict[str, Any], argv: Sequence[str] | None = None, *,
                 description: str | None = None) -> int:
    """Entry point of ``examples/<dataset>.py``: teacher -> distillation -> evaluation with
    the example's ``defaults`` (scaled-down or paper settings), overridable by flags and
    ``--config``; prints the teacher-vs-student table. Returns the exit code (2 for bad
    settings or missing data, with one line on stderr)."""
    from tg_cnn2gnn.cli import EXAMPLE_OPTIONS, build_settings, fail, make_parser_for
    prog = os.path.basename(sys.argv[0]) if argv is None else f"examples/{dataset.replace('-', '_')}.py"
    parser = make_parser_for(EXAMPLE_OPTIONS, {**defaults, "dataset": dataset}, prog=prog, description=description)
    try:
        settings = build_settings(parser, list(sys.argv[1:] if argv is None else argv), "distill")
        summary = run_distill(settings)
    except (SettingsError, FileNotFoundError, ValueError, TypeError) as e:
        return fail(prog, e)
    print()
    print(summary["table"])
    return 0
