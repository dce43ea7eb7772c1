"""Which training graph makes the learned graph class-consistent? The issue-12 lever table (CPU).

One teacher (``simple-cnn`` width 16, 3 epochs, the main job's) is trained once on a
class-stratified Fashion-MNIST subset and its logits are cached; then every configuration
distils (Eq. 6, alpha = 1, tau = 4) into a CNN2GNN (head 512-256, 2-layer GCN 256, s = 10)
with the same budget through :func:`train`, and is reported with

* class-consistency of its learned neighbours on the test subset against a training bank
  (:func:`tg_cnn2gnn.diagnostics.graph_class_consistency`), unweighted and Eq. 3-weighted,
  next to raw-pixel Euclidean neighbours of the same bank;
* test accuracy under ``bank`` (strictly inductive) and ``batch`` (Mechanism 2), last epoch.

Levers: batch-internal graph vs a training pool (:class:`tg_cnn2gnn.nn.pool_graph.TrainingPool`),
pool size, warm-started anchor rows, the NCA label term, anchor vs embedding head, the
teacher-relation term.

    python benchmarks/pool_levers.py --quick                         # digits, seconds
    python benchmarks/pool_levers.py --n-train 10000 --n-test 2000 --epochs 4
"""
from __future__ import annotations

import argparse
import csv
import platform
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT.parent))

from tg_cnn2gnn.diagnostics import graph_class_consistency  # noqa: E402
from tg_cnn2gnn.distill import distillation_loss, relation_loss  # noqa: E402
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead, make_optimizer  # noqa: E402
from tg_cnn2gnn.nn.pool_graph import BatchGraph, TrainingPool, warm_start_anchors  # noqa: E402


def train(model, teacher_logits, data, builder, epochs, *, lr=0.005, batch_size=100, alpha=1.0, tau=4.0,
          relation_weight=0.0, seed=0, log=print):
    """Distil ``teacher_logits [N, C]`` into ``model`` on ``data["train_x"], data["train_y"]`` for
    ``epochs`` epochs, the training graph of every step built by ``builder`` (a
    :class:`BatchGraph` or :class:`TrainingPool`). Adam, cosine schedule, Eq. 6 + the builder's
    auxiliary losses + ``relation_weight`` times the teacher-relation term over the graph's nodes.
    The one place to retarget to the package's Trainer."""
    x, y = data["train_x"], data["train_y"]
    n = x.size(0)
    gen = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, lr=lr)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    model.train()
    for epoch in range(epochs):
        t0 = time.perf_counter()
        builder.on_epoch_start(model, x, y, epoch)
        perm = torch.randperm(n, generator=gen)
        total = 0.0
        for a in range(0, n - batch_size + 1, batch_size):      # full batches only
            idx = perm[a:a + batch_size]
            g = builder(model, x[idx], y[idx], idx)
            logits = model.student(g.x, g.edge_index, g.edge_weight)[:g.num_batch]
            loss, _ = distillation_loss(logits, teacher_logits[idx], y[idx], alpha=alpha, tau=tau)
            for v in g.aux_losses.values():
                loss = loss + v
            if relation_weight > 0:
                loss = loss + relation_weight * relation_loss(g.edge_index, g.edge_weight,
                                                              teacher_logits[g.node_index])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach())
        sched.step()
        log(f"    epoch {epoch + 1}/{epochs}: loss {total / (n // batch_size):.4f} "
            f"({time.perf_counter() - t0:.1f} s)")
    model.eval()
    return model


#: name -> (head form, graph, pool_size, warm_start, nca_weight, relation_weight)
CONFIGS = {
    "anchor/batch (paper today)": ("anchor", "batch", None, False, 0.0, 0.0),
    "anchor/pool all": ("anchor", "pool", None, False, 0.0, 0.0),
    "anchor/pool all + warm": ("anchor", "pool", None, True, 0.0, 0.0),
    "anchor/pool all + nca": ("anchor", "pool", None, False, 1.0, 0.0),
    "anchor/pool all + warm + nca": ("anchor", "pool", None, True, 1.0, 0.0),
    "anchor/pool 1000 + warm + nca": ("anchor", "pool", 1000, True, 1.0, 0.0),
    "anchor/batch + warm": ("anchor", "batch", None, True, 0.0, 0.0),
    "embedding/batch": ("embedding", "batch", None, False, 0.0, 0.0),
    "embedding/batch + relation 5": ("embedding", "batch", None, False, 0.0, 5.0),
    "embedding/pool all + relation 5": ("embedding", "pool", None, False, 0.0, 5.0),
    "embedding/pool all + nca": ("embedding", "pool", None, False, 1.0, 0.0),
    "anchor/pool all + nca 3": ("anchor", "pool", None, False, 3.0, 0.0),
    "anchor/batch + nca": ("anchor", "batch", None, False, 1.0, 0.0),
    "embedding/batch + nca": ("embedding", "batch", None, False, 1.0, 0.0),
    "embedding/batch + relation 5 + nca": ("embedding", "batch", None, False, 1.0, 5.0),
    "anchor/pool all + warm + nca 3": ("anchor", "pool", None, True, 3.0, 0.0),
    "embedding/batch + relation 5 + nca 3": ("embedding", "batch", None, False, 3.0, 5.0),
    "anchor/pool all + nca 3 + relation 5": ("anchor", "pool", None, False, 3.0, 5.0),
    "anchor/pool all + nca 10": ("anchor", "pool", None, False, 10.0, 0.0),
}


