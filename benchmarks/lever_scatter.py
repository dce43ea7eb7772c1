"""Class-consistency of the learned graph against test accuracy, one point per run.

A picture of where a set of levers lands (issue 12): each run directory of `cnn2gnn distill`
gives one point, x = the class-consistency of its learned graph (the share of a test sample's
s learned neighbours in a training bank that have its class, `summary.json`'s
`graph_consistency.learned`), y = its test accuracy (`--which last` or `best`, under `bank`
where the run has it). Runs without a graph (a KD-MLP, ...) are drawn as horizontal lines, and
so is each distinct teacher; `--target` draws the consistency target. Only the runs'
`summary.json` files are read (JSON: nothing is executed, no model is loaded). Prints a
Markdown table; `--out` writes the figure.

    python benchmarks/lever_scatter.py /tmp/lev5/* --out benchmarks/results/figures/levers.png
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any


def load_summary(run: Path) -> dict[str, Any]:
    """``run/summary.json`` as a dict; a clear error when it is missing or not a run summary."""
    path = Path(run) / "summary.json"
    if not path.is_file():
        raise ValueError(f"run={str(run)!r}: no summary.json there (a finished `cnn2gnn distill` run directory "
                         "is expected)")
    data = json.loads(path.read_text())
    if not isinstance(data, dict) or not isinstance(data.get("distill"), dict) \
            or not isinstance(data["distill"].get("test"), dict):
        raise ValueError(f"run={str(run)!r}: summary.json has no distill.test accuracies (was the run tested?)")
    return data


def run_point(summary: dict[str, Any], which: str = "last") -> dict[str, Any]:
    """``{"acc", "mechanism", "consistency" (None without a graph), "teacher" (name, acc)}``."""
    tests = summary["distill"]["test"].get("last" if which == "last" else "best_val") or {}
    if not tests:
        raise ValueError(f"which={which!r}: the run has no such test accuracy")
    mech = "bank" if "bank" in tests else sorted(tests)[0]
    gc = summary.get("graph_consistency") or {}
    teacher = summary.get("teacher") or {}
    return {"acc": float(tests[mech]), "mechanism": mech,
            "consistency": None if gc.get("learned") is None else float(gc["learned"]),
            "teacher": (teacher.get("name"), teacher.get("test_acc"))}


def draw(points: dict[str, dict[str, Any]], out: Path, target: float | None, title: str) -> None:
    """The scatter (graph runs), horizontal lines (other runs, teachers), written atomically to ``out``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(8.5, 5.5))
    graph = {k: p for k, p in points.items() if p["consistency"] is not None}
    xs = [100 * p["consistency"] for p in graph.values()]
    ax.scatter(xs, [100 * p["acc"] for p in graph.values()], color="tab:blue", zorder=3)
    for name, p in graph.items():
        ax.annotate(name, (100 * p["consistency"], 100 * p["acc"]), fontsize=7, xytext=(3, 3),
                    textcoords="offset points")
    lines = {f"{k} (no graph)": p["acc"] for k, p in points.items() if p["consistency"] is None}
    lines.update({f"teacher {n}": a for n, a in {p["teacher"] for p in points.values()} if a is not None})
    for (name, acc), color in zip(sorted(lines.items()), ("tab:red", "tab:green", "tab:purple", "tab:brown",
                                                          "tab:olive", "tab:cyan", "tab:pink", "tab:gray")):
        ax.axhline(100 * acc, color=color, linestyle="--", linewidth=1, label=f"{name}: {100 * acc:.2f} %")
    if target is not None:
        ax.axvline(100 * target, color="black", linestyle=":", linewidth=1,
                   label=f"class-consistency target {100 * target:g} %")
    ax.set_xlabel("class-consistency of the learned graph (%)")
    ax.set_ylabel("test accuracy (%)")
    ax.set_title(title, fontsize=9)
    if lines or target is not None:
        ax.legend(fontsize=7, loc="lower right")
    ax.grid(alpha=0.3)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp{os.getpid()}{out.suffix}")
    try:
        fig.savefig(tmp, dpi=80, bbox_inches="tight")
        os.replace(tmp, out)
    finally:
        plt.close(fig)
        tmp.unlink(missing_ok=True)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", type=Path, help="run directories of cnn2gnn distill")
    p.add_argument("--which", choices=("last", "best"), default="last", help="last-epoch or best-val test accuracy")
    p.add_argument("--target", type=float, default=0.9, help="class-consistency target line (0-1; 0: none)")
    p.add_argument("--title", default="Each point one run: learned-graph class-consistency vs test accuracy")
    p.add_argument("--out", type=Path, default=None, help="figure to write (.png)")
    args = p.parse_args(argv)
    if not 0 <= args.target <= 1:
        p.error(f"--target={args.target}: must be a share between 0 and 1 (0 = no line)")
    print(f"Command: python benchmarks/lever_scatter.py {' '.join(sys.argv[1:] if argv is None else argv)}\n")
    names = [run.resolve().name for run in args.runs]
    if len(set(names)) < len(names):                 # e.g. seed0/recommended, seed1/recommended
        names = [f"{run.resolve().parent.name}/{run.resolve().name}" for run in args.runs]
    try:
        points = {name: run_point(load_summary(run), args.which) for name, run in zip(names, args.runs)}
    except ValueError as e:
        print(f"lever_scatter: error: {e}", file=sys.stderr)
        return 2
    print(f"| run | test acc ({args.which}) | mechanism | class-consistency | teacher |")
    print("|---|---|---|---|---|")
    for name, pt in points.items():
        cc = "– (no graph)" if pt["consistency"] is None else f"{100 * pt['consistency']:.2f} %"
        t_name, t_acc = pt["teacher"]
        teacher = "–" if t_acc is None else f"{t_name} {100 * t_acc:.2f} %"
        print(f"| {name} | {100 * pt['acc']:.2f} % | {pt['mechanism']} | {cc} | {teacher} |")
    if args.out is not None:
        draw(points, args.out, args.target or None, args.title)
        print(f"\nFigure: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
