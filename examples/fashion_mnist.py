"""CNN2GNN on Fashion-MNIST, offline, on a CPU: the README's main job (issue 12).

One simple-cnn teacher (width 16, 3 epochs) is trained on 54,000 images; then, sharing it,
three students are distilled and tested on the 10,000 test images, and ONE side-by-side table
is printed (accuracy last and validation-selected, class-consistency of the learned graph vs
raw-pixel neighbours, FLOPs and latency per sample):

- recommended: configs/fashion-mnist/main.yaml (embedding graph head with normalised codes,
  batch graph, relation term 5, NCA 3, s = 10, 30 epochs, dropout 0.2, bank of 1,000), also
  tested with its graph's label vote (bank = the whole training split: an extra table row);
- paper-preset: configs/fashion-mnist/paper.yaml (anchor head, Eq. 4 over the training set,
  s = 50, lr 0.01) on a reduced budget: 8 of its 200 epochs on a 10,000-image training subset;
- kd-mlp: Hinton KD into an MLP with the recommended student's widths and budget;
- kd-mlp-paper-budget: the same with the paper-preset row's widths and budget.

    python examples/fashion_mnist.py --threads 2
    python examples/fashion_mnist.py --subset 6000 --teacher-epochs 1 --epochs 3 --paper-epochs 1   # a quick look
    python examples/fashion_mnist.py --seed 1 --out runs/fashion-mnist-main-seed1       # another seed

One configuration alone: python -m tg_cnn2gnn distill --config configs/fashion-mnist/main.yaml
(configs/fashion-mnist/batch-anchor.yaml is the previous main job). Data: Debian's
dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or --root. Run directories:
--out (default runs/fashion-mnist-main), one folder per row, compare.md beside them.
"""
import argparse
import sys
from pathlib import Path

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "fashion-mnist"
CONFIG = CONFIGS / "main.yaml"


def main(argv=None) -> int:
    from tg_cnn2gnn.run.commands import main_job_entries, run_compare
    from tg_cnn2gnn.run.config import SettingsError, validate
    from tg_cnn2gnn.run.configfile import settings_from_file
    p = argparse.ArgumentParser(prog="examples/fashion_mnist.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", help="Fashion-MNIST folder")
    p.add_argument("--out", default="runs/fashion-mnist-main", help="folder of the run directories")
    p.add_argument("--threads", type=int, help="torch CPU threads")
    p.add_argument("--device", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--subset", type=int, help="class-stratified training subset for every row")
    p.add_argument("--test-subset", type=int, help="class-stratified test subset")
    p.add_argument("--epochs", type=int, help="epochs of the recommended student and the KD-MLP")
    p.add_argument("--teacher-epochs", type=int, help="teacher epochs")
    p.add_argument("--paper-epochs", type=int, default=8, help="epochs of the paper-preset row (default 8)")
    p.add_argument("--paper-subset", type=int, default=10000,
                   help="training subset (and pool) of the paper-preset row (default 10000; 0 = all)")
    p.add_argument("--seed", type=int, help="seed of every row (initialisation, shuffling; default 0)")
    p.add_argument("--no-measure", dest="measure", action="store_false", help="skip latency measurements")
    args = p.parse_args(argv)
    try:
        changes = {k: v for k, v in (("root", args.root), ("threads", args.threads), ("device", args.device),
                                     ("subset", args.subset), ("test_subset", args.test_subset),
                                     ("epochs", args.epochs), ("teacher_epochs", args.teacher_epochs),
                                     ("seed", args.seed))
                   if v is not None}
        recommended = validate(settings_from_file(CONFIG, "example", **changes, measure=args.measure))
        paper = settings_from_file(CONFIGS / "paper.yaml", "example")
        entries, notes = main_job_entries(recommended, paper, paper_epochs=args.paper_epochs,
                                          paper_subset=args.paper_subset or None)
        result = run_compare(entries, out=args.out, notes=notes)
    except (SettingsError, FileNotFoundError, ValueError, TypeError) as e:
        print(f"examples/fashion_mnist.py: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    print()
    print(result["table"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
