"""CNN2GNN on scikit-learn's 8x8 digits: the whole pipeline in under a minute on a CPU.

simple-cnn teacher -> CNN2GNN student (512-256 graph head, 2-layer GCN) -> test accuracy
under the bank and batch mechanisms, parameters, FLOPs and CPU latency. The digits ship
with scikit-learn: nothing to download.

    python examples/digits.py
    python examples/digits.py --epochs 100 --s 20 --tau 8
"""
import sys

from tg_cnn2gnn.pipeline import example_main

DEFAULTS = dict(teacher="simple-cnn", teacher_epochs=10, epochs=30, s=10, head_hidden=(512, 256), hidden=256,
                batch_size=100, lr=0.01, alpha=1.0, tau=4.0, mechanisms=("bank", "batch"), seed=0,
                out="runs/digits")

if __name__ == "__main__":
    sys.exit(example_main("digits", DEFAULTS, description=__doc__))
