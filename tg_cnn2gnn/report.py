"""Tables and plots of a CNN2GNN run (written through :class:`tg_cnn2gnn.run.rundir.RunDir`).

* :func:`make_table` -- the teacher-vs-student Markdown table of a run's ``summary.json``.
* :func:`plot_curves` -- ``training_curves.png``: loss and accuracy per epoch from the run's
  ``metrics.csv`` (student) and ``teacher/teacher_metrics.csv`` (teacher), drawn with
  matplotlib's non-interactive ``Agg`` backend (no display needed).
"""
from __future__ import annotations

import csv
import math
import os
from pathlib import Path
from typing import Any

MECHANISM_LABELS = {
    "bank": "bank (ours, batch-invariant)",
    "batch": "batch (paper Mechanism 2)",
    "one_by_one": "one_by_one (paper Mechanism 1)",
    "direct": "direct (embedding head)",
}


def fmt_count(n: float | int | None) -> str:
    """``1234567 -> '1.23 M'``; ``None -> '–'``."""
    if n is None or (isinstance(n, float) and not math.isfinite(n)):
        return "–"
    n = float(n)
    for unit, scale in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {unit}"
    return f"{n:.0f}"


def fmt_acc(a: float | None) -> str:
    return "–" if a is None else f"{100.0 * a:.2f}%"


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms:.3g} ms" if ms >= 0.01 else f"{1e3 * ms:.3g} µs"


def fmt_seconds(t: float | None) -> str:
    if t is None:
        return "–"
    return f"{t:.0f} s ({t / 60:.1f} min)" if t >= 60 else f"{t:.1f} s"


def consistency_text(gc: dict[str, Any]) -> str:
    """One line of a :func:`~tg_cnn2gnn.diagnostics.graph_class_consistency` result."""
    return (f"class-consistency of the learned graph (share of each test sample's s = {gc.get('s')} learned "
            f"neighbours in a bank of {gc.get('bank_size')} training samples that have its class) "
            f"{fmt_acc(gc.get('learned'))} (Eq. 3 weighted {fmt_acc(gc.get('learned_weighted'))}); raw-pixel "
            f"neighbours {fmt_acc(gc.get('raw'))}, chance {fmt_acc(gc.get('chance'))}")


def _graph_txt(settings: dict[str, Any]) -> str:
    """``", training graph pool (all training samples), NCA 3, relation 5"`` from a run's settings."""
    graph = settings.get("graph", "batch")
    txt = f", training graph {graph}"
    if graph == "pool":
        size = settings.get("pool_size")
        txt += f" ({'all training samples' if size is None else f'{size} samples'})"
    if settings.get("graph_nca"):
        txt += f", NCA {settings['graph_nca']:g}"
    if settings.get("relation_weight"):
        txt += f", relation {settings['relation_weight']:g}"
    if settings.get("warm_start_anchors"):
        txt += ", warm-started anchors"
    return txt


