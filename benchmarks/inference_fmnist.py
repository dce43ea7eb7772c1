"""Inductive inference of CNN2GNN students on Fashion-MNIST, trained without a teacher (CPU).

For every sparsity ``s`` in ``--s`` it trains, with cross-entropy only, from scratch:

* ``CNN2GNN`` with the paper's anchor head (512-256, one output per training sample),
* ``CNN2GNN`` with the embedding head (ours; 512-256-64),
* the fixed-graph baselines ``InGNN`` (inner products) and ``EucGNN`` (Euclidean),

each with the same 2-layer GCN student (784-``--hidden``-10), and once an MLP with the
student's widths (784-``--hidden``-10). It reports

* test accuracy under every inference mechanism the model has (``bank``, ``batch`` =
  Mechanism 2, ``one_by_one`` = Mechanism 1, ``direct``), and the time per 1,000 test
  samples of each;
* the training epoch time of every model and its ratio to the MLP's;
* how often Mechanism 2 (``batch``) predictions change when the test set is shuffled with
  two different seeds (a prediction depends on the other samples of its test batch).

Data: 55,000 train / 5,000 validation (stratified, ``--seed``) / 10,000 test; pixels/255
standardised with the training mean and std. The validation accuracy (``bank``) is
reported for reference; no checkpoint or hyper-parameter is selected on the test set.

    python benchmarks/inference_fmnist.py --quick               # minutes, reduced setting
    python benchmarks/inference_fmnist.py --epochs 3 --s 5 10 50 --one-by-one-limit 1000

Writes ``inference_fmnist.md`` and ``inference_fmnist.csv`` to ``--out``.
"""
from __future__ import annotations

import argparse
import csv
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from tg_cnn2gnn.baselines import MLP  # noqa: E402
from tg_cnn2gnn.nn import (CNN2GNN, EucGNN, GraphStudent, InGNN,  # noqa: E402
                           LearnedGraphHead, make_optimizer)
from tg_cnn2gnn.run.measure import hardware_line, logits_accuracy  # noqa: E402

DEFAULT_ROOT = None   # the package's loader finds /usr/share/datasets/fashion-mnist itself


# ----------------------------------------------------------------------------- data
def load_fashion_mnist(root: str | None = DEFAULT_ROOT, n_val: int = 5000, seed: int = 0) -> dict:
    """Flattened, normalised Fashion-MNIST from the run layer: 55,000 train / 5,000 val
    (stratified, split seed ``seed``) / 10,000 test."""
    from tg_cnn2gnn.data import dataset_info, load_tensors
    from tg_cnn2gnn.run.data import split_data
    x, y = load_tensors("fashion-mnist", "train", root)
    xt, yt = load_tensors("fashion-mnist", "test", root)
    d = split_data(x, y, xt, yt, dataset_info("fashion-mnist"), val_fraction=n_val / y.numel(), split_seed=seed)
    return dict(train_x=d.x_train.flatten(1), train_y=d.y_train, val_x=d.x_val.flatten(1), val_y=d.y_val,
                test_x=d.x_test.flatten(1), test_y=d.y_test)


# ----------------------------------------------------------------------------- models
def build(kind: str, s: int, n_train: int, args) -> torch.nn.Module:
    student = GraphStudent(784, args.hidden, 10, dropout=args.dropout)
    if kind in ("anchor", "embedding"):
        head = LearnedGraphHead(784, n_train, s=s, hidden_channels=tuple(args.head_hidden),
                                form=kind, embedding_channels=args.embedding_channels, sparse_grad=True)
        return CNN2GNN(head, student)
    if kind == "ingnn":
        return InGNN(student, s=s)
    if kind == "eucgnn":
        return EucGNN(student, s=s)
    if kind == "mlp":
        return MLP(784, args.hidden, 10, dropout=args.dropout)
    raise ValueError(kind)


