r"""The settings of a run: schema, coercion, validation, differences (no flag spelling here
beyond the ``--name=value`` shown in validation messages).

:class:`Settings` holds every setting of a CNN2GNN run (data, teacher, student, method,
evaluation, run). :func:`coerce` converts a config-file or flag value to a setting's type;
:func:`validate` checks names against the registries, ranges and combinations and
returns a normalised copy; :func:`settings_diff` lists what differs between two runs'
settings, and :data:`RESUME_SAFE` names the settings a ``--resume`` may change (none of
them alters the model, the loss or the evaluation).
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

import torch

MECHANISM_NAMES = ("bank", "batch", "one_by_one", "direct")
AUGMENT_CHOICES = ("none", "teacher", "all")
KD_SCALE_CHOICES = ("tau2", "none")
OPTIMIZER_CHOICES = ("adam", "adamw", "sgd")
SCHEDULER_CHOICES = ("cosine", "step", "none")
HEAD_FORM_CHOICES = ("anchor", "embedding")
WHICH_CHOICES = ("last", "best")
METHOD_CHOICES = ("cnn2gnn", "kd", "dkd", "ce")
STUDENT_CHOICES = ("gnn", "mlp")
GRAPH_CHOICES = ("batch", "pool")


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
    code_scale: float = _opt(0.0, "float", "embedding head: L2-normalise the codes and scale them by this "
                                           "(a cosine distance; 0 = raw codes)")
    hidden: int = _opt(256, "int", "hidden width of the GNN student")
    conv: str = _opt("gcn", "str", "graph convolution of the student (a name of tg_cnn2gnn.nn.CONVS)")
    num_layers: int = _opt(2, "int", "graph convolutions in the student")
    dropout: float = _opt(0.5, "float", "student dropout")
    student: str = _opt("gnn", "str", "student network: gnn (the CNN2GNN graph head + GNN) or mlp (an MLP with "
                                     "the GNN's widths, the KD baselines' student)", choices=STUDENT_CHOICES)
    # distillation
    method: str = _opt("cnn2gnn", "str", "distillation method: cnn2gnn (paper Eq. 6, plus the optional relation "
                                         "term), kd (Hinton KD), dkd (decoupled KD), ce (labels only, no teacher)",
                       choices=METHOD_CHOICES)
    dkd_alpha: float = _opt(1.0, "float", "DKD: weight of the target-class term (TCKD), method dkd")
    dkd_beta: float = _opt(8.0, "float", "DKD: weight of the non-target-class term (NCKD), method dkd")
    warmup_epochs: int = _opt(0, "int", "DKD: epochs of linear warm-up of the DKD term (0 = none), method dkd")
    alpha: float = _opt(1.0, "float", "weight of the distillation (KL) term, paper Eq. 6")
    tau: float = _opt(4.0, "float", "distillation temperature")
    kd_scale: str = _opt("tau2", "str", "factor of the KL term: tau2 (Hinton's tau^2) or none",
                         choices=KD_SCALE_CHOICES)
    relation_weight: float = _opt(0.0, "float", "weight of the teacher-relation term for the graph head "
                                  "(ours, not in the paper; 0 = the paper's Eq. 6)")
    relation_tau: float = _opt(1.0, "float", "temperature of the teacher's probabilities in the relation term")
    graph: str = _opt("batch", "str", "training graph of the graph head: batch (the graph inside each mini-batch) "
                                      "or pool (paper Eq. 4: each batch sample joined to its s nearest samples of "
                                      "a training pool, as the bank mechanism does at inference)",
                      choices=GRAPH_CHOICES)
    pool_size: int | None = _opt(None, "int?", "graph pool: training samples in the pool (default: the whole "
                                               "training set; a smaller pool is redrawn every --pool-refresh epochs)")
    pool_refresh: int = _opt(1, "int", "graph pool: epochs between redraws of the pool and refreshes of the "
                                       "embedding head's cached pool codes")
    graph_nca: float = _opt(0.0, "float", "weight of the NCA label supervision of the learned distances (ours, "
                                          "not in the paper; 0 = off)")
    nca_memory: int = _opt(0, "int", "graph batch with --graph-nca: the NCA term also compares each batch sample "
                                     "with the last N samples of the epoch (a memory queue of their codes, no grad; "
                                     "ours; 0 = the batch only)")
    warm_start_anchors: bool = _opt(False, "bool", "initialise the anchor head's rows from its encoder before "
                                                   "training (ours, not in the paper; anchor head only)")
    epochs: int = _opt(200, "int", "distillation epochs")
    batch_size: int = _opt(100, "int", "distillation batch size (one learned graph per batch)")
    balanced_batches: bool = _opt(False, "bool", "class-balanced distillation mini-batches: each holds the classes "
                                                 "in the training split's proportions (a stratified shuffle; ours; "
                                                 "default: a plain shuffle)")
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
    label_vote: float = _opt(0.0, "float", "after training, also test the student with its learned graph's label "
                                           "vote (ours): log-probabilities + this weight x the log of the Eq. 3 "
                                           "weighted labels of each test sample's s nearest samples of the whole "
                                           "training split (0 = off)")
    eval_seed: int = _opt(0, "int", "seed of the bank draw")
    measure: bool = _opt(True, "bool", "measure FLOPs and CPU latency per sample for the table")
    # run
    out: str | None = _opt(None, "str?", "run directory (default: runs/<dataset>)")
    seed: int = _opt(0, "int", "random seed (initialisation, shuffling)")
    device: str = _opt("auto", "str", "auto (CUDA when available), cpu, cuda, cuda:N")
    threads: int | None = _opt(None, "int?", "torch CPU threads (default: torch's own choice)")
    resume: bool = _opt(False, "bool", "continue an interrupted distillation from the run directory (refused "
                                       "when a setting that alters the model, the loss or the evaluation changed)")
    retrain_teacher: bool = _opt(False, "bool", "train a new teacher even when the run directory holds one (by "
                                                "default a distill uses the run directory's teacher)")
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
                 "val_mechanism", "method", "student", "graph"):
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
    if s.relation_tau <= 0:
        raise bad("relation_tau", "must be > 0")
    _validate_graph(s, bad)
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
    if s.dkd_alpha < 0 or s.dkd_beta < 0:
        raise bad("dkd_alpha" if s.dkd_alpha < 0 else "dkd_beta", "must be >= 0")
    if s.warmup_epochs < 0:
        raise bad("warmup_epochs", "must be >= 0")
    if s.method in ("kd", "ce") and s.relation_weight > 0:
        raise bad("relation_weight", f"the relation term belongs to --method cnn2gnn, not {s.method}")
    if s.student == "mlp" and s.relation_weight > 0:
        raise bad("relation_weight", "the relation term shapes the graph head; the mlp student has none")
    if s.method == "dkd" and s.relation_weight > 0:
        raise bad("relation_weight", "the relation term belongs to --method cnn2gnn, not dkd")
    if s.resume and s.retrain_teacher:
        raise bad("retrain_teacher", "cannot be combined with --resume (the half-finished run was distilled "
                                     "from the run directory's teacher)")
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


def _validate_graph(s: Settings, bad: Any) -> None:
    """The training-graph settings (``graph``, ``pool_size``, ``pool_refresh``, ``graph_nca``,
    ``nca_memory``, ``warm_start_anchors``): ranges, and that they only go with a CNN2GNN graph student."""
    if s.pool_refresh < 1:
        raise bad("pool_refresh", "must be a positive integer (epochs between pool refreshes)")
    if s.graph_nca < 0:
        raise bad("graph_nca", "must be >= 0 (0 = no NCA term)")
    if s.pool_size is not None:
        if s.graph != "pool":
            raise bad("pool_size", "only applies with --graph pool")
        if s.pool_size < s.s + 2:
            raise bad("pool_size", f"must be at least s + 2 = {s.s + 2} (each batch sample needs its s + 1 "
                                   "nearest other pool samples), or left out for the whole training set")
    if s.nca_memory < 0:
        raise bad("nca_memory", "must be an integer >= 0 (0 = the NCA term sees the batch only)")
    if s.nca_memory and (s.graph != "batch" or s.graph_nca <= 0):
        raise bad("nca_memory", "widens the NCA term of the batch graph: it needs --graph batch and --graph-nca > 0 "
                                f"(this run: --graph {s.graph} --graph-nca {s.graph_nca:g})")
    graph_student = s.method == "cnn2gnn" and s.student == "gnn"
    if not graph_student:
        for name, off in (("graph", "batch"), ("graph_nca", 0.0), ("warm_start_anchors", False)):
            if getattr(s, name) != off:
                raise bad(name, f"shapes the learned graph of --method cnn2gnn --student gnn; this run is "
                                f"--method {s.method} --student {s.student}")
    if s.code_scale < 0:                       # NaN and inf are refused with every float setting
        raise bad("code_scale", "must be a finite number >= 0 (0 = raw codes)")
    if s.code_scale and not (graph_student and s.head_form == "embedding"):
        raise bad("code_scale", "normalises the codes of the embedding graph head (--head-form embedding, "
                                "--method cnn2gnn --student gnn)")
    if s.label_vote < 0:
        raise bad("label_vote", "must be a finite number >= 0 (0 = no label vote)")
    if s.label_vote and s.student != "gnn":
        raise bad("label_vote", "votes with the learned graph's neighbours; an MLP student (--student mlp) has none")
    if s.warm_start_anchors and s.head_form != "anchor":
        raise bad("warm_start_anchors", "needs the anchor head (--head-form anchor); the embedding head has no "
                                        "anchor rows")


def _show(value: Any) -> str:
    if isinstance(value, (tuple, list)):
        return " ".join(map(str, value))
    return str(value)


#: Settings a ``--resume`` may change: where the data and the run live, threads, device,
#: progress bars and cost measuring. Every other setting alters the data, the model, the
#: loss or the evaluation of the run and must stay as it was.
RESUME_SAFE = frozenset({"root", "download", "check_integrity", "out", "resume", "progress", "threads", "device",
                         "measure", "retrain_teacher"})


def settings_diff(old: Settings | dict[str, Any], new: Settings | dict[str, Any], *,
                  ignore: frozenset[str] | set[str] = frozenset()) -> list[str]:
    """``["name: old -> new", ...]`` for every setting that differs (in field order),
    settings in ``ignore`` left out. Dicts (a ``settings.json``) are compared as read,
    tuples and lists alike; a key missing from a dict counts as the default."""
    def as_dict(s: Settings | dict[str, Any]) -> dict[str, Any]:
        if isinstance(s, Settings):
            return s.to_dict()
        base = Settings().to_dict()
        base.update({str(k).replace("-", "_"): v for k, v in s.items() if k != "command"})
        return base

    a, b = as_dict(old), as_dict(new)
    out = []
    for f in fields(Settings):
        if f.name in ignore:
            continue
        va, vb = a.get(f.name), b.get(f.name)
        if isinstance(va, tuple):
            va = list(va)
        if isinstance(vb, tuple):
            vb = list(vb)
        if va != vb:
            out.append(f"{f.name}: {_show(va)} -> {_show(vb)}")
    return out
