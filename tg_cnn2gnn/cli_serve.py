"""``cnn2gnn export`` and ``cnn2gnn predict``: flags over :mod:`tg_cnn2gnn.run.serve`."""
from __future__ import annotations

import argparse
import sys
from typing import Any

from tg_cnn2gnn.run.config import WHICH_CHOICES


def add_serve_commands(sub: Any, subs: dict[str, argparse.ArgumentParser], formatter: Any) -> None:
    """Add the ``export`` and ``predict`` sub-parsers to ``sub`` (and record them in ``subs``)."""
    p = sub.add_parser("export", formatter_class=formatter,
                       help="freeze a distilled run into a predictor file (bank precomputed)",
                       description="Build the frozen-bank predictor of a run (the bank's codes, graph and layer "
                                   "states computed once; a call does only a test sample's own work) and write it: "
                                   "FILE ending in .pt2 is a torch.export program that runs without the training "
                                   "code; any other name is a safe checkpoint (loading never executes code).")
    p.add_argument("run", metavar="RUN_DIR", help="run directory of `cnn2gnn distill` (or a checkpoint file in one)")
    p.add_argument("--out", required=True, metavar="FILE", help="predictor file to write (.pt2: torch.export)")
    p.add_argument("--which", choices=WHICH_CHOICES, default="last", help="last or best-validation weights")
    p.add_argument("--bank-size", type=int, default=None, metavar="N",
                   help="training samples in the bank (default: the run's; up to the whole training set)")
    p.add_argument("--seed", type=int, default=None, help="seed of the bank draw (default: the run's eval seed)")
    p.add_argument("--deterministic", action="store_true",
                   help="bit-identical logits under any batching (slower when batched)")
    p.add_argument("--search", choices=("exact", "ivf"), default="exact",
                   help="neighbour search over the bank: exact (default) or ivf, an approximate inverted file "
                        "of k-means lists for large banks")
    p.add_argument("--nlist", type=int, default=None, metavar="N",
                   help="ivf: k-means lists (default: about 4 sqrt(bank size))")
    p.add_argument("--nprobe", type=int, default=None, metavar="N",
                   help="ivf: lists searched per image (default: about sqrt(nlist); nlist = exact)")
    p.add_argument("--label-vote", type=float, default=0.0, metavar="BETA",
                   help="weight of the learned graph's label vote (the bank's labels are stored in the file; "
                        "0 = the student alone, the default); a bank of the whole training set suits it")
    p.add_argument("--root", default=None, help="data folder, if the run's is no longer valid")
    subs["export"] = p

    p = sub.add_parser("predict", formatter_class=formatter, help="top classes of image files",
                       description="Predict PNG/JPEG images of any size (resized and normalised the way the run's "
                                   "dataset was) or .npy batches with a run directory or an exported predictor. "
                                   "Unreadable files are reported on stderr and the others still predicted.")
    p.add_argument("source", metavar="RUN_DIR_OR_FILE", help="run directory, or a file of `cnn2gnn export`")
    p.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, ...) or .npy arrays")
    p.add_argument("--top", type=int, default=3, metavar="K", help="classes shown per image (default: 3)")
    p.add_argument("--which", choices=WHICH_CHOICES, default="last", help="last or best-validation weights")
    p.add_argument("--root", default=None, help="data folder, if the run's is no longer valid")
    subs["predict"] = p


def run_serve_command(args: argparse.Namespace) -> int:
    """Run ``export`` or ``predict``; returns the exit code (1 if some image could not be read)."""
    from tg_cnn2gnn.inference.label_vote import check_label_vote
    from tg_cnn2gnn.run.config import SettingsError
    from tg_cnn2gnn.run.serve import export_run_dir, predict_files
    if args.command == "export":
        if args.bank_size is not None and args.bank_size < 1:
            raise SettingsError(f"--bank-size={args.bank_size}: must be >= 1")
        for flag in ("nlist", "nprobe"):
            value = getattr(args, flag)
            if value is not None and args.search != "ivf":
                raise SettingsError(f"--{flag}={value}: only with --search ivf")
            if value is not None and value < 1:
                raise SettingsError(f"--{flag}={value}: must be >= 1")
        try:
            check_label_vote(args.label_vote, "--label-vote")
        except ValueError as e:
            raise SettingsError(str(e)) from None
        path = export_run_dir(args.run, args.out, which=args.which, bank_size=args.bank_size, seed=args.seed,
                              deterministic=args.deterministic, root=args.root, search=args.search,
                              nlist=args.nlist, nprobe=args.nprobe, label_vote=args.label_vote)
        print(f"wrote {path}")
        return 0
    if args.top < 1:
        raise SettingsError(f"--top={args.top}: must be >= 1")
    result = predict_files(args.source, args.images, k=args.top, which=args.which, root=args.root)
    for line in result.lines:
        print(line)
    for line in result.errors:
        print(f"cnn2gnn predict: {line}", file=sys.stderr)
    return 1 if result.errors else 0
