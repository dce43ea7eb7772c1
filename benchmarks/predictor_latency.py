"""Issue 13: latency and FLOPs of ``bank`` inference, old ``predict`` vs the frozen-bank predictor.

Main-job shapes on Fashion-MNIST (28x28 grayscale, 10 classes): the student is the main
job's CNN2GNN (anchor head 784-512-256 over 54,000 training samples, s = 10, 2-layer GCN
of width 256); the teachers are the main job's ``simple-cnn`` and a ResNet-18 of the
paper's kind (small-image stem). Weights are untrained (``--train-steps`` trains the
student briefly on real images; timing does not depend on it). Teacher and student are
timed in the same process with the same thread count; each figure is the median of
``--repeats`` calls after a warm-up call.

    python benchmarks/predictor_latency.py                 # writes benchmarks/results/predictor_latency.md
"""
from __future__ import annotations

import argparse
import os
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from tg_cnn2gnn.data.datasets import load_tensors
from tg_cnn2gnn.inference import export_predictor, load_exported
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead
from tg_cnn2gnn.pipeline import count_flops, hardware, median_time
from tg_cnn2gnn.teachers import build_teacher

OUT = Path(__file__).resolve().parent / "results" / "predictor_latency.md"


def _args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="torch threads (default: 2, as the main job)")
    p.add_argument("--repeats", type=int, default=21, help="timed calls per batch-of-1 figure (median)")
    p.add_argument("--batched-repeats", type=int, default=5, help="timed calls per batched figure (median)")
    p.add_argument("--batch", type=int, default=1000, help="batched size (test images)")
    p.add_argument("--num-train", type=int, default=54000, help="training samples (anchor head rows)")
    p.add_argument("--bank-sizes", type=int, nargs="+", default=[100, 1000, 10000, 54000])
    p.add_argument("--old-max-bank", type=int, default=1000,
                   help="largest bank timed with the old predict (its bank part is O(|B|^2))")
    p.add_argument("--resnet-repeats", type=int, default=1, help="repeats of the batched ResNet-18 call")
    p.add_argument("--train-steps", type=int, default=0, help="brief student training steps (0: untrained)")
    p.add_argument("--skip-old-paired", action="store_true", help="leave old predict out of the interleaved timing")
    p.add_argument("--out", type=Path, default=OUT)
    return p.parse_args(argv)


def _ms(fn, repeats: int, per: int = 1) -> float:
    return 1e3 * median_time(fn, repeats=repeats, warmup=1) / per


def _paired_ms(fns: dict, repeats: int) -> dict[str, float]:
    """Batch-of-1 medians (ms) of several callables timed *interleaved* (one call of each per
    round), so that load from other processes hits all of them alike."""
    import statistics
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: 1e3 * statistics.median(v) for k, v in times.items()}