def make_table(summary: dict[str, Any]) -> str:
    """The Markdown teacher-vs-student table of a ``run_distill`` summary, with its notes
    (settings, how FLOPs and latency are counted, wall times, hardware)."""
    st = summary["student"]
    t = summary.get("teacher")
    acc = st.get("test_acc") or {}
    last, best = acc.get("last", {}), acc.get("best_val", {})
    settings = summary.get("settings", {})
    hw = summary.get("hardware", {})
    method = settings.get("method", "cnn2gnn")
    mlp = settings.get("student", "gnn") == "mlp"
    label = {"cnn2gnn": "CNN2GNN", "kd": "KD", "dkd": "DKD", "ce": "CE"}.get(method, str(method))
    if mlp or method != "cnn2gnn":
        label += "-MLP" if mlp else "-GNN"
    kind = "MLP" if mlp else "GNN"
    lines = [
        f"### {label} on {summary['dataset']}: teacher vs {'distilled' if method != 'ce' else 'trained'} "
        f"{kind} student",
        "",
        "| model | test acc (last epoch) | test acc (best-val epoch) | parameters | FLOPs / sample "
        "| CPU latency / sample, batch of 1 | CPU latency / sample, batched |",
        "|---|---|---|---|---|---|---|",
    ]
    if t is not None:
        lines.append(
            f"| teacher: {t['name']} | {fmt_acc(t.get('test_acc'))} | – | {fmt_count(t.get('params'))} "
            f"| {fmt_count(t.get('flops_per_sample'))} | {fmt_ms(t.get('latency_ms_batch1'))} "
            f"| {fmt_ms(t.get('latency_ms_batched'))} (batches of {t.get('latency_batch_size', '–')}) |")
    params = (f"{fmt_count(st.get('params_total'))} (MLP)" if mlp else
              f"{fmt_count(st.get('params_total'))} (head + GNN); GNN alone {fmt_count(st.get('params_student'))}")
    for mech in (settings.get("mechanisms") or list(last)):
        flops = (st.get("flops") or {}).get(mech, {})
        lat = (st.get("latency_ms") or {}).get(mech, {})
        f_txt = fmt_count(flops.get("per_sample"))
        if flops.get("fixed_part") is not None:
            f_txt += f" (+ {fmt_count(flops['fixed_part'])} bank part per call)"
        batched = lat.get("batched")
        b_txt = fmt_ms(batched)
        if batched is not None:
            b_txt += (f" (chunks of 128)" if mech in ("bank", "one_by_one")
                      else f" (batches of {settings.get('eval_batch_size', 100)})")
        one = lat.get("batch1")
        one_txt = fmt_ms(one) if one is not None else ("– (needs >= 3 samples)" if mech in ("batch", "direct")
                                                       else "–")
        lines.append(
            f"| {label} student, {MECHANISM_LABELS.get(mech, mech) if not mlp else mech + ' (same for every mechanism)'} | {fmt_acc(last.get(mech))} "
            f"| {fmt_acc(best.get(mech))} | {params} | {f_txt} | {one_txt} | {b_txt} |")
    vote = st.get("label_vote")
    if vote:
        lines.append(f"| {label} student + label vote (beta {vote['beta']:g}), bank = all {vote['bank_size']} "
                     f"training samples | {fmt_acc(vote.get('test_acc'))} | – | {params} | – "
                     f"| {fmt_ms(vote.get('latency_ms_batch1'))} | – |")
    n_val = summary.get("n_val")
    lines += [
        "",
        f"- Data: {summary.get('n_train')} training / {n_val} validation / {summary.get('n_test')} test images"
        + (f" (stratified training subset of {settings['subset']})" if settings.get("subset") else "")
        + (f" (test subset of {settings['test_subset']})" if settings.get("test_subset") else "") + ".",
    ]
    if t is not None:
        src = t.get("source")
        how = {"trained": "trained in this run", "cached": "reused from this run directory (trained earlier)",
               "checkpoint": f"loaded from {t.get('path')}"}.get(src, str(src))
        tw = t.get("trained_with") or settings   # a reused teacher: the settings it was trained with
        lines.append(f"- Teacher: {t['name']} (final weights), {tw.get('teacher_epochs')} epoch(s) "
                     f"{tw.get('teacher_optimizer')} lr {tw.get('teacher_lr')}, batch "
                     f"{tw.get('teacher_batch_size')}; {how}.")
    model_txt = (f"{st.get('num_layers')}-layer MLP (hidden {settings.get('hidden')}), method {method}" if mlp else
                 f"{st.get('head_form')} graph head {tuple(settings.get('head_hidden', ()))} + "
                 f"{st.get('num_layers')}-layer {str(st.get('conv', '')).upper()} (hidden {settings.get('hidden')}), "
                 f"s = {st.get('s')}" + (f", method {method}" if method != "cnn2gnn" else "")
                 + (_graph_txt(settings) if method == "cnn2gnn" else ""))
    lines.append(
        f"- Student: {model_txt}, batch {settings.get('batch_size')}, {settings.get('epochs')} epoch(s) "
        f"{settings.get('optimizer')} lr {settings.get('lr')} ({settings.get('scheduler')}), alpha = "
        f"{settings.get('alpha')}, tau = {settings.get('tau')} "
        f"(KL x {'tau^2' if settings.get('kd_scale') == 'tau2' else '1'}); "
        + (f"best validation epoch {st['best_epoch'] + 1} (val acc {fmt_acc(st.get('best_val_acc'))}, "
           f"{settings.get('val_mechanism')} mechanism)" if st.get("best_epoch") is not None and n_val
           else "no validation split: the best-val column is the last epoch")
        + f"; inference bank of {settings.get('bank_size')} training samples (seed {settings.get('eval_seed')}).")
    gc = summary.get("graph_consistency")
    if gc:
        lines.append(f"- Graph: {consistency_text(gc)}.")
    if vote:
        lines.append(f"- Label vote (ours): the final student frozen with a bank of the whole training split; "
                     f"log-probabilities + {vote['beta']:g} x log(Eq. 3 weighted labels of the s nearest bank "
                     f"samples + 0.001) (tg_cnn2gnn.inference.label_vote). Validation "
                     f"{fmt_acc(vote.get('val_acc'))}; the same predictor without the vote: test "
                     f"{fmt_acc(vote.get('student_alone_test_acc'))}.")
    lines.append(
        "- FLOPs: torch.utils.flop_counter (2 per multiply-add; element-wise ops, GCN neighbour sums and "
        "top-k count 0). Student `bank`: one test sample through the frozen-bank predictor "
        "(`model.bank_predictor`: head MLP on the sample, its distances to the bank codes, each GCN layer for "
        "its own node; the bank's part is computed once when the predictor is built). "
        "`batch`: a test batch's total / its size.")
    lines.append(
        f"- Latency: median wall time on the CPU ({hw.get('cpu')}) with {hw.get('torch_threads')} torch "
        "thread(s), eval mode, no grad; batch of 1 = one call for one sample (student `bank`: "
        "the frozen-bank predictor); batched = per sample over up to 1,000 test samples.")
    tt = (t or {}).get("train_time_s")
    lines.append(
        f"- Wall time: {fmt_seconds(summary.get('wall_time_s'))} in all (teacher "
        f"{fmt_seconds(tt) if (t or {}).get('source') == 'trained' else 'not trained in this run'}; distillation "
        f"incl. per-epoch validation and test evaluation {fmt_seconds(st.get('train_time_s'))}).")
    lines.append(
        f"- Hardware: {hw.get('cpu')}, {hw.get('cpu_count')} logical CPU(s), torch {hw.get('torch')}, "
        f"device {summary.get('device')}" + (f" ({hw['cuda_device']})" if hw.get("cuda_device") else "") + ".")
    return "\n".join(lines) + "\n"


