"""Paper Figure 3 for a trained run directory: the learned neighbours of test images.

Loads the student of ``RUN_DIR`` (written by ``cnn2gnn distill`` or the main job) and, for
one test image per class, searches its ``s`` nearest training samples under the learned
distance over the *whole* training split (Eq. 3 weights), then draws them framed green
(same class) or red. Beside the picture, ``tg_cnn2gnn.graph_class_consistency`` on
``--n-measure`` test images against a ``--bank-size`` bank (the figure the main job
reports) and against the whole training split, with the raw-pixel k-NN reference.

    python benchmarks/run_neighbours.py runs/fashion-mnist-main/recommended
    python benchmarks/run_neighbours.py RUN --out benchmarks/results/figures/neighbours_main.png
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from neighbours import draw_grid, learned_distances, neighbours  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    from tg_cnn2gnn import graph_class_consistency
    from tg_cnn2gnn.run.serve import load_run_model
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("run", help="run directory of a graph student")
    p.add_argument("--which", choices=("last", "best"), default="last")
    p.add_argument("--show", type=int, default=8, help="neighbours drawn per query (<= s)")
    p.add_argument("--n-measure", type=int, default=10000, help="test images for the statistics")
    p.add_argument("--bank-size", type=int, default=1000, help="bank of the main job's consistency figure")
    p.add_argument("--seed", type=int, default=0, help="seed of the query draw")
    p.add_argument("--out", type=Path, default=None, help="PNG to write (default RUN/neighbours.png)")
    args = p.parse_args(argv)
    run = load_run_model(args.run, which=args.which)
    model, data, s = run.model.eval(), run.data, run.settings
    xtr, ytr = data.x_train, data.y_train
    xte, yte = data.x_test, data.y_test
    n = min(args.n_measure, yte.numel())
    lines = [f"Run: `{args.run}` ({args.which} weights; {s.head_form} head, s = {model.s}); "
             f"{n} test images; training split {ytr.numel()}.", "",
             "| bank | learned | learned (Eq. 3 weighted) | raw-pixel kNN | chance |", "|---|---|---|---|---|"]
    for bank in (args.bank_size, ytr.numel()):
        r = graph_class_consistency(model, xte[:n], yte[:n], xtr, ytr, bank_size=min(bank, ytr.numel()))
        lines.append(f"| {r['bank_size']} | {100 * r['learned']:.2f}% | {100 * r['learned_weighted']:.2f}% | "
                     f"{100 * r['raw']:.2f}% | {100 * r['chance']:.2f}% |")
    g = torch.Generator().manual_seed(args.seed)
    q = []
    for c in sorted(set(yte.tolist())):
        pos = (yte == c).nonzero().flatten()
        q.append(int(pos[torch.randint(pos.numel(), (1,), generator=g)]))
    qi = torch.tensor(q)
    sp = min(model.s, ytr.numel() - 1)
    idx, w = neighbours(learned_distances(model, xte[qi], xtr), sp)
    show = min(args.show, sp)
    same = (ytr[idx] == yte[qi].unsqueeze(1)).float().mean().item()
    fig = draw_grid(xte[qi], yte[qi], xtr, ytr, idx, w, show=show, dataset=s.dataset,
                    title=f"{s.dataset}: learned neighbours over all {ytr.numel()} training images "
                          f"({s.head_form} head, s={sp}, {show} heaviest shown; green = same class)")
    out = args.out or Path(args.run) / "neighbours.png"
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=70, bbox_inches="tight")
    lines += ["", f"Picture: {out} (test images {q}, one per class; {100 * same:.1f}% of their {sp} "
                  f"neighbours share the class)."]
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
