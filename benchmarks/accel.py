"""Does the ``accel`` extra (``torch_scatter`` / ``torch_sparse``) make a measured difference?

One process, every variant timed interleaved (rotating order each repeat), median of the
repeats. Variants of the same GCN computation:

* ``edge_index``: ``GCNConv(x, edge_index, edge_weight)`` -- PyG's default path; in PyG 2.8 a
  ``"sum"`` aggregation is ``Tensor.scatter_add_`` whether or not ``torch_scatter`` is installed.
* ``adj_t``: the same graph as a ``torch_sparse.SparseTensor`` (``row`` = target, ``col`` =
  source, ``value`` = edge weight), conversion from the edge list included in the time;
  ``GCNConv`` then runs ``gcn_norm`` on the ``SparseTensor`` and ``torch_sparse.matmul``.
* ``dense`` (part a only): the package's own default for a 100-node training batch
  (``GraphStudent`` dense GCN fast path, ``dense_max_nodes=512``).
* ``torch csr`` (parts b, c): the graph as a native ``torch.sparse_csr`` ``adj_t`` (no extra
  needed), a control for "is it the extension or just CSR?".

Parts: (a) a GCN training epoch of the main job's kind (``B = 100`` node batches, ``s = 10``
learned-graph edges, 784 features, 2-layer GCN 256 wide, forward + backward + Adam step; the
graph's weights are leaves that receive gradients, as the learned graph's do); (b) bank
inference, 1,000 test nodes receiving ``s`` messages each from a bank (no grad); (c) a large
graph, ``sparse_simplex_graph`` of ``N = 20,000`` points (``D = 64``, ``s = 10``), then one
``GCNConv(64, 256)``. Outputs and gradients of the variants are compared before timing.

    PYTHONPATH=. python benchmarks/accel.py [--quick] [--threads 2] [--repeats 5]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
for _p in (str(ROOT), str(Path(__file__).resolve().parent)):
    if _p not in sys.path:
        sys.path.insert(0, _p)

import torch_geometric  # noqa: E402
import torch_geometric.typing as pyg_typing  # noqa: E402
from torch_geometric.nn import GCNConv  # noqa: E402
from torch_geometric.utils import to_torch_csr_tensor  # noqa: E402
from _report import md_table  # noqa: E402

from tg_cnn2gnn.functional.graph import sparse_simplex_graph, topk_to_edges  # noqa: E402
from tg_cnn2gnn.functional.simplex import simplex_weights  # noqa: E402
from tg_cnn2gnn.nn.student import GraphStudent  # noqa: E402

if not pyg_typing.WITH_TORCH_SPARSE:
    raise SystemExit("benchmarks/accel.py needs torch_sparse (pip install '.[accel]')")
from torch_sparse import SparseTensor  # noqa: E402


def to_adj_t(edge_index: torch.Tensor, edge_weight: torch.Tensor, n: int) -> SparseTensor:
    """``[2, E]`` source->target edges -> ``adj_t [n, n]`` with ``adj_t[i, j] = w(j -> i)``."""
    return SparseTensor(row=edge_index[1], col=edge_index[0], value=edge_weight, sparse_sizes=(n, n))


def to_csr_t(edge_index: torch.Tensor, edge_weight: torch.Tensor, n: int) -> torch.Tensor:
    """The same ``adj_t`` as a native ``torch.sparse_csr`` tensor."""
    return to_torch_csr_tensor(edge_index.flip(0), edge_weight, size=(n, n))


def interleaved(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Median seconds of each variant, the variants run in rotating order every repeat."""
    names = list(variants)
    for name in names:        # warm-up (allocator, lazy init), not timed
        variants[name]()
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            t0 = time.perf_counter()
            variants[name]()
            times[name].append(time.perf_counter() - t0)
    return {n: statistics.median(v) for n, v in times.items()}