def make_compare_table(rows: list[dict[str, Any]], *, notes: dict[str, str] | None = None,
                       wall_time_s: float | None = None) -> str:
    """The side-by-side Markdown table of :func:`~tg_cnn2gnn.run.commands.run_compare`: the
    (shared) teacher, then one row per student with its test accuracy under its first
    mechanism (last epoch and validation-selected), Mechanism 2 when run, the class-consistency
    of its learned graph (learned vs raw-pixel neighbours), FLOPs and CPU latency per sample."""
    notes = notes or {}
    lines = ["| model | test acc, last | test acc, best-val | Mechanism 2 (last) | class-consistency: learned "
             "(Eq. 3 weighted) | raw-pixel kNN | FLOPs / sample | CPU latency / sample, batched | budget |",
             "|---|---|---|---|---|---|---|---|---|"]
    first = rows[0]["summary"] if rows else {}
    t = first.get("teacher")
    if t:
        tw = t.get("trained_with") or first.get("settings", {})
        lines.append(f"| teacher: {t.get('name')} | {fmt_acc(t.get('test_acc'))} | – | – | – | – "
                     f"| {fmt_count(t.get('flops_per_sample'))} | {fmt_ms(t.get('latency_ms_batched'))} "
                     f"| {tw.get('teacher_epochs')} epoch(s) |")
    for row in rows:
        sm, name = row["summary"], row["name"]
        st, se = sm.get("student", {}), sm.get("settings", {})
        mechs = list(se.get("mechanisms") or [])
        mech = "bank" if "bank" in mechs or not mechs else mechs[0]
        acc = st.get("test_acc") or {}
        last, best = acc.get("last", {}), acc.get("best_val", {})
        mlp = se.get("student") == "mlp"
        m2 = "–" if mlp or "batch" not in mechs else fmt_acc(last.get("batch"))
        gc = sm.get("graph_consistency")
        gtxt = f"{fmt_acc(gc.get('learned'))} ({fmt_acc(gc.get('learned_weighted'))})" if gc else "– (no graph)"
        raw = fmt_acc(gc.get("raw")) if gc else "–"
        flops = ((st.get("flops") or {}).get(mech) or {}).get("per_sample")
        lat = ((st.get("latency_ms") or {}).get(mech) or {}).get("batched")
        kind = ("MLP" if mlp else f"{se.get('head_form')} head, graph {se.get('graph', 'batch')}")
        label = f"{name} ({kind}{'' if mlp else ', ' + mech})"
        budget = notes.get(name) or (f"{se.get('epochs')} epochs" + (f", subset {se['subset']}"
                                                                      if se.get("subset") else ""))
        lines.append(f"| {label} | {fmt_acc(last.get(mech))} | {fmt_acc(best.get(mech))} | {m2} | {gtxt} | {raw} "
                     f"| {fmt_count(flops)} | {fmt_ms(lat)} | {budget} |")
        vote = st.get("label_vote")
        if vote:
            lines.append(f"| {name} + label vote (beta {vote['beta']:g}, bank = all {vote['bank_size']} training "
                         f"samples) | {fmt_acc(vote.get('test_acc'))} | – | – | same graph | – | – "
                         f"| {fmt_ms(vote.get('latency_ms_batch1'))} (batch of 1) | same model |")
    if rows:
        hw = first.get("hardware", {})
        gc0 = next((r["summary"]["graph_consistency"] for r in rows if r["summary"].get("graph_consistency")), None)
        lines += ["", f"- Test set: {first.get('n_test')} images; training {first.get('n_train')} / validation "
                      f"{first.get('n_val')} (each row's own split is in its run directory)."]
        if gc0:
            lines.append(f"- Class-consistency: share of each test sample's s learned neighbours in a bank of "
                         f"{gc0.get('bank_size')} training samples that have its class (chance "
                         f"{fmt_acc(gc0.get('chance'))}); raw-pixel kNN: the same with Euclidean pixel distances.")
        lines.append("- Accuracy and cost: the `bank` mechanism (strictly inductive: a test sample joined to a bank "
                     "of training samples) where the row ran it; Mechanism 2 = the paper's batch rule; FLOPs and "
                     "latency as in each run's table.md.")
        lines.append(f"- Hardware: {hw.get('cpu')}, {hw.get('torch_threads')} torch thread(s); wall time "
                     f"{fmt_seconds(wall_time_s)} in all.")
    return "\n".join(lines) + "\n"


