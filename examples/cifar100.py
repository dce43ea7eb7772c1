"""CNN2GNN on CIFAR-100 (the paper's Table 1): ResNet-34 teacher, s = 50, 200 epochs.

Defaults follow the paper (§4.1): graph head 512-256, two-layer GCN, s = 50, alpha = 1,
batch 100, 200 epochs, lr 0.01; the teacher (ResNet-34, as in the ResNet34-ResNet18
column) is trained here with crop/flip augmentation. Any other teacher of the table:
--teacher resnet50 / resnet101 / resnet152 / vgg13 / vgg16 / vgg19 / wrn-40-2.

    python examples/cifar100.py --root data                    # GPU, hours
    python examples/cifar100.py --root data --subset 10000 --teacher resnet18 --teacher-epochs 5 \\
        --epochs 10 --s 10 --threads 2                         # a CPU look

Data: the python pickles (cifar-100-python/) under --root, or add --download.

Settings: configs/cifar100/main.yaml (flags override it; --config adds another file).
"""
import sys
from pathlib import Path

from tg_cnn2gnn.cli import example_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "cifar100" / "main.yaml"

if __name__ == "__main__":
    sys.exit(example_main(CONFIG, description=__doc__))
