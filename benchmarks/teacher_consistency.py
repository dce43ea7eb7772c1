"""How class-consistent are a teacher's own representations? The ceiling next to the learned graph.

For each run directory of `cnn2gnn distill`, the run's teacher (the file in the run, or its
`teacher_checkpoint`) embeds the run's test images and a bank of 1,000 training images
(`select_bank`, the run's eval seed: the bank of the run's class-consistency diagnostic), and
each test image's s nearest bank images (s of the run) are found under four representations:
the input of the teacher's last linear layer (its penultimate features), its logits, its
class probabilities, and the raw pixels, each by Euclidean and by cosine distance. Printed:
the share of those neighbours with the test image's class (class-consistency, as
`tg_cnn2gnn.graph_class_consistency` measures the learned graph) and the accuracy of their
majority vote (an s-NN classifier).

    python benchmarks/teacher_consistency.py runs/fashion-mnist-main/recommended
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from tg_cnn2gnn.distill.teacher import load_teacher
from tg_cnn2gnn.inference import select_bank
from tg_cnn2gnn.run.factories import build_teacher_model
from tg_cnn2gnn.run.serve import load_run_model

from _report import run_dirs_args  # noqa: E402  (benchmarks/ is the script's folder)

BANK = 1000


@torch.no_grad()
def representations(teacher: nn.Module, x: torch.Tensor) -> dict[str, torch.Tensor]:
    """``{"penultimate features", "logits", "class probabilities", "raw pixels"}`` of images
    ``x [N, C, H, W]``, each ``[N, D]``; the features are the input of the teacher's last
    ``nn.Linear`` (caught by a hook)."""
    last = [m for m in teacher.modules() if isinstance(m, nn.Linear)][-1]
    seen: list[torch.Tensor] = []
    hook = last.register_forward_pre_hook(lambda _m, args: seen.append(args[0].flatten(1)))
    try:
        logits = torch.cat([teacher(c) for c in x.split(1000)])
    finally:
        hook.remove()
    return {"penultimate features": torch.cat(seen), "logits": logits,
            "class probabilities": logits.softmax(1), "raw pixels": x.flatten(1)}


def consistency(q: torch.Tensor, b: torch.Tensor, yq: torch.Tensor, yb: torch.Tensor, s: int,
                cosine: bool) -> tuple[float, float]:
    """(share of the ``s`` nearest bank rows with the query's class, ``s``-NN majority accuracy)."""
    if cosine:
        q, b = F.normalize(q, dim=1), F.normalize(b, dim=1)
    idx = torch.cdist(q, b).topk(s, dim=1, largest=False).indices
    same = (yb[idx] == yq[:, None]).float().mean().item()
    knn = (torch.mode(yb[idx], 1).values == yq).float().mean().item()
    return same, knn


def main(argv: list[str] | None = None) -> int:
    args = run_dirs_args(__doc__, "teacher_consistency.py", argv)
    print("| run | teacher test acc | representation | class-consistency, Euclidean (cosine) | s-NN accuracy, "
          "Euclidean (cosine) |")
    print("|---|---|---|---|---|")
    for path in args.runs:
        run = load_run_model(path, which=args.which)
        d, st = run.data, run.settings
        own = run.run_dir.teacher_pt                   # trained in the run, else the file it loaded
        teacher = load_teacher(build_teacher_model(st, d.info),
                               own if own.is_file() else run.run_dir.read_settings()[0].teacher_checkpoint)
        teacher.eval()
        bank = select_bank(d.n_train, min(BANK, d.n_train), st.eval_seed)
        s = min(st.s, bank.numel() - 1)
        rq, rb = representations(teacher, d.x_test), representations(teacher, d.x_train[bank])
        acc = (rq["logits"].argmax(1) == d.y_test).float().mean().item()
        for name in rq:
            (c, k), (cc, kc) = (consistency(rq[name], rb[name], d.y_test, d.y_train[bank], s, cos)
                                for cos in (False, True))
            print(f"| {path} | {100 * acc:.2f} % | {name} | {100 * c:.2f} % ({100 * cc:.2f} %) "
                  f"| {100 * k:.2f} % ({100 * kc:.2f} %) |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
