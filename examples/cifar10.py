"""CNN2GNN on CIFAR-10 with the paper's settings (ResNet-34 teacher, s = 50, 200 epochs).

The defaults are the paper's (§4.1: graph head 512-256, two-layer GCN, s = 50, alpha = 1,
batch 100, 200 epochs, lr 0.01) with a ResNet-34 teacher trained with crop/flip
augmentation; that takes a GPU. Scale them down with flags for a CPU:

    python examples/cifar10.py --root data                     # GPU, hours
    python examples/cifar10.py --root data --subset 5000 --teacher resnet18 --teacher-epochs 5 \\
        --epochs 10 --s 10 --threads 2                         # a CPU look, ~30 min

Data: the python pickles (cifar-10-batches-py/) under --root, or add --download.
"""
import sys

from tg_cnn2gnn.pipeline import example_main

DEFAULTS = dict(teacher="resnet34", teacher_epochs=200, teacher_lr=0.05, augment="teacher", epochs=200, s=50,
                head_hidden=(512, 256), hidden=256, batch_size=100, lr=0.01, alpha=1.0, tau=4.0,
                mechanisms=("bank", "batch"), seed=0)

if __name__ == "__main__":
    sys.exit(example_main("cifar10", DEFAULTS, description=__doc__))
