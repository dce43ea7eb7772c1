"""Tables and figures of the benchmark scripts: Markdown tables, mean ± std cells, the
issue-6 targets' PASS/MISS rows, and :class:`Report` (Markdown + CSV + PNG under ``--out``). The experiments are in :mod:`_bench`
and the scripts; costs and hardware come from :mod:`tg_cnn2gnn.run.measure`."""
from __future__ import annotations

import argparse
import csv
import json
import math
import statistics
import time
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Sequence

from tg_cnn2gnn.run.measure import hardware_line


def run_dirs_args(doc: str, script: str, argv: list[str] | None,
                  extra: Callable[[argparse.ArgumentParser], None] | None = None) -> argparse.Namespace:
    """The arguments of a benchmark over trained run directories (``runs``, ``--which``,
    ``--threads``, and whatever ``extra(parser)`` adds); sets the thread count and prints the
    command and hardware lines."""
    import sys
    import torch
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("runs", nargs="+", help="run directories (graph students)")
    p.add_argument("--which", choices=("last", "best"), default="last")
    p.add_argument("--threads", type=int, default=2)
    if extra is not None:
        extra(p)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"Command: python benchmarks/{script} {' '.join(sys.argv[1:] if argv is None else argv)}")
    print(f"Hardware: {hardware_line()}\n")
    return args


def graph_runs(args: argparse.Namespace, needs: str, columns: int) -> Iterator[tuple[str, Any]]:
    """``(path, loaded run)`` for each of ``args.runs`` whose student has the method ``needs``;
    any other run gets a table row of ``columns`` cells saying it is not a graph student."""
    from tg_cnn2gnn.run.serve import load_run_model
    for path in args.runs:
        run = load_run_model(path, which=args.which)
        if not hasattr(run.model, needs):
            print(f"| {path} |" + " – |" * (columns - 2) + " not a graph student |")
            continue
        yield path, run


