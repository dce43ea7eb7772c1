"""The commands of a run: ``train-teacher``, ``distill`` (with its resume check) and
``evaluate``. The command line (:mod:`tg_cnn2gnn.cli`), the examples and programs call these.

Programmatic use::

    from tg_cnn2gnn.run import Settings, run_distill, evaluate_run
    summary = run_distill(Settings(dataset="digits", teacher_epochs=3, epochs=5, s=10, out="runs/digits"))
    evaluate_run("runs/digits", mechanisms=("bank",))
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

from tg_cnn2gnn.run.config import RESUME_SAFE, WHICH_CHOICES, Settings, SettingsError, settings_diff, validate
from tg_cnn2gnn.run.data import load_data
from tg_cnn2gnn.run.factories import build_student_model, method_label, needs_teacher, train_student
from tg_cnn2gnn.run.measure import hardware, measure_student, measure_teacher, student_accuracy
from tg_cnn2gnn.run.rundir import RunDir
from tg_cnn2gnn.run.teacher_cache import obtain_teacher, teacher_fingerprint
from tg_cnn2gnn.run.util import device_of
from tg_cnn2gnn.run.util import threads as torch_threads

Log = Callable[[str], None]


def check_resume(settings: Settings, run_dir: RunDir) -> None:
    """Refuse ``--resume`` when a setting that alters the data, the model, the loss or the
    evaluation differs from the interrupted run's ``settings.json`` (all differences listed).
    Nothing to check when the run has no checkpoint yet (the distillation starts afresh)."""
    if not settings.resume or not run_dir.checkpoint.is_file() or not run_dir.settings_json.is_file():
        return
    old, command = run_dir.read_settings()
    if command not in (None, "distill"):
        return
    diffs = settings_diff(old, settings, ignore=RESUME_SAFE)
    if diffs:
        raise SettingsError(f"--resume refused: {run_dir.settings_json} was distilled with other settings that "
                            f"alter the model, the loss or the evaluation ({'; '.join(diffs)}); resume with the "
                            "same settings, or distill into another --out")


def run_train_teacher(settings: Settings, log: Log = print) -> dict[str, Any]:
    """``cnn2gnn train-teacher``: train the teacher of ``settings`` in ``run_dir/teacher``
    (kept when the one there was trained with exactly these settings, unless
    ``retrain_teacher``), test it, measure it, write ``teacher/teacher_summary.json``."""
    from tg_cnn2gnn.distill import accuracy
    from tg_cnn2gnn.report import fmt_count, fmt_ms
    settings = validate(settings, command="train-teacher")
    start = time.perf_counter()
    run_dir = RunDir.of(settings)
    with torch_threads(settings.threads):
        data = load_data(settings)
        run_dir.teacher_dir.mkdir(parents=True, exist_ok=True)
        # a teacher trained with exactly these settings is kept; any other is replaced
        same = (not settings.retrain_teacher and run_dir.has_teacher() and run_dir.teacher_settings.is_file()
                and run_dir.read_teacher_settings() == teacher_fingerprint(settings))
        teacher, tinfo = obtain_teacher(settings.replace(teacher_checkpoint=None, retrain_teacher=not same), data,
                                        run_dir, log=log)
        dev = device_of(settings)
        teacher.to(dev)
        acc = accuracy(teacher, data.x_test, data.y_test, device=dev)
        meas = measure_teacher(teacher, data.x_test, latency=settings.measure)
        tinfo = {k: v for k, v in tinfo.items() if k != "trained_with"}
        summary = {"command": "train-teacher", "dataset": settings.dataset, "teacher": settings.teacher,
                   "test_acc": acc, **tinfo, **meas, "n_train": data.n_train, "n_val": data.n_val,
                   "n_test": data.n_test, "wall_time_s": time.perf_counter() - start, "hardware": hardware(),
                   "settings": teacher_fingerprint(settings)}
        prev = run_dir.read_teacher_summary() if run_dir.teacher_summary.is_file() else {}
        run_dir.write_teacher_summary({**prev, **summary}, log)
        run_dir.plot(teacher_only=True, log=log)
    log(f"teacher {settings.teacher}: test accuracy {acc:.4f} ({data.n_test} test images); "
        f"{fmt_count(meas['params'])} parameters, {fmt_count(meas['flops_per_sample'])} FLOPs / sample"
        + (f", CPU latency {fmt_ms(meas['latency_ms_batch1'])} / sample (batch of 1)" if settings.measure else "")
        + f"; files in {run_dir.teacher_dir}")
    return summary


def run_distill(settings: Settings, log: Log = print) -> dict[str, Any]:
    """``cnn2gnn distill`` and the examples: teacher (loaded, the run directory's, or trained)
    -> student training with ``method`` -> test accuracy under ``mechanisms`` (last and
    best-validation epoch) -> parameters, FLOPs, latency -> ``summary.json``, ``table.md``,
    ``training_curves.png`` (see :mod:`tg_cnn2gnn.run.rundir`). Returns the summary, with
    the table under ``"table"``."""
    from tg_cnn2gnn.distill import accuracy
    from tg_cnn2gnn.report import make_table
    s = validate(settings, command="distill")
    start = time.perf_counter()
    run_dir = RunDir.of(s)
    with torch_threads(s.threads):
        check_resume(s, run_dir)
        data = load_data(s)
        run_dir.write_settings(s, "distill")
        log(f"run directory: {run_dir}")
        log(f"data: {s.dataset}, {data.n_train} train / {data.n_val} validation / {data.n_test} test images")
        teacher, tinfo = (obtain_teacher(s, data, run_dir, log) if needs_teacher(s)
                          else (None, {"source": f"none ({'method ce' if s.method == 'ce' else 'alpha = 0'})",
                                       "path": None, "train_time_s": None}))
        t_teacher_done = time.perf_counter()
        import torch
        torch.manual_seed(s.seed)
        model = build_student_model(s, data.n_train, data.in_features, data.info.num_classes)
        log(f"distillation ({method_label(s)}): {s.epochs} epoch(s), batch {s.batch_size}, s = {s.s}, "
            f"alpha = {s.alpha}, tau = {s.tau} ({s.kd_scale}), {s.optimizer} lr {s.lr}" + graph_text(s))
        dsum = train_student(s, data, teacher, model, run_dir.path, log=log)
        dev = torch.device(dsum["device"])
        teacher_acc = dsum.get("teacher_test_acc")
        if teacher is not None and teacher_acc is None:
            teacher_acc = accuracy(teacher, data.x_test, data.y_test, device=dev)
        log("measuring parameters, FLOPs and latency" if s.measure else "counting parameters and FLOPs")
        smeas = measure_student(model, data.train_features, data.x_test, mechanisms=list(s.mechanisms),
                                bank_size=s.bank_size, eval_batch_size=s.eval_batch_size, seed=s.eval_seed,
                                latency=s.measure)
        tmeas = measure_teacher(teacher, data.x_test, latency=s.measure) if teacher is not None else None
        consistency = graph_consistency(model, data, s)
        vote = label_vote_result(model, data, s, log)
        summary: dict[str, Any] = {
            "command": "distill", "dataset": s.dataset, "method": s.method, "student_kind": s.student,
            "n_train": data.n_train, "n_val": data.n_val, "n_test": data.n_test,
            "teacher": None if teacher is None else {"name": s.teacher, "test_acc": teacher_acc, **tinfo, **tmeas},
            "student": {
                "head_form": s.head_form if s.student == "gnn" else None, "conv": s.conv, "num_layers": s.num_layers,
                "s": s.s, "test_acc": dsum.get("test", {}), "best_epoch": dsum.get("best_epoch"),
                "best_val_acc": dsum.get("best_val_acc"), "last_val_acc": dsum.get("last_val_acc"),
                "train_time_s": dsum["train_time_s"],
                "mean_train_time_per_epoch_s": dsum.get("mean_train_time_per_epoch"), **smeas,
                "label_vote": vote,
            },
            "wall_time_s": None,  # filled below
            "teacher_stage_time_s": t_teacher_done - start,
            "hardware": hardware(),
            "device": str(dev),
            "settings": s.to_dict(),
            "distill": {k: v for k, v in dsum.items() if k not in ("history", "train_time_s")},
            "graph_consistency": consistency,
        }
        summary["wall_time_s"] = time.perf_counter() - start
        table = make_table(summary)
        run_dir.write_summary(summary, log)
        run_dir.write_table(table, log)
        run_dir.plot(teacher=tinfo.get("source") == "trained" or run_dir.teacher_metrics.is_file(), log=log)
    summary["table"] = table
    return summary


def graph_text(s: Settings) -> str:
    """``"; training graph pool (...)"`` for a graph student's log line, ``""`` otherwise."""
    if s.method != "cnn2gnn" or s.student != "gnn":
        return ""
    parts = [f"{s.head_form} head"]
    if s.graph == "pool":
        parts.append(f"pool of {'all training samples' if s.pool_size is None else s.pool_size}")
    for name, value in (("NCA", s.graph_nca), ("relation", s.relation_weight)):
        if value > 0:
            parts.append(f"{name} {value:g}")
    if s.warm_start_anchors:
        parts.append("warm-started anchors")
    return f"; training graph {s.graph} ({', '.join(parts)})"


#: training samples in the bank of the run's graph class-consistency diagnostic
CONSISTENCY_BANK = 1000


def graph_consistency(model: Any, data: Any, settings: Settings) -> dict[str, Any] | None:
    """:func:`~tg_cnn2gnn.diagnostics.graph_class_consistency` of a graph student's final
    weights on the test set against a bank of ``min(1000, n_train)`` training samples (seed
    ``eval_seed``); ``None`` for a student without a learned graph (the MLP)."""
    if not (hasattr(model, "code") and hasattr(model, "dist") and hasattr(model, "s")):
        return None
    import torch
    from tg_cnn2gnn.diagnostics import graph_class_consistency
    dev = next(model.parameters()).device
    with torch.no_grad():
        return graph_class_consistency(model, data.x_test.to(dev), data.y_test.to(dev),
                                       data.train_features.to(dev), data.y_train.to(dev),
                                       bank_size=min(CONSISTENCY_BANK, data.n_train), seed=settings.eval_seed)


def label_vote_result(model: Any, data: Any, settings: Settings, log: Log = print) -> dict[str, Any] | None:
    """The student with its learned graph's label vote (``settings.label_vote``, weight ``beta``;
    :mod:`tg_cnn2gnn.inference.label_vote`) on the validation and test splits: the final
    weights, frozen with a bank of the whole training split (seed ``eval_seed``). ``None`` when
    ``label_vote`` is 0 or the student has no bank predictor.

    Returns ``{"beta", "bank_size", "val_acc", "test_acc", "student_alone_test_acc" (the same
    predictor with ``beta = 0``), "build_s", "latency_ms_batch1"}`` (latency: CPU, median,
    ``None`` without ``measure``)."""
    if not settings.label_vote or not hasattr(model, "bank_predictor"):
        return None
    import torch
    from tg_cnn2gnn.run.measure import cpu_copy, median_time, predictor_accuracy
    cpu_model = cpu_copy(model)
    t0 = time.perf_counter()
    pred = cpu_model.bank_predictor(data.train_features.cpu(), bank_size=data.n_train, seed=settings.eval_seed,
                                    train_y=data.y_train.cpu(), label_vote=settings.label_vote).eval()
    build = time.perf_counter() - t0

    def acc(x: Any, y: Any) -> float | None:
        return None if x is None or len(y) == 0 else predictor_accuracy(pred, x.cpu(), y)

    out = {"beta": settings.label_vote, "bank_size": data.n_train, "val_acc": acc(data.x_val, data.y_val),
           "test_acc": acc(data.x_test, data.y_test), "build_s": build, "latency_ms_batch1": None}
    pred.label_vote = 0.0
    out["student_alone_test_acc"] = acc(data.x_test, data.y_test)
    pred.label_vote = settings.label_vote
    if settings.measure:
        one = data.x_test[:1].flatten(1).cpu()
        with torch.no_grad():
            out["latency_ms_batch1"] = 1e3 * median_time(lambda: pred(one), 200, warmup=20)
    log(f"label vote (beta {settings.label_vote:g}, bank = all {data.n_train} training samples): test "
        f"{100 * out['test_acc']:.2f} % (student alone with this bank {100 * out['student_alone_test_acc']:.2f} %)")
    return out


def run_compare(entries: Sequence[tuple[str, Settings]], *, out: str | os.PathLike, log: Log = print,
                notes: dict[str, str] | None = None) -> dict[str, Any]:
    """Distil several students from ONE teacher and put them side by side (the main job).

    The first entry's run trains (or reuses) the teacher in ``out/<name>/teacher``; every
    later entry loads that file (``teacher_checkpoint``), so all students share the teacher
    (their own teacher settings must name the same network). Each entry is a complete
    :func:`run_distill` into ``out/<name>``. Writes ``out/compare.md`` and ``out/compare.json``.

    Args:
        entries: ``(name, settings)`` pairs, names unique and usable as folder names.
        notes: ``{name: text}``: the budget of a row (shown in the table).

    Returns:
        ``{"rows": [{"name", "summary"}, ...], "table": markdown, "wall_time_s"}``.
    """
    from tg_cnn2gnn.distill.metrics import atomic_write_text
    from tg_cnn2gnn.report import make_compare_table
    import json
    names = [n for n, _ in entries]
    if not entries:
        raise SettingsError("run_compare needs at least one (name, settings) entry")
    bad = [n for n in names if not n or any(c in n for c in "/\\") or n in (".", "..")]
    if bad or len(set(names)) != len(names):
        raise SettingsError(f"run_compare: entry names must be unique folder names, got {names!r}")
    out = Path(out).expanduser()
    for name, settings in entries:       # every row's settings are checked before anything trains
        try:
            validate(settings.replace(out=str(out / name)), command="distill")
        except SettingsError as e:
            raise SettingsError(f"row {name!r}: {e}") from None
    start = time.perf_counter()
    rows: list[dict[str, Any]] = []
    teacher_file: Path | None = None
    for name, settings in entries:
        s = settings.replace(out=str(out / name))
        if teacher_file is not None and s.teacher_checkpoint is None and needs_teacher(s):
            s = s.replace(teacher_checkpoint=str(teacher_file))
        log(f"== {name} ==")
        summary = run_distill(s, log)
        summary.pop("table", None)
        if teacher_file is None and summary.get("teacher"):
            t = summary["teacher"]
            teacher_file = Path(t["path"]) if t.get("source") == "checkpoint" else RunDir(out / name).teacher_pt
        rows.append({"name": name, "summary": summary})
    wall = time.perf_counter() - start
    table = make_compare_table(rows, notes=notes, wall_time_s=wall)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(out / "compare.md", table)
    atomic_write_text(out / "compare.json", json.dumps({"rows": rows, "wall_time_s": wall}, indent=1, default=str))
    return {"rows": rows, "table": table, "wall_time_s": wall}


#: settings a main-job row takes from the recommended configuration (data, evaluation, run)
SHARED_SETTINGS = ("dataset", "root", "test_subset", "val_fraction", "split_seed", "download", "teacher",
                   "teacher_width", "teacher_epochs", "teacher_batch_size", "teacher_optimizer", "teacher_lr",
                   "teacher_weight_decay", "augment", "eval_seed", "measure", "seed", "device", "threads", "progress")


def main_job_entries(recommended: Settings, paper: Settings, *, paper_epochs: int = 3,
                     paper_subset: int | None = 10000) -> tuple[list[tuple[str, Settings]], dict[str, str]]:
    """The rows of the main job (issue 12): the ``recommended`` student, the ``paper`` preset on
    a reduced budget (``paper_epochs`` epochs on a ``paper_subset``-image training subset, its
    pool = that subset; ``None``: the recommended run's training set), and a KD-MLP with the
    recommended student's widths, epochs and optimiser (``method kd, student mlp``), and one with
    the paper-preset row's widths and budget (the comparison the issue asks of that row). Every row
    shares the recommended run's data, teacher and evaluation settings (:data:`SHARED_SETTINGS`).

    Returns:
        ``(entries, notes)`` for :func:`run_compare`.
    """
    shared = {k: getattr(recommended, k) for k in SHARED_SETTINGS}
    subset = paper_subset
    if recommended.subset is not None:
        subset = recommended.subset if subset is None else min(subset, recommended.subset)
    paper_row = paper.replace(**shared, subset=subset, epochs=paper_epochs)
    kd_row = as_kd_mlp(recommended)
    kd_paper = as_kd_mlp(paper_row)
    n = "the full training split" if recommended.subset is None else f"a {recommended.subset}-image subset"
    on_subset = f" on a {subset}-image training subset" if subset else ""
    notes = {
        "recommended": f"{recommended.epochs} epochs on {n}",
        "paper-preset": (f"reduced: {paper_epochs} of {paper.epochs} epochs" + on_subset
                         + (" (= its pool)" if subset else "") + f"; s = {paper.s}, lr {paper.lr}"),
        "kd-mlp": f"{recommended.epochs} epochs on {n} (the recommended student's budget and widths)",
        "kd-mlp-paper-budget": f"{paper_epochs} epochs{on_subset} (the paper-preset row's budget and widths)",
    }
    return [("recommended", recommended), ("paper-preset", paper_row), ("kd-mlp", kd_row),
            ("kd-mlp-paper-budget", kd_paper)], notes


def as_kd_mlp(s: Settings) -> Settings:
    """``s`` as Hinton KD into an MLP of the same widths, data and budget (no graph settings)."""
    return s.replace(method="kd", student="mlp", relation_weight=0.0, graph="batch", graph_nca=0.0,
                     pool_size=None, nca_memory=0, warm_start_anchors=False, code_scale=0.0, label_vote=0.0)


def evaluate_run(path: str | os.PathLike, *, mechanisms: Sequence[str] | None = None, which: str | None = None,
                 root: str | None = None, bank_size: int | None = None, eval_batch_size: int | None = None,
                 eval_seed: int | None = None, device: str | None = None, threads: int | None = None,
                 write: bool = True, log: Log = print) -> dict[str, Any]:
    """Test accuracy of a distilled student from its run directory (``cnn2gnn evaluate``).

    The model is rebuilt from ``settings.json``; the weights come from ``checkpoint.pt``
    (``which="last"``, default) or ``best.pt`` (``"best"``), or from the checkpoint file
    given as ``path``. The data (subset, validation split, bank) are those of the run, so
    the result reproduces ``summary.json``'s ``student.test_acc`` for the same mechanism
    and settings. Writes ``evaluate.json`` when ``write`` (a read-only run directory gives
    a warning; the result is returned all the same).

    Returns:
        ``{"mechanisms": {name: accuracy}, "checkpoint": path, ...}``.
    """
    from tg_cnn2gnn.run.serve import load_run_model
    run = load_run_model(path, which=which, root=root, bank_size=bank_size, eval_batch_size=eval_batch_size,
                         eval_seed=eval_seed, device=device, threads=threads,
                         mechanisms=tuple(mechanisms) if mechanisms is not None else None)
    settings, data, model, run_dir, ckpt = run.settings, run.data, run.model, run.run_dir, run.checkpoint
    with torch_threads(settings.threads):
        model.to(device_of(settings)).eval()
        accs = {mech: student_accuracy(model, data.x_test, data.y_test, mechanism=mech, train_x=data.train_features,
                                       batch_size=settings.eval_batch_size, bank_size=settings.bank_size,
                                       seed=settings.eval_seed, predictor=True)
                for mech in settings.mechanisms}
    result = {"run_dir": str(run_dir), "checkpoint": str(ckpt), "epoch": run.epoch,
              "mechanisms": accs, "n_test": data.n_test, "bank_size": settings.bank_size,
              "eval_batch_size": settings.eval_batch_size, "eval_seed": settings.eval_seed}
    if write:
        run_dir.write_evaluate(result, log)
    return result


def reference_accuracies(result: dict[str, Any]) -> dict[str, float]:
    """The accuracies ``summary.json`` recorded for the checkpoint ``evaluate`` used (``{}``
    when there is no summary or the checkpoint is not the run's last/best)."""
    run_dir = RunDir(result["run_dir"])
    name = Path(result["checkpoint"]).name
    if not run_dir.summary_json.is_file() or name not in (RunDir.CHECKPOINT, RunDir.BEST):
        return {}
    summary = run_dir.read_summary()
    where = run_dir.summary_json
    student = RunDir.get(summary, "student", dict, where, "an object with the student's results") or {}
    acc = RunDir.get(student, "test_acc", dict, where, "an object of test accuracies") or {}
    ref = RunDir.get(acc, "last" if name == RunDir.CHECKPOINT else "best_val", dict, where,
                     "an object {mechanism: accuracy}") or {}
    return {k: v for k, v in ref.items() if isinstance(v, (int, float))}