def load(args):
    if args.quick:
        from sklearn.datasets import load_digits
        xd, yd = load_digits(return_X_y=True)
        x = torch.tensor(xd, dtype=torch.float32) / 16.0
        x = ((x - x.mean()) / x.std()).view(-1, 1, 8, 8)
        y = torch.tensor(yd)
        perm = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(0))
        te, tr = perm[:400], perm[400:]
        return x[tr], y[tr], x[te], y[te]
    from tg_cnn2gnn.data import load_tensors
    x, y = load_tensors("fashion-mnist", "train", args.root)
    xt, yt = load_tensors("fashion-mnist", "test", args.root)
    g = torch.Generator().manual_seed(0)
    keep = torch.cat([(y == c).nonzero().view(-1)[torch.randperm(int((y == c).sum()), generator=g)
                                                   [:args.n_train // 10]] for c in range(10)]).sort().values
    return x[keep], y[keep], xt[:args.n_test], yt[:args.n_test]


def teacher_logits_for(args, x, y):
    from tg_cnn2gnn.distill import compute_logits, pretrain_teacher
    from tg_cnn2gnn.teachers import build_teacher
    cache = Path(args.cache) / f"teacher_{'digits' if args.quick else 'fmnist'}_{x.size(0)}_e{args.teacher_epochs}.pt"
    torch.manual_seed(0)
    teacher = build_teacher("simple-cnn", 10, in_channels=1, image_size=x.size(-1), width=16)
    if cache.is_file():
        teacher.load_state_dict(torch.load(cache, weights_only=True))
    else:
        pretrain_teacher(teacher, x, y, epochs=args.teacher_epochs, batch_size=128, lr=0.05, seed=0,
                         progress=False, tensorboard=False)
        cache.parent.mkdir(parents=True, exist_ok=True)
        torch.save(teacher.state_dict(), cache)
    teacher.eval()
    return teacher, compute_logits(teacher, x, batch_size=500)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="digits, 3 epochs")
    p.add_argument("--n-train", type=int, default=10000)
    p.add_argument("--n-test", type=int, default=2000)
    p.add_argument("--epochs", type=int, default=4)
    p.add_argument("--teacher-epochs", type=int, default=10)
    p.add_argument("--s", type=int, default=10)
    p.add_argument("--bank-size", type=int, default=1000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--configs", default="", help="comma-separated subset of the configuration names")
    p.add_argument("--root", default=None)
    p.add_argument("--cache", default="/tmp/pool_levers_cache")
    p.add_argument("--out", default=str(ROOT.parent / "outputs" / "pool_levers"),
                   help="where pool_levers.csv and pool_levers_table.md go (benchmarks/results/pool_levers.md is written by hand from them)")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    if args.quick:
        args.epochs, args.bank_size = 3, 300
    x, y, xt, yt = load(args)
    teacher, t_logits = teacher_logits_for(args, x, y)
    from tg_cnn2gnn.distill import compute_logits
    t_acc = float((compute_logits(teacher, xt, batch_size=500).argmax(1) == yt).float().mean())
    data = {"train_x": x.flatten(1), "train_y": y}
    n, f = data["train_x"].shape
    print(f"train {n}, test {xt.size(0)}, teacher test acc {t_acc:.4f}", flush=True)
    names = [c.strip() for c in args.configs.split(",") if c.strip()] or list(CONFIGS)
    rows = []
    for name in names:
        form, graph, pool_size, warm, nca, rel = CONFIGS[name]
        torch.manual_seed(args.seed)
        head = LearnedGraphHead(f, num_train=n, s=args.s, hidden_channels=(512, 256), form=form)
        model = CNN2GNN(head, GraphStudent(f, 256, 10))
        if warm:
            warm_start_anchors(head, data["train_x"])
        builder = BatchGraph(nca) if graph == "batch" else TrainingPool(pool_size, nca_weight=nca, seed=args.seed)
        print(f"{name}:", flush=True)
        t0 = time.perf_counter()
        train(model, t_logits, data, builder, args.epochs, relation_weight=rel, seed=args.seed)
        wall = time.perf_counter() - t0
        cons = graph_class_consistency(model, xt, yt, data["train_x"], y, bank_size=args.bank_size, seed=0)
        acc = {m: float((model.predict(xt, mechanism=m, train_x=data["train_x"], bank_size=args.bank_size)
                         .argmax(1) == yt).float().mean()) for m in ("bank", "batch")}
        row = {"config": name, "learned": cons["learned"], "learned_weighted": cons["learned_weighted"],
               "raw": cons["raw"], "chance": cons["chance"], "bank": acc["bank"], "batch": acc["batch"],
               "train_s": wall}
        print("  " + ", ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in row.items()),
              flush=True)
        rows.append(row)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "pool_levers_quick" if args.quick else "pool_levers"
    with open(out / f"{stem}.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [f"Command: `python benchmarks/pool_levers.py {' '.join(argv or sys.argv[1:])}`  ",
             f"Hardware: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread; "
             f"seed {args.seed}; train {n}, test {xt.size(0)}, epochs {args.epochs}, s {args.s}, "
             f"bank {args.bank_size}; teacher simple-cnn(16), {args.teacher_epochs} epochs, test acc {t_acc:.4f}", "",
             "| configuration | learned | learned (Eq. 3 weighted) | raw pixels | chance | acc `bank` | "
             "acc Mechanism 2 | train s |", "|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['config']} | {100 * r['learned']:.1f} % | {100 * r['learned_weighted']:.1f} % | "
                     f"{100 * r['raw']:.1f} % | {100 * r['chance']:.1f} % | {100 * r['bank']:.2f} % | "
                     f"{100 * r['batch']:.2f} % | {r['train_s']:.0f} |")
    (out / f"{stem}_table.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