def train(model, x, y, epochs: int, args, seed: int) -> list[float]:
    """Cross-entropy training with batches of ``args.batch_size``; returns epoch times (s)."""
    opt = make_optimizer(model, lr=args.lr)
    g = torch.Generator().manual_seed(seed)
    n, bs = x.size(0), args.batch_size
    is_mlp = isinstance(model, MLP)
    times = []
    for _ in range(epochs):
        model.train()
        perm = torch.randperm(n, generator=g)
        t0 = time.perf_counter()
        for i in range(0, n - bs + 1, bs):
            idx = perm[i:i + bs]
            logits = model(x[idx]) if is_mlp else model(x[idx], idx)
            loss = F.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
        times.append(time.perf_counter() - t0)
    return times


def acc(logits: torch.Tensor, y: torch.Tensor) -> float:
    return logits_accuracy(logits, y)


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t0


# ----------------------------------------------------------------------------- main
def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default=DEFAULT_ROOT)
    p.add_argument("--epochs", type=int, default=3)
    p.add_argument("--s", type=int, nargs="+", default=[5, 10, 50])
    p.add_argument("--models", nargs="+", default=["anchor", "embedding", "ingnn", "eucgnn"])
    p.add_argument("--hidden", type=int, default=256, help="student / MLP hidden width")
    p.add_argument("--head-hidden", type=int, nargs="+", default=[512, 256])
    p.add_argument("--embedding-channels", type=int, default=64)
    p.add_argument("--dropout", type=float, default=0.5)
    p.add_argument("--lr", type=float, default=0.001,
                   help="Adam learning rate for every model (the paper's 0.01 is for its SGD setup)")
    p.add_argument("--batch-size", type=int, default=100)
    p.add_argument("--bank-size", type=int, default=100)
    p.add_argument("--test-limit", type=int, default=None, help="use the first N test samples")
    p.add_argument("--one-by-one-limit", type=int, default=1000,
                   help="Mechanism 1 on the first N test samples only (it is slow)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--quick", action="store_true",
                   help="1 epoch, s in {10}, 2,000 test samples, Mechanism 1 on 300")
    p.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    args = p.parse_args(argv)
    if args.quick:
        args.epochs, args.s, args.test_limit, args.one_by_one_limit = 1, [10], 2000, 300
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    data = load_fashion_mnist(args.root, seed=args.seed)
    xtr, ytr = data["train_x"], data["train_y"]
    xte, yte = data["test_x"], data["test_y"]
    if args.test_limit:
        xte, yte = xte[:args.test_limit], yte[:args.test_limit]
    n_obo = min(args.one_by_one_limit, xte.size(0))
    print(f"train {tuple(xtr.shape)} val {tuple(data['val_x'].shape)} test {tuple(xte.shape)}; "
          f"threads={args.threads}", flush=True)

    rows, dis_rows = [], []
    torch.manual_seed(args.seed)
    mlp = build("mlp", 0, xtr.size(0), args)
    mlp_times = train(mlp, xtr, ytr, args.epochs, args, args.seed)
    mlp.eval()
    with torch.no_grad():
        logits, dt = timed(lambda: mlp(xte))
        val_logits = mlp(data["val_x"])
    mlp_epoch = float(np.median(mlp_times))
    rows.append(dict(model="mlp", s="-", mechanism="-", test_acc=acc(logits, yte), n_test=xte.size(0),
                     ms_per_1000=1e6 * dt / xte.size(0), epoch_s=mlp_epoch, epoch_ratio=1.0,
                     val_acc=acc(val_logits, data["val_y"])))
    print(rows[-1], flush=True)

    for s in args.s:
        for kind in args.models:
            torch.manual_seed(args.seed)
            model = build(kind, s, xtr.size(0), args)
            times = train(model, xtr, ytr, args.epochs, args, args.seed)
            epoch = float(np.median(times))
            common = dict(train_x=xtr, bank_size=args.bank_size, batch_size=args.batch_size,
                          seed=args.seed)
            val = acc(model.predict(data["val_x"], mechanism="bank", **common), data["val_y"])
            for mech in model.mechanisms:
                xs, ys = (xte[:n_obo], yte[:n_obo]) if mech == "one_by_one" else (xte, yte)
                logits, dt = timed(lambda: model.predict(xs, mechanism=mech, **common))
                rows.append(dict(model=kind, s=s, mechanism=mech, test_acc=acc(logits, ys),
                                 n_test=xs.size(0), ms_per_1000=1e6 * dt / xs.size(0),
                                 epoch_s=epoch, epoch_ratio=epoch / mlp_epoch, val_acc=val))
                print(rows[-1], flush=True)
                if mech == "one_by_one" and n_obo < xte.size(0):
                    # the same subset under "bank", for a like-for-like comparison
                    lb = model.predict(xs, mechanism="bank", **common)
                    rows.append(dict(rows[-1], mechanism="bank (same subset)",
                                     test_acc=acc(lb, ys), ms_per_1000=float("nan")))
            if "batch" in model.mechanisms:
                preds = []
                for seed in (1, 2):
                    perm = torch.randperm(xte.size(0), generator=torch.Generator().manual_seed(seed))
                    out = model.predict(xte[perm], mechanism="batch", **common)
                    pred = torch.empty_like(perm)
                    pred[perm] = out.argmax(1)
                    preds.append(pred)
                dis_rows.append(dict(model=kind, s=s, disagreement=float((preds[0] != preds[1])
                                                                         .float().mean()),
                                     acc_seed1=float((preds[0] == yte).float().mean()),
                                     acc_seed2=float((preds[1] == yte).float().mean())))
                print(dis_rows[-1], flush=True)
    write(args, rows, dis_rows, xtr, xte, n_obo)


