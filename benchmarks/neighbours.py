"""Paper Figure 3: the neighbours the learned graph head connects a query image to.

A CNN2GNN student (anchor head, sparsity ``--s``) is distilled as in the other scripts.
For ``--n-queries`` test images (one per class, drawn with the seed) the head's learned
distances to *every* training sample give Eq. 3 weights over the ``s`` nearest; the
picture shows the query and its ``--show`` heaviest neighbours with their weight p_ij,
framed green when the neighbour has the query's class and red otherwise.

Quantitatively, over ``--n-measure`` test images: the share of the ``s`` neighbours with
the query's class (unweighted) and the Eq. 3 weight mass on them, for the trained head,
the same head before training (random initialisation), and the fixed pixel-space
Euclidean graph (EucGNN's).

    python benchmarks/neighbours.py --quick
    python benchmarks/neighbours.py --full --dataset stl10 --s 3 --device cuda
"""
from __future__ import annotations

import copy
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _bench as B  # noqa: E402

OVERRIDES = {"quick": {"seeds": [0], "n_queries": 5, "show": 8, "n_measure": 2000},
             "full": {"seeds": [0], "n_queries": 6, "show": 8, "n_measure": 0}}


@torch.no_grad()
def neighbours(dist: torch.Tensor, s: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Eq. 3 over rows of ``dist [Q, n_train]``: ``(index [Q, s], weight [Q, s])`` by decreasing weight."""
    from tg_cnn2gnn.functional.simplex import sparse_simplex_topk
    idx, w = sparse_simplex_topk(dist, s)
    order = w.argsort(dim=1, descending=True, stable=True)
    return idx.gather(1, order), w.gather(1, order)


@torch.no_grad()
def learned_distances(model: torch.nn.Module, xq: torch.Tensor, xtr: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    """``[Q, n_train]`` learned distances (on the CPU) from queries ``xq`` to every training
    sample of ``xtr`` (row ``j`` = training id ``j``), computed on the model's device in chunks
    of ``chunk`` queries: anchor head ``head(x_q)[:, j]``, embedding head (and fixed graphs)
    the distance to ``x_j``'s code, computed once."""
    dev = next(model.parameters()).device
    ids = torch.arange(xtr.size(0), device=dev)
    cols = (torch.cat([model.code(c.flatten(1).to(dev)) for c in xtr.split(4096)])
            if model.test_distances else None)
    return torch.cat([model.dist(model.code(q.flatten(1).to(dev)), cols, ids).cpu() for q in xq.split(chunk)])


@torch.no_grad()
def pixel_distances(xq: torch.Tensor, xtr: torch.Tensor, chunk: int = 512) -> torch.Tensor:
    return torch.cat([torch.cdist(xq[a:a + chunk].flatten(1), xtr) for a in range(0, xq.size(0), chunk)])


def class_match(idx: torch.Tensor, w: torch.Tensor, ytr: torch.Tensor, yq: torch.Tensor) -> tuple[float, float]:
    same = ytr[idx] == yq.unsqueeze(1)
    return float(same.double().mean()), float((w * same).sum(1).mean() / w.sum(1).mean())


def draw_grid(xq: torch.Tensor, yq: torch.Tensor, xtr: torch.Tensor, ytr: torch.Tensor, idx: torch.Tensor,
              w: torch.Tensor, *, show: int, dataset: str, title: str):
    """A matplotlib figure: one row per query ``xq [Q, C, H, W]`` with its ``show`` heaviest
    neighbours (``idx``/``w [Q, >= show]``, rows of ``xtr``), framed green when the neighbour
    has the query's class and red otherwise."""
    from tg_cnn2gnn.data import dataset_info
    info = dataset_info(dataset)
    mean = torch.tensor(info.mean).view(-1, 1, 1)
    std = torch.tensor(info.std).view(-1, 1, 1)

    def img(x: torch.Tensor):
        x = (x * std + mean).clamp(0, 1)
        return x[0].numpy() if x.size(0) == 1 else x.permute(1, 2, 0).numpy()

    plt = B.plt_setup()
    q = xq.size(0)
    fig, axes = plt.subplots(q, show + 1, figsize=(1.1 * (show + 1), 1.25 * q), squeeze=False)
    for r in range(q):
        ax = axes[r, 0]
        ax.imshow(img(xq[r]), cmap="gray")
        ax.set_title(f"query: class {int(yq[r])}", fontsize=6)
        for k in range(show):
            ax = axes[r, k + 1]
            j = int(idx[r, k])
            match = bool(ytr[j] == yq[r])
            ax.imshow(img(xtr[j]), cmap="gray")
            ax.set_title(f"p={float(w[r, k]):.3f} c{int(ytr[j])}", fontsize=6, color="green" if match else "red")
            for sp_ in ax.spines.values():
                sp_.set_edgecolor("green" if match else "red")
                sp_.set_linewidth(2)
        for ax in axes[r]:
            ax.set_xticks([])
            ax.set_yticks([])
    fig.suptitle(title, fontsize=7)
    fig.tight_layout()
    return fig


def main(argv: list[str] | None = None) -> int:
    p = B.parser(__doc__.split("\n\n")[0])
    p.add_argument("--n-queries", type=int, default=None)
    p.add_argument("--show", type=int, default=None, help="neighbours shown per query (<= s)")
    p.add_argument("--n-measure", type=int, default=None, help="test images for the statistics, 0 = all")
    args = B.finish_args(p.parse_args(argv), "neighbours", OVERRIDES, argv)
    rep = B.Report(args, f"Figure 3: learned neighbours on {args.dataset}")
    data = B.load_data(args)
    seed = args.seeds[0]
    teacher, _ = B.get_teacher(args, data, seed)
    model = B.build_model("cnn2gnn", args, data, seed=seed)
    untrained = copy.deepcopy(model).eval()
    d, s = B.train_model(args, data, model, teacher, seed=seed, label="CNN2GNN", test_mechanisms=("bank",))
    model.eval()
    xtr, ytr = data.x[data.tr], data.y[data.tr]
    sp = min(args.s, data.n_train - 1)

    # ---- statistics over many test images
    nm = data.yt.numel() if not args.n_measure else min(args.n_measure, data.yt.numel())
    xm, ym = data.xt[:nm], data.yt[:nm]
    stats = []
    for name, dist in (("learned head (trained)", learned_distances(model, xm, xtr)),
                       ("learned head (untrained, random init)", learned_distances(untrained, xm, xtr)),
                       ("pixel Euclidean (EucGNN graph)", pixel_distances(xm, xtr.flatten(1)))):
        idx, w = neighbours(dist, sp)
        frac, mass = class_match(idx, w, ytr, ym)
        stats.append({"graph": name, "s": sp, "n_queries": nm, "same_class_fraction": frac,
                      "same_class_weight_mass": mass})
        B.log(args, f"{name}: {100 * frac:.1f}% of the {sp} neighbours share the class ({100 * mass:.1f}% of weight)")
    rep.csv("neighbours_stats.csv", stats)

    # ---- queries: one test image per class
    g = torch.Generator().manual_seed(seed)
    classes = torch.randperm(data.num_classes, generator=g)[:args.n_queries].sort().values
    q = []
    for c in classes.tolist():
        pos = (data.yt == c).nonzero().flatten()
        q.append(int(pos[torch.randint(pos.numel(), (1,), generator=g)]))
    qi = torch.tensor(q)
    idx, w = neighbours(learned_distances(model, data.xt[qi], xtr), sp)
    qrows = []
    for r, t in enumerate(q):
        for k in range(sp):
            qrows.append({"query_test_index": t, "query_class": int(data.yt[t]), "rank": k + 1,
                          "neighbour_train_index": int(data.tr[idx[r, k]]), "neighbour_class": int(ytr[idx[r, k]]),
                          "weight": float(w[r, k]), "class_match": bool(ytr[idx[r, k]] == data.yt[t])})
    rep.csv("neighbours_queries.csv", qrows)

    fig = draw_grid(data.xt[qi], data.yt[qi], xtr, ytr, idx, w, show=min(args.show, sp), dataset=args.dataset,
                    title=f"{args.dataset}: neighbours of the learned head (s={sp}, {min(args.show, sp)} heaviest "
                          "shown; green = same class)")
    show = min(args.show, sp)
    rep.figure(fig, "neighbours.png", f"Neighbour grid: {len(q)} queries x {show} neighbours, s={sp}", dpi=70)

    rep.add(B.settings_line(args, data) + f" Queries: test images {q} (classes {classes.tolist()}).")
    rep.add(B.md_table(["graph", "s", "test queries", "% neighbours with the query's class",
                        "% Eq. 3 weight on the query's class"],
                       [[r["graph"], r["s"], r["n_queries"], f"{100 * r['same_class_fraction']:.2f}",
                         f"{100 * r['same_class_weight_mass']:.2f}"] for r in stats])
            + "\n\nNeighbours are searched over all training samples (the anchor head has one output per "
              "training sample); the picture shows the heaviest ones per query.")
    per_q = []
    for r, t in enumerate(q):
        rs = [x for x in qrows if x["query_test_index"] == t]
        per_q.append([t, rs[0]["query_class"], sum(x["class_match"] for x in rs), len(rs),
                      f"{sum(x['weight'] for x in rs if x['class_match']):.3f}"])
    rep.add(B.md_table(["query (test index)", "class", "neighbours with its class", "s", "weight on its class"],
                       per_q))
    targets, details = B.core_targets(args, data, teacher, model, s["mean_train_time_per_epoch"], seed=seed)
    rep.targets(B.target_rows(targets), B.details_markdown(details))
    rep.write()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
