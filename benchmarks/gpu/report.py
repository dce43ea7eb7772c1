"""Markdown tables from the GPU scripts' JSON (no package calls; pure formatting).

``python benchmarks/gpu/report.py OUT_DIR`` prints every table it finds there
(``env.json``, ``throughput.json``, ``protocol.json``), ready for benchmarks/RESULTS.md.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any


def _f(x: Any, fmt: str = ".2f", scale: float = 1.0) -> str:
    if x is None:
        return "–"
    try:
        return format(float(x) * scale, fmt)
    except (TypeError, ValueError):
        return str(x)


def _pct(x: Any) -> str:
    return _f(x, ".2f", 100.0)


def _hw(h: dict[str, Any]) -> str:
    return f"{h.get('cuda_device', 'no GPU')}, {h.get('cpu', '?')}, torch {h.get('torch', '?')}"


def protocol_table(r: dict[str, Any]) -> str:
    """The protocol's table: one row per (config, seed) run."""
    t = r.get("teacher", {})
    lines = [f"Hardware: {_hw(r.get('hardware', {}))}. Budget {r.get('budget_s')} s"
             + (" (SMOKE setting, not a result)" if r.get("smoke") else "") + ".", "",
             f"Teacher: ResNet-18 ({t.get('source')}), {t.get('epochs', '?')} of {t.get('epochs_configured', '?')} "
             f"epochs, test accuracy **{_pct(t.get('test_acc'))} %** (target {_pct(t.get('target_acc'))} %: "
             f"{'met' if t.get('meets_target') else 'MISSED'}), {_f(t.get('wall_s'), '.0f')} s, "
             f"{_f(t.get('train_samples_per_s'), '.0f')} samples/s ({t.get('amp', '?')}).", ""]
    lines.append("| config | seed | epochs | bank last / best-val (%) | Mechanism 2 last / best-val (%) | "
                 "label vote (%) | class-consistency: learned / raw (%) | "
                 "distill wall (s) | train samples/s | est. 200 epochs (min) | teacher / student FLOPs (bank, M2) | "
                 "latency batch 1, ms: teacher / bank / predictor | batched, µs/sample: teacher / bank / M2 / predictor |")
    lines.append("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for run in r.get("runs", []):
        test = run.get("test") or {}
        last, best = test.get("last", {}), test.get("best_val", {})
        c = run.get("costs", {})
        tf = c.get("teacher", {}).get("flops_per_sample")
        sf = c.get("student", {}).get("flops", {})
        ratio = [(_f(tf / sf[m]["per_sample"], ".1f") + "x") if tf and m in sf and sf[m]["per_sample"] else "–"
                 for m in ("bank", "batch")]
        lat = c.get("latency_ms", {})
        gc, vote = run.get("consistency") or {}, run.get("label_vote") or {}
        cons = f"{_pct(gc.get('learned'))} / {_pct(gc.get('raw'))}" if gc else "–"
        ep = f"{run.get('epochs')}" + (f" (scaled from {run.get('epochs_configured')})" if run.get("epochs_scaled") else "")
        lines.append(
            f"| {run.get('config')} | {run.get('seed')} | {ep} | {_pct(last.get('bank'))} / {_pct(best.get('bank'))} | "
            f"{_pct(last.get('batch'))} / {_pct(best.get('batch'))} | {_pct(vote.get('test_acc'))} | {cons} | "
            f"{_f(run.get('wall_s'), '.0f')} | "
            f"{_f(run.get('train_samples_per_s'), '.0f')} | {_f(run.get('estimated_200_epochs_s'), '.1f', 1 / 60)} | "
            f"{ratio[0]}, {ratio[1]} | {_f(lat.get('teacher', {}).get('batch1'), '.3f')} / "
            f"{_f(lat.get('bank', {}).get('batch1'), '.3f')} / {_f(lat.get('predictor', {}).get('batch1'), '.3f')} | "
            f"{_f(lat.get('teacher', {}).get('batched'), '.2f', 1e3)} / {_f(lat.get('bank', {}).get('batched'), '.2f', 1e3)}"
            f" / {_f(lat.get('batch', {}).get('batched'), '.2f', 1e3)} / "
            f"{_f(lat.get('predictor', {}).get('batched'), '.2f', 1e3)} |")
    scaled = [f"{x['config']} seed {x['seed']}" for x in r.get("runs", []) if x.get("epochs_scaled")]
    if scaled or (t.get("epochs_scaled")):
        lines += ["", "**Epochs were scaled down to fit the time budget** ("
                  + ", ".join((["teacher"] if t.get("epochs_scaled") else []) + scaled)
                  + "); the '200 epochs' column is the time the full schedule would take at the measured rate."]
    return "\n".join(lines) + "\n"


def throughput_table(r: dict[str, Any]) -> str:
    """The throughput script's table."""
    lines = [f"Hardware: {_hw(r.get('hardware', {}))}" + (" (SMOKE setting)" if r.get("smoke") else "") + ".", "",
             "| what | setting | samples/s or time | peak memory (MiB) | note |", "|---|---|---|---|---|"]
    for row in r.get("distill", []):
        lines.append(f"| distillation epoch ({row['path']}) | {row['setting']} | "
                     f"{_f(row.get('samples_per_s'), '.0f')} samples/s (target 50,000) | "
                     f"{_f(row.get('peak_mib'), '.0f')} | {row.get('note', '')} |")
    g = r.get("graph", {})
    for key in ("package", "bare"):
        if key in g:
            row = g[key]
            lines.append(f"| sparse simplex graph ({key}) | N={g.get('n')}, D={g.get('d')}, s={g.get('s')}, "
                         f"chunk {g.get('chunk_size')} | {_f(row.get('seconds'), '.2f')} s | {_f(row.get('peak_mib'), '.0f')} | "
                         f"{row.get('note', '')} |")
    if "ratio" in g:
        lines += ["", f"Package / bare loop time: **{_f(g['ratio'], '.2f')}x** (target <= 2x); neighbour "
                      f"agreement on {g.get('checked_rows')} rows: {_pct(g.get('agreement'))} %."]
    syncs = r.get("syncs")
    if syncs is not None:
        lines += ["", f"Host synchronisations in one fp32 training step: {len(syncs)}" +
                  ("".join(f"\n- `{s}`" for s in syncs[:20]))]
    return "\n".join(lines) + "\n"


def estimate_table(r: dict[str, Any]) -> str:
    """``protocol.py --estimate``: full-size step times and the protocol's projected time."""
    t = r.get("teacher", {})
    lines = [f"Hardware: {_hw(r.get('hardware', {}))}. Teacher step {_f(t.get('step_s'), '.3f')} s, "
             f"epoch ~{_f(t.get('epoch_s'), '.1f')} s.", "",
             "| student | ms/step | samples/s | validation (s) | s/epoch | 200 epochs (min) | epochs in budget |",
             "|---|---|---|---|---|---|---|"]
    for name in ("paper", "recommended"):
        e = r.get(name)
        if e:
            fit = int(r.get("budget_s", 0) // e["epoch_s"]) if e.get("epoch_s") else None
            lines.append(f"| {name} | {_f(e.get('step_s'), '.2f', 1e3)} | {_f(e.get('samples_per_s'), '.0f')} | "
                         f"{_f(e.get('val_s'), '.2f')} | {_f(e.get('epoch_s'), '.1f')} | "
                         f"{_f(e.get('epochs_200_s'), '.1f', 1 / 60)} | {fit} of {r.get('budget_s')} s |")
    return "\n".join(lines) + "\n"


def main(argv: list[str]) -> int:
    out = Path(argv[0]) if argv else Path(".")
    for name, fn in (("throughput.json", throughput_table), ("estimate.json", estimate_table),
                     ("protocol.json", protocol_table)):
        p = out / name
        if p.is_file():
            print(f"### {name}\n")
            print(fn(json.loads(p.read_text(encoding="utf-8"))))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
