"""CNN2GNN on Mini-ImageNet (the paper's Table 2, 100 classes, 84x84).

Defaults follow the paper (§4.1): graph head 512-256, two-layer GCN, s = 50, alpha = 1,
batch 100, 200 epochs, lr 0.01, with a ResNet-34 teacher trained with crop/flip
augmentation (--teacher resnet152 for the table's deepest teacher). The paper notes that
Mini-ImageNet likes a larger s and a high temperature: try --s 100 --tau 16 --kd-scale none.

    python examples/mini_imagenet.py --root data               # GPU, hours
    python examples/mini_imagenet.py --root data --subset 5000 --test-subset 1000 \\
        --teacher resnet18 --teacher-epochs 3 --epochs 5 --s 10 --head-hidden 256 --threads 2

Data (never downloaded): under --root, mini-imagenet/images/ with Ravi & Larochelle's
train/val/test.csv, or one folder per split with a folder per class; see
tg_cnn2gnn.data.MiniImageNet.

Settings: configs/mini-imagenet/main.yaml (flags override it; --config adds another file).
"""
import sys
from pathlib import Path

from tg_cnn2gnn.cli import example_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "mini-imagenet" / "main.yaml"

if __name__ == "__main__":
    sys.exit(example_main(CONFIG, description=__doc__))
