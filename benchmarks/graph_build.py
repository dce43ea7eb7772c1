"""Time and peak memory of `sparse_simplex_graph` against exact kNN in faiss and scikit-learn.

Each (method, N, repeat) runs in a fresh subprocess so that its peak resident memory
(ru_maxrss) is its own; the reported memory is the peak increase over the process's state
just before the call (data created, one warm-up call on 256 points done). Repeats are
interleaved across methods (A B C A B C ...) and the minimum time is kept, so background
load on the machine hits all methods alike. All get the same points and threads.

    python benchmarks/graph_build.py                 # N = 1,000 / 5,000 / 20,000, D = 64, s = 10
    python benchmarks/graph_build.py --sizes 1000 --repeats 3 --out outputs/graph_build

Writes ``graph_build.md`` and ``graph_build.csv`` to ``--out`` and prints the table.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

METHODS = ("tg_cnn2gnn", "faiss", "sklearn")


def _run_one(method: str, n: int, dim: int, s: int, threads: int, seed: int) -> dict:
    """Body of a child process: one warm-up on 256 points, then one timed build."""
    import numpy as np
    import torch

    torch.set_num_threads(threads)
    rng = np.random.default_rng(seed)
    pts = rng.standard_normal((n, dim)).astype(np.float32)
    if method == "tg_cnn2gnn":
        from tg_cnn2gnn.functional import sparse_simplex_graph
        def build(p=pts):
            return sparse_simplex_graph(torch.from_numpy(p), s)
    elif method == "faiss":
        import faiss
        faiss.omp_set_num_threads(threads)

        def build(p=pts):
            index = faiss.IndexFlatL2(dim)
            index.add(p)
            return index.search(p, s + 1)          # +1: each point finds itself first
    elif method == "sklearn":
        from sklearn.neighbors import NearestNeighbors

        def build(p=pts):
            return NearestNeighbors(n_neighbors=s, algorithm="brute", n_jobs=threads).fit(p).kneighbors()
    else:
        raise ValueError(f"method={method!r}; allowed: {METHODS}")
    build(pts[:256])
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    build()
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {"method": method, "n": n, "seconds": seconds, "peak_mib": (peak - base) / 1024}


def main(argv: list[str] | None = None) -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tg_cnn2gnn.run.measure import hardware_line
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 5000, 20000])
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--s", type=int, default=10)
    p.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--out", type=Path, default=Path("outputs/graph_build"))
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        method, n = args.child.split(":")
        print(json.dumps(_run_one(method, int(n), args.dim, args.s, args.threads, args.seed)))
        return

    runs: list[dict] = []
    for n in args.sizes:
        for rep in range(args.repeats):
            for method in args.methods:
                cmd = [sys.executable, __file__, "--child", f"{method}:{n}", "--dim", str(args.dim),
                       "--s", str(args.s), "--threads", str(args.threads), "--seed", str(args.seed)]
                res = subprocess.run(cmd, capture_output=True, text=True)
                if res.returncode != 0:
                    print(f"{method} N={n} failed:\n{res.stderr[-2000:]}", file=sys.stderr)
                    continue
                row = json.loads(res.stdout.strip().splitlines()[-1]) | {"repeat": rep}
                runs.append(row)
                print(f"N={n:>6} run {rep} {method:<11} {row['seconds']:.4f} s  "
                      f"peak +{row['peak_mib']:.1f} MiB", flush=True)
    by: dict = {}
    for r in runs:           # keep the fastest run; memory is the largest seen
        key = (r["method"], r["n"])
        best = by.setdefault(key, dict(r))
        best["seconds"] = min(best["seconds"], r["seconds"])
        best["peak_mib"] = max(best["peak_mib"], r["peak_mib"])
    rows = list(by.values())
    table = ["| N | tg_cnn2gnn s | faiss s | sklearn s | ours / faiss | ours / sklearn | "
             "ours peak MiB | faiss peak MiB | dense N x N float32 MiB |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for n in args.sizes:
        ours, fa, sk = (by.get((m, n)) for m in METHODS)

        def fmt(r, key="seconds", f="{:.3f}"):
            return f.format(r[key]) if r else "n/a"
        ratio_f = f"{ours['seconds'] / fa['seconds']:.2f}x" if ours and fa else "n/a"
        ratio_s = f"{ours['seconds'] / sk['seconds']:.2f}x" if ours and sk else "n/a"
        table.append(f"| {n:,} | {fmt(ours)} | {fmt(fa)} | {fmt(sk)} | {ratio_f} | {ratio_s} | "
                     f"{fmt(ours, 'peak_mib', '{:.1f}')} | {fmt(fa, 'peak_mib', '{:.1f}')} | "
                     f"{n * n * 4 / 2**20:.0f} |")
    header = (f"D = {args.dim}, s = {args.s}, threads = {args.threads}, min time of {args.repeats} "
              f"interleaved runs (max peak memory), "
              f"seed {args.seed}; {hardware_line()}")
    text = "\n".join([header, "", *table])
    print("\n" + text)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "graph_build.md").write_text(text + "\n")
    with open(args.out / "graph_build.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=["method", "n", "repeat", "seconds", "peak_mib"])
        w.writeheader()
        w.writerows(runs)


if __name__ == "__main__":
    main()
