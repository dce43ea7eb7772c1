r"""GPU throughput (issue 14): a distillation epoch and the sparse simplex graph.

1. **Distillation epoch**, paper widths (anchor head 512-256 over 54,000 training samples,
   GCN 784-256-10, s = 50, batch 100), cached teacher logits *in device memory*:
   (a) the training step of the package (:func:`gpu_api.train_step`, what the trainer runs)
   looped over one epoch with all tensors on the device, in fp32, bf16 autocast and fp16
   autocast + GradScaler; (b) the package's trainer (``run.factories.train_student`` ->
   ``Trainer.fit``, one epoch, data handed over on the CPU as users pass it). Training
   samples per second; target 50,000.
   Synthetic images of Fashion-MNIST's shape (the cost does not depend on pixel values).
2. **Sparse simplex graph** for N = 1,000,000 points, D = 64, s = 10 on the device, and a
   bare chunked ``matmul + topk`` loop over the same points with the same chunk, in one run;
   seconds, peak device memory, and the share of the bare loop's neighbours the package finds.
3. The host synchronisations of one fp32 training step (``set_sync_debug_mode("warn")``).

Writes ``throughput.json`` and ``throughput.md`` to ``--out``. ``--smoke``: small sizes (CPU).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
for p in (str(HERE), str(ROOT)):
    if p not in sys.path:
        sys.path.insert(0, p)

import gpu_api as api  # noqa: E402
import probes  # noqa: E402
from report import throughput_table  # noqa: E402


def _settings(n_train: int, device: str, smoke: bool) -> api.Settings:
    widths = dict(head_hidden=[64], hidden=32) if smoke else {}
    return api.settings(dict(dataset="fashion-mnist", teacher="simple-cnn", teacher_width=8, s=10 if smoke else 50,
                             batch_size=100, lr=0.01, alpha=1.0, device=device, val_fraction=0.0,
                             head_form="anchor", **widths))


def synthetic(n: int, n_test: int = 200) -> api.RunData:
    """Random images of Fashion-MNIST's shape as a :class:`gpu_api.RunData` (``n`` training
    samples, no validation part, ``n_test`` test samples): the cost does not depend on pixels."""
    from tg_cnn2gnn.data import dataset_info
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(n, 1, 28, 28, generator=g), torch.randint(0, 10, (n,), generator=g)
    xt, yt = torch.randn(n_test, 1, 28, 28, generator=g), torch.randint(0, 10, (n_test,), generator=g)
    return api.split(x, y, xt, yt, dataset_info("fashion-mnist"), val_fraction=0.0)


def distill_rows(s: api.Settings, data: api.RunData, amps: list[str], log: Any
                 ) -> tuple[list[dict[str, Any]], list[str]]:
    dev = api.device(s)
    n = data.n_train
    x, y = data.x_train.to(dev), data.y_train.to(dev)
    cache = torch.randn(n, 10, device=dev)
    rows = []
    syncs: list[str] = []
    for amp in amps:
        model = api.build_student(s, data)
        d = api.make_distiller(s, None if s.alpha == 0 else _tiny_teacher(s, data), model, amp=amp)
        opt, scaler = api.make_step_state(d, s, amp=amp)
        d.train()
        perm = torch.randperm(n, device=dev)
        steps = n // s.batch_size
        for i in range(3):   # warm-up
            pos = perm[i * s.batch_size:(i + 1) * s.batch_size]
            api.train_step(d, opt, scaler, x[pos], y[pos], pos, cache, amp=amp)
        if amp == "none":
            pos = perm[:s.batch_size]
            syncs = probes.sync_sites(lambda: api.train_step(d, opt, scaler, x[pos], y[pos], pos, cache, amp=amp))
        if dev.type == "cuda":
            torch.cuda.reset_peak_memory_stats(dev)
        api.sync(dev)
        t0 = time.perf_counter()
        for i in range(steps):
            pos = perm[i * s.batch_size:(i + 1) * s.batch_size]
            api.train_step(d, opt, scaler, x[pos], y[pos], pos, cache, amp=amp)
        api.sync(dev)
        dt = time.perf_counter() - t0
        rows.append({"path": "step loop, tensors on device", "setting": f"{amp}, {steps} steps of {s.batch_size}",
                     "seconds": dt, "samples_per_s": steps * s.batch_size / dt, "peak_mib": api.peak_memory_mib(dev),
                     "note": "GradScaler" if amp == "fp16" else ""})
        log(f"step loop {amp}: {rows[-1]['samples_per_s']:.0f} samples/s")
    # the package's trainer (train_student -> Trainer.fit), one epoch, data handed over on the CPU
    model = api.build_student(s, data)
    if dev.type == "cuda":
        torch.cuda.reset_peak_memory_stats(dev)
    summary = api.distill(s.replace(epochs=1, mechanisms=("bank",)), data, _tiny_teacher(s, data), model,
                          log=lambda m: None)
    row = summary["history"][0]
    rows.append({"path": "Trainer.fit", "setting": f"fp32, 1 epoch, {row.get('steps')} steps",
                 "seconds": row["train_time"], "samples_per_s": n / row["train_time"],
                 "peak_mib": api.peak_memory_mib(dev),
                 "note": "train_student; on CUDA: training set resident on the device, sync-free steps"})
    log(f"fit: {rows[-1]['samples_per_s']:.0f} samples/s")
    return rows, syncs


def _tiny_teacher(s: api.Settings, data: api.RunData) -> torch.nn.Module:
    return api.build_teacher(s, data).to(api.device(s))


def graph_rows(n: int, dim: int, s: int, chunk: int, device: torch.device, log: Any) -> dict[str, Any]:
    g = torch.Generator(device=device).manual_seed(0)
    x = torch.randn(n, dim, device=device, generator=g)
    out: dict[str, Any] = {"n": n, "d": dim, "s": s, "chunk_size": chunk}

    def bare(pts: torch.Tensor) -> torch.Tensor:
        sq = (pts * pts).sum(1)
        parts = []
        for a in range(0, pts.size(0), chunk):
            b = min(pts.size(0), a + chunk)
            score = sq[a:b, None] - 2.0 * (pts[a:b] @ pts.T) + sq[None]
            r = torch.arange(b - a, device=pts.device)
            score[r, r + a] = float("inf")
            parts.append(torch.topk(score, s + 1, dim=1, largest=False).indices)
        return torch.cat(parts)

    warm = x[: min(n, 4 * chunk)]
    api.simplex_graph(warm, s, chunk_size=chunk)
    bare(warm)
    for key, fn in (("package", lambda: api.simplex_graph(x, s, chunk_size=chunk)), ("bare", lambda: bare(x))):
        if device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
        api.sync(device)
        t0 = time.perf_counter()
        res = fn()
        api.sync(device)
        dt = time.perf_counter() - t0
        peak = api.peak_memory_mib(device)
        out[key] = {"seconds": dt, "peak_mib": peak, "peak_above_input_mib": None if peak is None else peak - base,
                    "note": "sparse_simplex_graph (Eq. 3 weights, symmetrised edges)" if key == "package"
                    else "matmul + topk(s+1) per chunk, indices only"}
        out[f"_{key}"] = res
        log(f"graph {key}: {dt:.2f} s, peak {peak} MiB")
    (ei, _), idx = out.pop("_package"), out.pop("_bare")
    rows = min(1000, n)
    keep = ei[1] < rows
    have = ei[1][keep] * n + ei[0][keep]
    want = (torch.arange(rows, device=device).repeat_interleave(s) * n + idx[:rows, :s].reshape(-1))
    out["checked_rows"] = rows
    out["agreement"] = float(torch.isin(want, have).double().mean())
    out["ratio"] = out["package"]["seconds"] / out["bare"]["seconds"]
    out["edges"] = int(ei.size(1))
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="outputs/gpu")
    ap.add_argument("--smoke", action="store_true")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--n-train", type=int, default=None, help="training samples of the epoch (54,000)")
    ap.add_argument("--graph-n", type=int, default=None, help="points of the graph benchmark (1,000,000)")
    ap.add_argument("--chunk", type=int, default=None, help="rows per distance chunk (2048)")
    ap.add_argument("--amps", nargs="+", default=["none", "bf16", "fp16"])
    ap.add_argument("--skip-graph", action="store_true")
    ap.add_argument("--threads", type=int, default=None)
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - t0:6.1f} s] {msg}", flush=True)

    n_train = args.n_train or (1000 if args.smoke else 54000)
    s = _settings(n_train, args.device, args.smoke)
    dev = api.device(s)
    amps = [a for a in args.amps if dev.type == "cuda" or a == "none"]
    result: dict[str, Any] = {"smoke": args.smoke, "hardware": api.hardware(), "device": str(dev),
                              "n_train": n_train, "widths": {"head": list(s.head_hidden), "hidden": s.hidden, "s": s.s}}
    rows, syncs = distill_rows(s, synthetic(n_train), amps, log)
    result["distill"], result["syncs"] = rows, syncs
    api.write_json(out / "throughput.json", result)
    if not args.skip_graph:
        n = args.graph_n or (4000 if args.smoke else 1_000_000)
        result["graph"] = graph_rows(n, 64, 10, args.chunk or (512 if args.smoke else 2048), dev, log)
    result["wall_s"] = time.perf_counter() - t0
    api.write_json(out / "throughput.json", result)
    table = throughput_table(result)
    (out / "throughput.md").write_text(table, encoding="utf-8")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