def write(args, rows, dis_rows, xtr, xte, n_obo) -> None:
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "inference_fmnist.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    with open(out / "inference_fmnist_disagreement.csv", "w", newline="") as f:
        if dis_rows:
            w = csv.DictWriter(f, fieldnames=list(dis_rows[0]))
            w.writeheader()
            w.writerows(dis_rows)
    cmd = "python benchmarks/inference_fmnist.py " + " ".join(sys.argv[1:])
    lines = [
        "# Fashion-MNIST: inductive inference of CNN2GNN students (no teacher, CPU)",
        "",
        f"Command: `{cmd.strip()}`  ",
        f"Machine: {hardware_line()}, shared CPU (timings are noisy).  ",
        f"Setting: {args.epochs} epoch(s), Adam lr {args.lr}, batch {args.batch_size}, student GCN "
        f"784-{args.hidden}-10 (dropout {args.dropout}), head {'-'.join(map(str, args.head_hidden))}"
        f" (embedding {args.embedding_channels}), bank {args.bank_size} training samples (seed "
        f"{args.seed}); {xtr.size(0)} train, test {xte.size(0)} samples (Mechanism 1 on the "
        f"first {n_obo}). Test accuracy is last-epoch; val = 5,000 held-out training images, "
        f"`bank` mechanism.",
        "",
        "| model | s | mechanism | test acc | n test | ms / 1000 test | epoch (s) | epoch / MLP | val acc |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ms = "" if r["ms_per_1000"] != r["ms_per_1000"] else f"{r['ms_per_1000']:.0f}"
        lines.append(f"| {r['model']} | {r['s']} | {r['mechanism']} | {100 * r['test_acc']:.2f} | "
                     f"{r['n_test']} | {ms} | {r['epoch_s']:.1f} | {r['epoch_ratio']:.2f} | "
                     f"{100 * r['val_acc']:.2f} |")
    if dis_rows:
        lines += ["", "Mechanism 2 (`batch`) under two shuffles of the test set (seeds 1 and 2):", "",
                  "| model | s | predictions that differ | acc (seed 1) | acc (seed 2) |",
                  "|---|---|---|---|---|"]
        for r in dis_rows:
            lines.append(f"| {r['model']} | {r['s']} | {100 * r['disagreement']:.2f}% | "
                         f"{100 * r['acc_seed1']:.2f} | {100 * r['acc_seed2']:.2f} |")
    text = "\n".join(lines) + "\n"
    (out / "inference_fmnist.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
