"""CNN2GNN on Fashion-MNIST, offline, on a CPU: the README's main job.

A small CNN teacher (simple-cnn of width 16, 3 epochs) is pre-trained on 54,000 images,
then distilled into a two-layer GCN student behind the paper's 512-256 graph head
(Algorithm 2), and both are tested on the 10,000 test images. The settings are the
paper's scaled to a few minutes on 2 CPU cores (3.2 min measured on an idle machine, teacher included): s = 10 instead
of 50, 15 epochs instead of 200, lr 0.005. The teacher is cached in the run directory
(runs/fashion-mnist/teacher) and reused by a second run with the same teacher settings.

    python examples/fashion_mnist.py --threads 2
    python examples/fashion_mnist.py --subset 6000 --teacher-epochs 1 --epochs 3   # a 2-minute look
    python examples/fashion_mnist.py --s 50 --epochs 200 --lr 0.01 --teacher-width 32 --teacher-epochs 30
                                                               # the paper's student settings

Data: Debian's dataset-fashion-mnist (/usr/share/datasets/fashion-mnist) or --root.
Every option: python examples/fashion_mnist.py --help.

Settings: configs/fashion-mnist/main.yaml (flags override it; --config adds another file).
"""
import sys
from pathlib import Path

from tg_cnn2gnn.cli import example_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "fashion-mnist" / "main.yaml"

if __name__ == "__main__":
    sys.exit(example_main(CONFIG, description=__doc__))