def rand_rows(n: int, s: int, n_cols: int, g: torch.Generator, offset_self: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """``s`` random column ids per row (never the row itself when ``offset_self``) with Eq. 3
    weights of sorted random distances: the shape of a real simplex graph without its O(n^2) search."""
    if offset_self:
        idx = (torch.arange(n).unsqueeze(1) + torch.randint(1, n_cols, (n, s), generator=g)) % n_cols
    else:
        idx = torch.randint(0, n_cols, (n, s), generator=g)
    vals = torch.rand(n, s + 1, generator=g).sort(dim=1).values
    return idx, simplex_weights(vals, s)


# (a) ------------------------------------------------------------------------------------
def part_a(args, g: torch.Generator) -> tuple[list, list[str]]:
    B, s, F_in, H, C = 100, 10, 784, 256, 10
    pool = 20                           # distinct learned graphs, cycled over the steps
    graphs = []
    for _ in range(pool):
        codes = torch.randn(B, 64, generator=g)       # stands in for the head's codes
        ei, ew = sparse_simplex_graph(codes, s)
        graphs.append((torch.randn(B, F_in, generator=g), torch.randint(0, C, (B,), generator=g), ei, ew))
    torch.manual_seed(0)
    student = GraphStudent(F_in, H, C, dropout=0.0)
    opt = torch.optim.Adam(student.parameters(), lr=1e-3)

    def step(x, y, ei, ew, variant: str) -> tuple[torch.Tensor, torch.Tensor]:
        w = ew.detach().requires_grad_(True)
        if variant == "edge_index":
            out = student(x, ei, w, dense=False)
        elif variant == "adj_t":
            out = student(x, to_adj_t(ei, w, B))
        else:
            out = student(x, ei, w)                    # package default: dense fast path
        loss = F.cross_entropy(out, y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        return out, w.grad

    # equivalence: same outputs, parameter and edge-weight gradients
    notes = []
    x, y, ei, ew = graphs[0]
    ref = None
    for variant in ("edge_index", "adj_t", "dense"):
        out, gw = step(x, y, ei, ew, variant)
        gp = torch.cat([p.grad.reshape(-1) for p in student.parameters()])
        if ref is None:
            ref = (out, gw, gp)
            continue
        d = [float((a - b).abs().max()) for a, b in zip(ref, (out, gw, gp))]
        ok = all(torch.allclose(a, b, rtol=1e-4, atol=1e-5) for a, b in zip(ref, (out, gw, gp)))
        notes.append(f"(a) {variant} vs edge_index: max |diff| output {d[0]:.1e}, edge-weight grad "
                     f"{d[1]:.1e}, parameter grad {d[2]:.1e} -> {'same' if ok else 'DIFFERENT'} to float tolerance")

    def epoch(variant: str) -> Callable[[], None]:
        def run() -> None:
            for i in range(args.steps):
                x, y, ei, ew = graphs[i % pool]
                step(x, y, ei, ew, variant)
                opt.step()
        return run

    t = interleaved({v: epoch(v) for v in ("edge_index", "adj_t", "dense")}, args.repeats)
    rows = [["(a) train epoch", f"{args.steps} steps x B={B}, E~{graphs[0][2].size(1)}/graph",
             f"{t['edge_index']:.3f}", f"{t['adj_t']:.3f}", f"{t['adj_t'] / t['edge_index']:.2f}",
             f"dense {t['dense']:.3f} ({t['dense'] / t['edge_index']:.2f})"]]
    return rows, notes


# (b) ------------------------------------------------------------------------------------
def bank_graph(n_bank: int, n_test: int, s: int, g: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Bank nodes ``0..n_bank-1`` (symmetrised random simplex rows) + test nodes after them,
    each receiving ``s`` edges from the bank and sending none."""
    bi, bw = rand_rows(n_bank, s, n_bank, g, offset_self=True)
    ei_b, ew_b = topk_to_edges(bi, bw, num_nodes=n_bank)
    ti, tw = rand_rows(n_test, s, n_bank, g, offset_self=False)
    tgt = torch.arange(n_bank, n_bank + n_test).repeat_interleave(s)
    ei_t = torch.stack([ti.reshape(-1), tgt])
    return torch.cat([ei_b, ei_t], 1), torch.cat([ew_b, tw.reshape(-1)])


def gcn_forward_variants(convs: list[GCNConv], x: torch.Tensor, ei: torch.Tensor, ew: torch.Tensor,
                         ) -> dict[str, Callable[[], torch.Tensor]]:
    n = x.size(0)

    def run(adj_fn) -> Callable[[], torch.Tensor]:
        @torch.no_grad()
        def f() -> torch.Tensor:
            a, w = adj_fn()
            h = x
            for i, conv in enumerate(convs):
                h = conv(F.relu(h) if i else h, a, w)
            return h
        return f
    return {"edge_index": run(lambda: (ei, ew)),
            "adj_t": run(lambda: (to_adj_t(ei, ew, n), None)),
            "torch csr": run(lambda: (to_csr_t(ei, ew, n), None))}


def compare(tag: str, variants: dict[str, Callable[[], torch.Tensor]]) -> list[str]:
    ref = variants["edge_index"]()
    notes = []
    for name, f in variants.items():
        if name == "edge_index":
            continue
        out = f()
        ok = torch.allclose(ref, out, rtol=1e-4, atol=1e-5)
        notes.append(f"{tag} {name} vs edge_index: max |diff| {float((ref - out).abs().max()):.1e} -> "
                     f"{'same' if ok else 'DIFFERENT'} to float tolerance")
    return notes


def part_b(args, g: torch.Generator) -> tuple[list, list[str]]:
    s, F_in, H, C, T = 10, 784, 256, 10, 1000
    torch.manual_seed(0)
    convs = [GCNConv(F_in, H).eval(), GCNConv(H, C).eval()]
    rows, notes = [], []
    for n_bank in args.banks:
        ei, ew = bank_graph(n_bank, T, s, g)
        x = torch.randn(n_bank + T, F_in, generator=g)
        var = gcn_forward_variants(convs, x, ei, ew)
        notes += compare(f"(b) bank {n_bank}:", var)
        t = interleaved(var, args.repeats)
        rows.append([f"(b) bank inference, bank {n_bank:,}", f"{T:,} test + {n_bank:,} bank nodes, E={ei.size(1):,}",
                     f"{t['edge_index']:.4f}", f"{t['adj_t']:.4f}", f"{t['adj_t'] / t['edge_index']:.2f}",
                     f"torch csr {t['torch csr']:.4f} ({t['torch csr'] / t['edge_index']:.2f})"])
    return rows, notes


# (c) ------------------------------------------------------------------------------------
def part_c(args, g: torch.Generator) -> tuple[list, list[str]]:
    N, D, s, H = args.n_large, 64, 10, 256
    x = torch.randn(N, D, generator=g)
    t0 = time.perf_counter()
    ei, ew = sparse_simplex_graph(x, s)
    t_graph = time.perf_counter() - t0
    torch.manual_seed(0)
    conv = GCNConv(D, H)
    var = gcn_forward_variants([conv], x, ei, ew)
    notes = compare(f"(c) N={N}:", var)
    notes.append(f"(c) sparse_simplex_graph(N={N:,}, D={D}, s={s}) itself: {t_graph:.2f} s (same for every variant), "
                 f"E={ei.size(1):,}")
    t = interleaved(var, args.repeats)
    rows = [[f"(c) GCNConv({D}, {H}) forward, N={N:,}", f"E={ei.size(1):,}", f"{t['edge_index']:.4f}",
             f"{t['adj_t']:.4f}", f"{t['adj_t'] / t['edge_index']:.2f}",
             f"torch csr {t['torch csr']:.4f} ({t['torch csr'] / t['edge_index']:.2f})"]]
    adj = to_adj_t(ei, ew, N)

    def train(a, w) -> Callable[[], None]:
        def f() -> None:
            conv.zero_grad(set_to_none=True)
            conv(x, a, w).square().mean().backward()
        return f
    t = interleaved({"edge_index": train(ei, ew), "adj_t (prebuilt)": train(adj, None)}, args.repeats)
    rows.append([f"(c) GCNConv fwd+bwd, N={N:,}, adj_t built once", f"E={ei.size(1):,}",
                 f"{t['edge_index']:.4f}", f"{t['adj_t (prebuilt)']:.4f}",
                 f"{t['adj_t (prebuilt)'] / t['edge_index']:.2f}", "conversion not timed"])
    return rows, notes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="60 training steps, 3 repeats, banks 100/5,400, N=5,000")
    p.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    p.add_argument("--repeats", type=int, default=None, help="timed repeats per variant (default 5, 3 with --quick)")
    args = p.parse_args()
    if args.threads < 1:
        p.error(f"--threads must be >= 1, got {args.threads}")
    if args.repeats is not None and args.repeats < 1:
        p.error(f"--repeats must be >= 1, got {args.repeats}")
    torch.set_num_threads(args.threads)
    args.steps = 60 if args.quick else 540
    args.repeats = args.repeats or (3 if args.quick else 5)
    args.banks = [100, 5_400] if args.quick else [100, 54_000]
    args.n_large = 5_000 if args.quick else 20_000
    load0 = os.getloadavg()[0]
    t_start = time.perf_counter()
    g = torch.Generator().manual_seed(0)
    rows, notes = [], []
    for part in (part_a, part_b, part_c):
        r, n = part(args, g)
        rows += r
        notes += n
        print(md_table(["case", "size", "edge_index s", "adj_t s", "adj_t / edge_index", "other"], r), flush=True)
    load1 = os.getloadavg()[0]
    print()
    print(md_table(["case", "size", "edge_index s", "adj_t s (incl. conversion)", "adj_t / edge_index", "other (s, ratio)"],
                   rows))
    print()
    for n in notes:
        print("-", n)
    print(f"- torch {torch.__version__}, torch_geometric {torch_geometric.__version__}, "
          f"WITH_TORCH_SCATTER={pyg_typing.WITH_TORCH_SCATTER}, WITH_TORCH_SPARSE={pyg_typing.WITH_TORCH_SPARSE}, "
          f"{args.threads} torch threads, {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs")
    print(f"- 1-min load average: {load0:.2f} at start, {load1:.2f} at end; "
          f"{args.repeats} interleaved repeats, medians; wall {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