def log(args: argparse.Namespace, msg: str) -> None:
    print(f"[{args.script} {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def mean_std(values: Iterable[float | None], scale: float = 100.0, digits: int = 2) -> str:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return "–"
    m = statistics.mean(vals) * scale
    if len(vals) == 1:
        return f"{m:.{digits}f}"
    return f"{m:.{digits}f} ± {statistics.stdev(vals) * scale:.{digits}f}"


def mstd(values: Iterable[float | None]) -> tuple[float, float]:
    vals = [v for v in values if v is not None and not (isinstance(v, float) and math.isnan(v))]
    if not vals:
        return float("nan"), float("nan")
    return statistics.mean(vals), (statistics.stdev(vals) if len(vals) > 1 else 0.0)


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r in rows:
        lines.append("| " + " | ".join(str(c) for c in r) + " |")
    return "\n".join(lines)


class Report:
    """Collects Markdown sections, CSV tables and figures of one script run under ``out``."""

    def __init__(self, args: argparse.Namespace, title: str) -> None:
        self.args = args
        self.out = Path(args.out)
        self.out.mkdir(parents=True, exist_ok=True)
        self.title = title
        self.sections: list[str] = []
        self.start = time.perf_counter()
        self.files: list[str] = []

    def add(self, text: str) -> None:
        self.sections.append(text.rstrip() + "\n")

    def csv(self, name: str, rows: list[dict[str, Any]]) -> Path:
        path = self.out / name
        keys: list[str] = []
        for r in rows:
            for k in r:
                if k not in keys:
                    keys.append(k)
        with open(path, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=keys)
            w.writeheader()
            w.writerows(rows)
        self.files.append(name)
        return path

    def figure(self, fig: Any, name: str, description: str, dpi: int = 80) -> Path:
        """Save a matplotlib figure as a small PNG with ``Title`` and ``Description`` text chunks."""
        import matplotlib.pyplot as plt
        path = self.out / name
        fig.savefig(path, dpi=dpi, bbox_inches="tight",
                    metadata={"Title": self.title, "Description": description,
                              "Software": "tg_cnn2gnn benchmarks"})
        plt.close(fig)
        self.sections.append(f"![{description}]({name})\n")
        self.files.append(name)
        return path

    def targets(self, rows: list[dict[str, Any]], note: str = "") -> None:
        """Print the PASS/MISS rows of :func:`_bench.target_rows`, write them as CSV and a Markdown table."""
        log(self.args, "issue-6 targets:")
        for r in rows:
            print(f"    {r['status']:4s}  {r['description']}: measured {r['measured']} "
                  f"(required {r['required']}; margin {r['margin']})", flush=True)
        self.csv(f"{self.args.script}_targets.csv", [{k: v for k, v in r.items()} for r in rows])
        self.add("### Issue-6 targets\n\n" + md_table(
            ["target", "measured", "required", "status", "margin"],
            [[r["description"], r["measured"], r["required"], r["status"], r["margin"]] for r in rows])
            + (f"\n\n{note}" if note else ""))

    def write(self) -> Path:
        wall = time.perf_counter() - self.start
        head = [f"## {self.title}", "", f"Command: `{self.args.command}`  ",
                f"Hardware: {hardware_line()}  ", f"Wall time: {wall / 60:.1f} min", ""]
        text = "\n".join(head) + "\n" + "\n".join(self.sections)
        path = self.out / f"{self.args.script}.md"
        path.write_text(text)
        (self.out / f"{self.args.script}_args.json").write_text(
            json.dumps({k: v for k, v in vars(self.args).items()}, indent=2, default=str) + "\n")
        print(text, flush=True)
        log(self.args, f"wrote {path} and {', '.join(self.files)} (wall {wall:.0f} s)")
        return path


def plt_setup() -> Any:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


# ----------------------------------------------------------------------------- targets
#: The issue-6 targets: (key, description, threshold, unit).
TARGETS = {
    "mech2_vs_mech1_speed": ("Mechanism 2 (batch) >= 10x faster per test sample than Mechanism 1 (one-by-one)",
                             10.0, "x"),
    "flops_teacher_over_student": ("student >= 20x fewer FLOPs per sample than the teacher", 20.0, "x"),
    "latency_teacher_over_student": ("student >= 10x faster per sample on CPU than the teacher", 10.0, "x"),
    "epoch_cnn2gnn_over_kdmlp": ("a distillation epoch with cached logits <= 1.5x a KD-MLP epoch", 1.5, "x (max)"),
    "student_minus_teacher": ("CNN2GNN (bank) >= teacher accuracy", 0.0, "pp"),
    "student_minus_kdmlp": ("CNN2GNN (bank) > KD-MLP accuracy", 0.0, "pp"),
    "student_minus_gnn": ("CNN2GNN (bank) > undistilled GNN accuracy", 0.0, "pp"),
    "student_minus_ingnn": ("CNN2GNN (bank) > InGNN accuracy", 0.0, "pp"),
    "student_minus_eucgnn": ("CNN2GNN (bank) > EucGNN accuracy", 0.0, "pp"),
}


def target_rows(measured: dict[str, float]) -> list[dict[str, Any]]:
    """PASS/MISS and the margin for every measured target. Ratios: margin = measured /
    threshold (>= 1 passes; for the epoch-time cap, threshold / measured); accuracy gaps
    (percentage points): margin = the gap itself."""
    rows = []
    for key, value in measured.items():
        if key not in TARGETS or value is None or (isinstance(value, float) and math.isnan(value)):
            continue
        desc, thr, unit = TARGETS[key]
        if unit == "pp":
            ok = value >= thr if key == "student_minus_teacher" else value > thr
            margin = f"{value:+.2f} pp"
            shown = f"{value:+.2f} pp"
        elif unit == "x (max)":
            ok = value <= thr
            margin = f"{thr / value:.2f}x of the cap" if value > 0 else "inf"
            shown = f"{value:.2f}x"
        else:
            ok = value >= thr
            margin = f"{value / thr:.2f}x of the target"
            shown = f"{value:.2f}x"
        rows.append({"target": key, "description": desc, "measured": shown, "required":
                     (f">= {thr:g}x" if unit == "x" else f"<= {thr:g}x" if unit == "x (max)" else
                      (">= 0 pp" if key == "student_minus_teacher" else "> 0 pp")),
                     "status": "PASS" if ok else "MISS", "margin": margin, "value": value})
    return rows


def details_markdown(d: dict[str, Any]) -> str:
    """One paragraph with the raw measurements behind :func:`core_targets`."""
    parts = [f"Mechanism 1 {1e3 * d['mech1_s_per_sample']:.3f} ms/sample",
             f"Mechanism 2 {1e3 * d['mech2_s_per_sample']:.3f} ms/sample",
             f"bank {1e3 * d['bank_s_per_sample']:.3f} ms/sample",
             f"teacher {1e3 * d['teacher_s_per_sample']:.3f} ms/sample (all batched, 1 CPU thread)",
             f"FLOPs/sample: teacher {d['teacher_flops'] / 1e6:.2f} M, student Mechanism 2 "
             f"{d['mech2_flops'] / 1e6:.2f} M, student bank {d['bank_flops'] / 1e6:.2f} M"]
    if d.get("cnn2gnn_epoch_s") is not None and d.get("kd_mlp_epoch_s") is not None:
        parts.append(f"epoch: CNN2GNN (cached logits) {d['cnn2gnn_epoch_s']:.2f} s, KD-MLP {d['kd_mlp_epoch_s']:.2f} s")
    return "Measurements: " + "; ".join(parts) + "."