def _student(num_train: int, x: torch.Tensor, y: torch.Tensor, steps: int) -> CNN2GNN:
    torch.manual_seed(0)
    model = CNN2GNN(LearnedGraphHead(784, num_train, s=10, hidden_channels=(512, 256)),
                    GraphStudent(784, 256, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.005)
    g = torch.Generator().manual_seed(0)
    for _ in range(steps):
        idx = torch.randperm(num_train, generator=g)[:100]
        loss = F.cross_entropy(model(x[idx], idx), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


@torch.no_grad()
def main(argv=None) -> None:
    args = _args(argv)
    torch.set_num_threads(args.threads)
    t_start = time.time()
    load_start = os.getloadavg()[0]
    x_train, y_train = load_tensors("fashion-mnist", "train")
    x_test, _ = load_tensors("fashion-mnist", "test")
    train_x, y = x_train[:args.num_train].flatten(1), y_train[:args.num_train]
    test_x = x_test.flatten(1)
    one, many = test_x[:1], test_x[:args.batch]
    rows: list[tuple[str, ...]] = []

    def row(name, f1, t1, tb, note=""):
        rows.append((name, f"{f1 / 1e6:.2f} M" if f1 else "–", f"{t1:.3f} ms" if t1 else "–",
                     f"{tb:.4f} ms" if tb else "–", note))

    teachers = {"teacher simple-cnn (main job)": build_teacher("simple-cnn", 10, 1, 28).eval(),
                "teacher ResNet-18 (paper's kind, small-image stem)": build_teacher("resnet18", 10, 1, 28).eval()}
    imgs1, imgsb = x_test[:1], x_test[:args.batch]
    ref = {}
    for name, t in teachers.items():
        reps = args.resnet_repeats if "ResNet" in name else args.repeats
        f1 = count_flops(lambda: t(imgs1))
        t1 = _ms(lambda: t(imgs1), args.repeats)
        tb = _ms(lambda: t(imgsb), min(reps, args.batched_repeats), args.batch)
        ref[name] = (t1, tb)
        row(name, f1, t1, tb)

    with torch.enable_grad():
        model = _student(args.num_train, train_x, y, args.train_steps)
    b0 = args.bank_sizes[0]
    f_old = count_flops(lambda: model.predict(one, train_x=train_x, bank_size=b0))
    t_old1 = _ms(lambda: model.predict(one, train_x=train_x, bank_size=b0), args.repeats)
    t_oldb = _ms(lambda: model.predict(many, train_x=train_x, bank_size=b0), 3, args.batch)
    row(f"student: old predict(mechanism='bank'), bank {b0}", f_old, t_old1, t_oldb,
        "bank part recomputed per call, row-wise products")
    growth = []
    for bank_size in args.bank_sizes:
        t0 = time.time()
        pred = model.bank_predictor(train_x, bank_size=bank_size)
        build = time.time() - t0
        for det in (False, True):
            pred.deterministic = det                    # a runtime flag; the bank state is the same
            f1 = count_flops(lambda: pred(one))
            t1 = _ms(lambda: pred(one), args.repeats)
            tb = (_ms(lambda: pred(many), args.batched_repeats, args.batch)
                  if bank_size in (b0, max(args.bank_sizes)) else None)
            mode = "deterministic" if det else "fast"
            row(f"student: BankPredictor ({mode}), bank {bank_size}", f1, t1, tb, f"built once in {build:.2f} s")
            if not det:
                old1 = (_ms(lambda: model.predict(one, train_x=train_x, bank_size=bank_size), 3)
                        if bank_size <= args.old_max_bank else None)
                growth.append((bank_size, f1, t1, old1))

    # batch of 1, interleaved: the fair same-process comparison under a shared CPU
    pred = model.bank_predictor(train_x, bank_size=b0)
    det = model.bank_predictor(train_x, bank_size=b0, deterministic=True)
    old = ((lambda: model.predict(one, train_x=train_x, bank_size=b0)) if not args.skip_old_paired else None)
    fns = {"simple-cnn teacher": lambda: teachers["teacher simple-cnn (main job)"](imgs1),
           "ResNet-18 teacher": lambda: teachers["teacher ResNet-18 (paper's kind, small-image stem)"](imgs1),
           f"predictor fast, bank {b0}": lambda: pred(one),
           f"predictor deterministic, bank {b0}": lambda: det(one)}
    if old is not None:
        fns[f"old predict(bank), bank {b0}"] = old
    paired = _paired_ms(fns, args.repeats)

    # exported file == in-memory predictor on the whole test set
    pred = model.bank_predictor(train_x, bank_size=b0)
    with tempfile.TemporaryDirectory() as tmp:
        path = export_predictor(pred, Path(tmp) / "p.pt2", test_x[:4])
        exported, _ = load_exported(path)
        size_kb = path.stat().st_size / 1024
        a = torch.cat([pred(c) for c in test_x.split(1000)])
        b = torch.cat([exported(c) for c in test_x.split(1000)])
        t_exp1 = _ms(lambda: exported(one), args.repeats)
    diff = (a - b).abs().max().item()
    same_top1 = bool((a.argmax(1) == b.argmax(1)).all())
    old_ref = model.predict(test_x[:1000], train_x=train_x, bank_size=b0)
    diff_old = (old_ref - a[:1000]).abs().max().item()

    simple1, simpleb = ref["teacher simple-cnn (main job)"]
    fast_b0 = next(r for r in rows if r[0] == f"student: BankPredictor (fast), bank {b0}")
    hw = hardware()
    lines = [
        "# Frozen-bank predictor: latency and FLOPs (issue 13)", "",
        "Command: `" + " ".join(["python", "benchmarks/predictor_latency.py", *sys.argv[1:]]) + "`", "",
        f"Hardware: {hw['cpu']}, {hw['cpu_count']} logical CPUs, torch {hw['torch']}, "
        f"{args.threads} torch threads, CPU, eval mode, no grad. Run {dt.datetime.utcnow():%d %b %Y %H:%M} UTC, "
        f"{time.time() - t_start:.0f} s in all. 1-minute load average {load_start:.1f} at the start, "
        f"{os.getloadavg()[0]:.1f} at the end (other jobs shared the CPUs when it is above the thread count: "
        "absolute times are then inflated, the same-process ratios less so).", "",
        f"Models: main-job student (anchor head 784-512-256 over {args.num_train} training samples, s = 10, "
        f"2-layer GCN width 256; {'untrained' if not args.train_steps else f'{args.train_steps} Adam steps'}), "
        "Fashion-MNIST images; teachers untrained (timing only). Median of "
        f"{args.repeats} calls (batch of 1) or {args.batched_repeats} calls (batched) after one warm-up (old predict "
        f"batched: 3; ResNet-18 batched: {min(args.resnet_repeats, args.batched_repeats)}). "
        "FLOPs: torch.utils.flop_counter for one image (2 per multiply-add; gathers, top-k and "
        "element-wise ops count 0).", "",
        f"| model | FLOPs / call (1 image) | latency, batch of 1 | latency / image, batch of {args.batch} | note |",
        "|---|---|---|---|---|",
        *[f"| {' | '.join(r)} |" for r in rows], "",
        "Bank growth (fast mode, batch of 1):", "",
        "| bank size | predictor FLOPs / call | predictor latency | vs bank 100 | old predict latency |",
        "|---|---|---|---|---|",
        *[f"| {b} | {f / 1e6:.2f} M | {t:.3f} ms | {t / growth[0][2]:.2f}x | "
          f"{'–' if o is None else f'{o:.2f} ms'} |" for b, f, t, o in growth], "",
        f"Export (bank {b0}, torch.export `.pt2`, {size_kb:.0f} KiB): the exported program's logits on the "
        f"10,000 test images differ from the in-memory predictor's by at most {diff:.2e} "
        f"(same top-1 everywhere: {same_top1}); exported batch-1 latency {t_exp1:.3f} ms. "
        f"Predictor vs old predict(mechanism='bank') on 1,000 test images: max |diff| {diff_old:.2e}.", "",
        f"Batch of 1, timed interleaved (one call of each per round, {args.repeats} rounds, median), "
        "so that other processes' load hits all alike:", "",
        "| model | latency, batch of 1 | vs simple-cnn teacher | vs ResNet-18 teacher |", "|---|---|---|---|",
        *[f"| {k} | {v:.3f} ms | {v / paired['simple-cnn teacher']:.3f}x | {v / paired['ResNet-18 teacher']:.4f}x |"
          for k, v in paired.items()], "",
        f"Ratios of the sequential table (bank {b0}, fast): batch of 1 {float(fast_b0[2].split()[0]) / simple1:.2f}x the simple-cnn "
        f"teacher; batched {float(fast_b0[3].split()[0]) / simpleb:.2f}x the simple-cnn teacher per image.",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
