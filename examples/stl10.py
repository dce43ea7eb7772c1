"""CNN2GNN on STL-10 (96x96 colour images, 5,000 labelled training images).

Defaults follow the paper (§4.1): graph head 512-256, two-layer GCN, s = 50, alpha = 1,
batch 100, 200 epochs, lr 0.01, with a ResNet-34 teacher trained with crop/flip
augmentation. Each image is a 27,648-feature node, so the head's first layer alone has
14 M weights; a GPU is advised for the defaults.

    python examples/stl10.py --root data
    python examples/stl10.py --root data --teacher resnet18 --teacher-epochs 5 --epochs 10 --s 10 \\
        --head-hidden 256 --threads 2                          # a CPU look

Data: the binaries (stl10_binary/) under --root, or add --download (2.6 GB).

Settings: configs/stl10/main.yaml (flags override it; --config adds another file).
"""
import sys
from pathlib import Path

from tg_cnn2gnn.cli import example_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "stl10" / "main.yaml"

if __name__ == "__main__":
    sys.exit(example_main(CONFIG, description=__doc__))
