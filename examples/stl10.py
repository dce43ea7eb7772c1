"""CNN2GNN on STL-10 (96x96 colour images, 5,000 labelled training images).

Defaults follow the paper (§4.1): graph head 512-256, two-layer GCN, s = 50, alpha = 1,
batch 100, 200 epochs, lr 0.01, with a ResNet-34 teacher trained with crop/flip
augmentation. Each image is a 27,648-feature node, so the head's first layer alone has
14 M weights; a GPU is advised for the defaults.

    python examples/stl10.py --root data
    python examples/stl10.py --root data --teacher resnet18 --teacher-epochs 5 --epochs 10 --s 10 \\
        --head-hidden 256 --threads 2                          # a CPU look

Data: the binaries (stl10_binary/) under --root, or add --download (2.6 GB).
"""
import sys

from tg_cnn2gnn.pipeline import example_main

DEFAULTS = dict(teacher="resnet34", teacher_epochs=200, teacher_lr=0.05, augment="teacher", epochs=200, s=50,
                head_hidden=(512, 256), hidden=256, batch_size=100, lr=0.01, alpha=1.0, tau=4.0,
                mechanisms=("bank", "batch"), seed=0)

if __name__ == "__main__":
    sys.exit(example_main("stl10", DEFAULTS, description=__doc__))