def _read_csv(path: Path) -> list[dict[str, float]]:
    if not path.is_file():
        return []
    rows = []
    with open(path, newline="", encoding="utf-8") as f:
        for r in csv.DictReader(f):
            row = {}
            for k, v in r.items():
                try:
                    row[k] = float(v)
                except (TypeError, ValueError):
                    row[k] = float("nan")
            rows.append(row)
    return rows


def plot_curves(run_dir: str | os.PathLike, out: str | os.PathLike | None = None, *, student: bool = True,
                teacher: bool = True) -> Path:
    """Draw loss and accuracy per epoch into a PNG (default ``run_dir/training_curves.png``).

    Left: training loss (student: total, cross-entropy and KD parts; teacher: cross-entropy).
    Right: training and validation accuracy. Epochs count from 1.

    Raises:
        FileNotFoundError: neither metrics file exists.
    """
    import matplotlib
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    run_dir = Path(run_dir)
    out = Path(out) if out is not None else run_dir / "training_curves.png"
    srows = _read_csv(run_dir / "metrics.csv") if student else []
    trows = _read_csv(run_dir / "teacher" / "teacher_metrics.csv") if teacher else []
    if not srows and not trows:
        raise FileNotFoundError(f"no metrics.csv or teacher/teacher_metrics.csv in {run_dir}")
    fig, (ax_loss, ax_acc) = plt.subplots(1, 2, figsize=(11, 4))

    def series(rows: list[dict[str, float]], key: str) -> tuple[list[float], list[float]]:
        pts = [(r["epoch"] + 1, r[key]) for r in rows if key in r and math.isfinite(r.get(key, float("nan")))]
        return [p[0] for p in pts], [p[1] for p in pts]

    for key, style, label in (("loss", "-", "student loss"), ("ce", "--", "student CE"),
                              ("kd", ":", "student KD")):
        xs, ys = series(srows, key)
        if xs:
            ax_loss.plot(xs, ys, style, color="C0", label=label, marker="o" if len(xs) < 30 else None, ms=3)
    xs, ys = series(trows, "loss")
    if xs:
        ax_loss.plot(xs, ys, "-", color="C1", label="teacher CE", marker="o" if len(xs) < 30 else None, ms=3)
    for rows, who, color in ((srows, "student", "C0"), (trows, "teacher", "C1")):
        for key, style in (("train_acc", "--"), ("val_acc", "-")):
            xs, ys = series(rows, key)
            if xs:
                ax_acc.plot(xs, ys, style, color=color, label=f"{who} {key.replace('_acc', '')} acc",
                            marker="o" if len(xs) < 30 else None, ms=3)
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("training loss")
    ax_acc.set_xlabel("epoch")
    ax_acc.set_ylabel("accuracy")
    for ax in (ax_loss, ax_acc):
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=8)
    fig.suptitle(f"CNN2GNN training curves: {run_dir.name}")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out
