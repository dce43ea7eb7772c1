"""CNN2GNN on CIFAR-10 with the paper's settings (ResNet-34 teacher, s = 50, 200 epochs).

The defaults are the paper's (§4.1: graph head 512-256, two-layer GCN, s = 50, alpha = 1,
batch 100, 200 epochs, lr 0.01) with a ResNet-34 teacher trained with crop/flip
augmentation; that takes a GPU. Scale them down with flags for a CPU:

    python examples/cifar10.py --root data                     # GPU, hours
    python examples/cifar10.py --root data --subset 5000 --teacher resnet18 --teacher-epochs 5 \\
        --epochs 10 --s 10 --threads 2                         # a CPU look, ~30 min

Data: the python pickles (cifar-10-batches-py/) under --root, or add --download.

Settings: configs/cifar10/main.yaml (flags override it; --config adds another file).
"""
import sys
from pathlib import Path

from tg_cnn2gnn.cli import example_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cifar10" / "main.yaml"

if __name__ == "__main__":
    sys.exit(example_main(CONFIG, description=__doc__))
