"""CNN2GNN on scikit-learn's 8x8 digits: the whole pipeline in under a minute on a CPU.

simple-cnn teacher -> CNN2GNN student (512-256 graph head, 2-layer GCN) -> test accuracy
under the bank and batch mechanisms, parameters, FLOPs and CPU latency. The digits ship
with scikit-learn: nothing to download.

    python examples/digits.py
    python examples/digits.py --epochs 100 --s 20 --tau 8

Settings: configs/digits/main.yaml (flags override it; --config adds another file).
"""
import sys
from pathlib import Path

from tg_cnn2gnn.cli import example_main

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "digits" / "main.yaml"

if __name__ == "__main__":
    sys.exit(example_main(CONFIG, description=__doc__))
