"""Training cost of the learned graph head: an epoch of head + GCN student vs an MLP (CPU).

On Fashion-MNIST (55,000 training samples, batch 100, 550 steps per epoch) it times one
full epoch of

* ``mlp``: an MLP with the student's widths (784-``--hidden``-10),
* ``anchor``: ``CNN2GNN`` with the paper's anchor head (512-256 + one output per training
  sample) and a 2-layer GCN student (784-``--hidden``-10), trained with
  ``make_optimizer`` (gathered rows of the decision layer, row-sparse gradient, lazy Adam),
* ``embedding``: the same with the embedding head (512-256-64),

in interleaved blocks of ``--block`` steps (mlp, anchor, embedding, mlp, ...), so that
background load on a shared machine hits all alike; the epoch time of a model is the sum
of its blocks. All use the same optimiser code (``make_optimizer(kind="adam")``, PyTorch's
fused Adam kernel for dense tensors); the stock ``torch.optim.Adam`` MLP is timed too.

For contrast it times ``--naive-steps`` steps of a naive dense anchor head (all
``num_train`` outputs computed, then the batch's columns taken; dense gradient of the
``num_train x 256`` layer; ``torch.optim.Adam``) and extrapolates to an epoch, and the
per-step time of the sparse anchor path for several ``num_train`` (the step must not
grow with it).

    python benchmarks/head_epoch.py                    # hidden 256, 1 thread
    python benchmarks/head_epoch.py --hidden 512 --threads 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT.parent))

from inference_fmnist import DEFAULT_ROOT, load_fashion_mnist  # noqa: E402

from tg_cnn2gnn.baselines import MLP  # noqa: E402
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead, make_optimizer  # noqa: E402
from tg_cnn2gnn.run.measure import count_flops  # noqa: E402


class NaiveAnchorHead(LearnedGraphHead):
    """The textbook implementation: compute all ``num_train`` outputs, then take columns."""

    def distances_from_code(self, code, code_cols=None, index=None):
        full = torch.addmm(self.anchor_bias.view(1, -1), code, self.anchor_weight.t())
        return full[:, index]


def make(kind: str, n_train: int, args):
    if kind.startswith("mlp"):
        return MLP(784, args.hidden, 10, dropout=0.5)
    student = GraphStudent(784, args.hidden, 10)
    if kind == "naive":
        head = NaiveAnchorHead(784, n_train, s=args.s, sparse_grad=False)
    else:
        head = LearnedGraphHead(784, n_train, s=args.s, form=kind, sparse_grad=True)
    return CNN2GNN(head, student)


def optimizer(kind: str, model, lr: float):
    if kind in ("naive", "mlp_torch"):
        return torch.optim.Adam(model.parameters(), lr=lr)
    return make_optimizer(model, lr=lr, kind="adam")


class Runner:
    """Steps a model through a fixed random order of batches."""

    def __init__(self, kind, x, y, args, n_train=None):
        torch.manual_seed(0)
        self.kind = kind
        self.model = make(kind, n_train or x.size(0), args)
        self.opt = optimizer(kind, self.model, args.lr)
        self.x, self.y, self.bs = x, y, args.batch_size
        self.perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(1))
        self.pos, self.elapsed, self.steps = 0, 0.0, 0

    def step_flops(self) -> int:
        """FLOPs of one training step (forward + backward), by torch.utils.flop_counter."""
        idx = self.perm[:self.bs]
        xb, yb = self.x[idx], self.y[idx]

        def step() -> None:
            logits = self.model(xb) if self.kind.startswith("mlp") else self.model(xb, idx)
            F.cross_entropy(logits, yb).backward()
        flops = count_flops(step, grad=True)
        self.model.zero_grad(set_to_none=True)
        return flops

    def run(self, steps: int) -> None:
        t0 = time.perf_counter()
        for _ in range(steps):
            if self.pos + self.bs > self.perm.numel():
                self.pos = 0
            idx = self.perm[self.pos:self.pos + self.bs]
            self.pos += self.bs
            xb, yb = self.x[idx], self.y[idx]
            logits = self.model(xb) if self.kind.startswith("mlp") else self.model(xb, idx)
            loss = F.cross_entropy(logits, yb)
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
        self.elapsed += time.perf_counter() - t0
        self.steps += steps


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--hidden", type=int, default=256, help="student (and MLP) hidden width")
    p.add_argument("--s", type=int, default=50)
    p.add_argument("--lr", type=float, default=0.01)
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--block", type=int, default=55, help="steps per interleaved block")
    p.add_argument("--naive-steps", type=int, default=20)
    p.add_argument("--scaling", type=int, nargs="*", default=[5500, 55000, 550000],
                   help="num_train values for the per-step scaling check ([] to skip)")
    p.add_argument("--scaling-steps", type=int, default=60)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--quick", action="store_true", help="a quarter epoch, no 550k scaling")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    data = load_fashion_mnist(args.root)
    x, y = data["train_x"], data["train_y"]
    n = x.size(0)
    steps_per_epoch = n // args.batch_size
    total = steps_per_epoch // 4 if args.quick else steps_per_epoch
    if args.quick:
        args.scaling = [s for s in args.scaling if s <= 55000]
    print(f"Fashion-MNIST train {tuple(x.shape)}, batch {args.batch_size}, {steps_per_epoch} "
          f"steps/epoch, student 784-{args.hidden}-10, head 512-256, s={args.s}, "
          f"threads={args.threads}", flush=True)

    kinds = ["mlp", "anchor", "embedding", "mlp_torch"]
    runners = {k: Runner(k, x, y, args) for k in kinds}
    for r in runners.values():                       # warm-up (allocations, first-call costs)
        r.run(3)
        r.elapsed, r.steps = 0.0, 0
    done = 0
    while done < total:
        b = min(args.block, total - done)
        for r in runners.values():
            r.run(b)
        done += b
    scale = steps_per_epoch / total
    epoch = {k: r.elapsed * scale for k, r in runners.items()}

    naive = Runner("naive", x, y, args)
    naive.run(2)
    naive.elapsed, naive.steps = 0.0, 0
    naive.run(args.naive_steps)
    epoch["naive"] = naive.elapsed / naive.steps * steps_per_epoch

    lines = ["| model | epoch (s) | ms / step | epoch / MLP |", "|---|---|---|---|"]
    label = {"mlp": f"MLP 784-{args.hidden}-10 (make_optimizer Adam)",
             "mlp_torch": f"MLP 784-{args.hidden}-10 (torch.optim.Adam)",
             "anchor": "anchor head + GCN (sparse path)",
             "embedding": "embedding head + GCN",
             "naive": f"naive dense anchor head + GCN (extrapolated from {args.naive_steps} steps)"}
    for k in ("mlp", "mlp_torch", "anchor", "embedding", "naive"):
        lines.append(f"| {label[k]} | {epoch[k]:.1f} | {1e3 * epoch[k] / steps_per_epoch:.2f} | "
                     f"{epoch[k] / epoch['mlp']:.2f} |")
    print("\n".join(lines), flush=True)
    print(f"\nratio anchor/MLP = {epoch['anchor'] / epoch['mlp']:.2f}   "
          f"naive/MLP = {epoch['naive'] / epoch['mlp']:.1f}   "
          f"(timed {total} of {steps_per_epoch} steps per model, interleaved)")

    flops = {k: runners[k].step_flops() for k in ("mlp", "anchor", "embedding")}
    print(f"FLOPs per training step (forward + backward, torch.utils.flop_counter): "
          f"MLP {flops['mlp'] / 1e6:.0f} M, anchor {flops['anchor'] / 1e6:.0f} M "
          f"({flops['anchor'] / flops['mlp']:.2f}x), embedding {flops['embedding'] / 1e6:.0f} M "
          f"({flops['embedding'] / flops['mlp']:.2f}x): the head's 784-512-256 MLP alone does "
          f"more arithmetic than the whole student, so the time ratio cannot fall below the FLOP ratio.")

    if args.scaling:
        print("\nPer-step time of the anchor path vs num_train (same data; indices < 55,000):")
        print("| num_train | anchor params | ms / step |\n|---|---|---|")
        for nt in args.scaling:
            r = Runner("anchor", x, y, args, n_train=nt)
            sub = torch.randperm(n, generator=torch.Generator().manual_seed(2))
            r.perm = sub[sub < min(nt, n)]
            r.run(3)
            r.elapsed, r.steps = 0.0, 0
            r.run(args.scaling_steps)
            print(f"| {nt} | {nt * 257:,} | {1e3 * r.elapsed / r.steps:.2f} |", flush=True)
            del r


if __name__ == "__main__":
    main()
