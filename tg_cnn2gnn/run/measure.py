r"""Cost and accuracy measures: the one place for FLOPs, latency, parameter counts, the
hardware description and test accuracy (the command line, the examples and the
benchmarks all use these).

**FLOPs** are counted by :class:`torch.utils.flop_counter.FlopCounterMode`: matrix products
and convolutions count two FLOPs per multiply-add, element-wise work (activations,
normalisation, pooling, the GCN's neighbour sums, Eq. 3's top-k) counts zero. Teacher: one
image. Student, ``bank`` (and ``one_by_one``): the *marginal* cost of one test sample joined
to its graph, ``F(predict 2 samples) - F(predict 1 sample)`` in one chunk; the bank's own part
is reported separately (``fixed_part``). Student, ``batch`` / ``direct``: one test batch of
``eval_batch_size`` samples divided by its size.

**Latency**: median wall time in eval mode without gradients, for one sample (a complete
``predict`` call) and per sample over up to 1,000 test samples. Costs are measured on the
CPU (a CPU copy of a model trained on a GPU).
"""
from __future__ import annotations

import contextlib
import os
import platform
import statistics
import time
from typing import Any, Callable, Sequence

import torch
from torch import Tensor, nn

def median_time(fn: Callable[[], Any], repeats: int = 3, warmup: int = 1) -> float:
    """Median wall time in seconds of ``repeats`` calls of ``fn`` after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def count_flops(fn: Callable[[], Any], *, grad: bool = False) -> int:
    """FLOPs of ``fn()`` counted by :class:`torch.utils.flop_counter.FlopCounterMode`; without
    gradients unless ``grad`` (a training step's forward + backward)."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.set_grad_enabled(grad), FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def _on_cpu(module: nn.Module) -> nn.Module:
    """``module`` itself when it lives on the CPU, else a CPU copy (costs are CPU costs)."""
    p = next(module.parameters(), None)
    if p is None or p.device.type == "cpu":
        return module
    return cpu_copy(module)


def cpu_copy(module: nn.Module) -> nn.Module:
    """An eval-mode copy of ``module`` on the CPU (CPU costs of a model trained anywhere)."""
    import copy
    return copy.deepcopy(module).cpu().eval()


def single_sample_seconds(fn: Callable[[Tensor], Any], x: Tensor, n: int = 50) -> float:
    """Mean wall time of ``fn`` on one sample at a time (latency), over the first ``n`` samples
    of ``x`` after one untimed call."""
    n = min(n, x.size(0))
    fn(x[:1])
    t0 = time.perf_counter()
    for i in range(n):
        fn(x[i:i + 1])
    return (time.perf_counter() - t0) / n


@torch.no_grad()
def measure_teacher(teacher: nn.Module, x_test: Tensor, *, latency: bool = True, batched: int = 256,
                    repeats: int = 20) -> dict[str, Any]:
    """Parameters, FLOPs per image and latency (ms per image: batch of 1, and batched)."""
    from tg_cnn2gnn.teachers import count_parameters, flops_per_sample
    teacher = _on_cpu(teacher)
    out: dict[str, Any] = {"params": count_parameters(teacher),
                           "flops_per_sample": flops_per_sample(teacher, tuple(x_test.shape[1:]))}
    if latency:
        dev = next(teacher.parameters()).device
        teacher.eval()
        one = x_test[:1].to(dev)
        many = x_test[:1000].to(dev)

        def single() -> None:
            teacher(one)
            _sync(dev)

        def batch() -> None:
            for a in range(0, many.size(0), batched):
                teacher(many[a:a + batched])
            _sync(dev)
        out["latency_ms_batch1"] = 1e3 * median_time(single, repeats, warmup=3)
        out["latency_ms_batched"] = 1e3 * median_time(batch, 3) / many.size(0)
        out["latency_batch_size"] = batched
    return out


@torch.no_grad()
def measure_student(model: nn.Module, train_x: Tensor, x_test: Tensor, *, mechanisms: Sequence[str],
                    bank_size: int = 100, eval_batch_size: int = 100, seed: int = 0, latency: bool = True,
                    repeats: int = 10) -> dict[str, Any]:
    """Parameters (head + student, student alone, head), FLOPs per test sample and latency per
    test sample for each mechanism (see the module docstring for how they are counted).

    Args:
        model: a trained :class:`~tg_cnn2gnn.nn.CNN2GNN` (or an MLP student: no head, ``params_head`` 0).
        train_x: ``[n_train, F]`` training features (row ``k`` = training id ``k``).
        x_test: ``[T, F]`` (or images) test samples.
    """
    from tg_cnn2gnn.teachers import count_parameters
    model = _on_cpu(model)
    model.eval()
    dev = next(model.parameters()).device
    train_x = train_x.to(dev)
    xt = x_test.flatten(1).to(dev)
    head = getattr(model, "head", None)
    out: dict[str, Any] = {"params_total": count_parameters(model), "params_student": count_parameters(model.student),
                           "params_head": count_parameters(head) if head is not None else 0, "flops": {},
                           "latency_ms": {}}
    bank_size = min(bank_size, train_x.size(0))

    def predict(x: Tensor, mechanism: str, **kw: Any) -> Tensor:
        return model.predict(x, mechanism=mechanism, train_x=train_x, bank_size=bank_size, seed=seed,
                             batch_size=eval_batch_size, **kw)

    predictor = _bank_predictor(model, train_x, bank_size, seed) if "bank" in mechanisms else None
    for mech in mechanisms:
        if mech == "bank" and predictor is not None:
            pred, build_s = predictor
            out["flops"][mech] = {"per_sample": count_flops(lambda: pred(xt[:1])), "fixed_part": None,
                                  "predictor_build_s": build_s,
                                  "counted_as": "one test sample through the frozen-bank predictor "
                                                "(model.bank_predictor: the bank's part is computed once)"}
            if latency:
                many = xt[:1000]
                out["latency_ms"][mech] = {
                    "batch1": 1e3 * median_time(lambda: (pred(xt[:1]), _sync(dev)), repeats, warmup=2),
                    "batched": 1e3 * median_time(lambda: (pred(many), _sync(dev)), 3) / many.size(0),
                    "batched_n": int(many.size(0)), "predictor": True}
            continue
        if mech in ("bank", "one_by_one"):
            one = count_flops(lambda: predict(xt[:1], mech, chunk_size=2))
            two = count_flops(lambda: predict(xt[:2], mech, chunk_size=2))
            marginal = two - one
            out["flops"][mech] = {"per_sample": marginal, "fixed_part": one - marginal, "single_call": one,
                                  "counted_as": "marginal cost of one test sample (F(2) - F(1)); fixed_part: "
                                                "the bank's own share, once per chunk of test samples"}
        else:
            b = min(eval_batch_size, xt.size(0))
            if b < 3:
                continue
            total = count_flops(lambda: predict(xt[:b], mech))
            out["flops"][mech] = {"per_sample": total / b, "batch": b,
                                  "counted_as": f"one test batch of {b} divided by {b}"}
        if latency:
            many = xt[:1000]
            lat: dict[str, Any] = {}
            if mech in ("bank", "one_by_one"):
                lat["batch1"] = 1e3 * median_time(lambda: (predict(xt[:1], mech), _sync(dev)), repeats, warmup=2)
            if many.size(0) >= 3:
                lat["batched"] = 1e3 * median_time(lambda: (predict(many, mech), _sync(dev)), 3) / many.size(0)
                lat["batched_n"] = int(many.size(0))
            out["latency_ms"][mech] = lat
    return out


def _bank_predictor(model: nn.Module, train_x: Tensor, bank_size: int, seed: int, *,
                    deterministic: bool = False) -> tuple[nn.Module, float] | None:
    """``(model.bank_predictor(train_x, ...), build seconds)``, or ``None`` for a model that has no
    predictor or a student conv it cannot freeze (then ``predict(mechanism="bank")`` is timed)."""
    build = getattr(model, "bank_predictor", None)
    if build is None:
        return None
    t0 = time.perf_counter()
    try:
        pred = build(train_x, bank_size=bank_size, seed=seed, deterministic=deterministic)
    except (ValueError, TypeError, NotImplementedError):
        return None
    return pred.eval(), time.perf_counter() - t0


def hardware() -> dict[str, Any]:
    """CPU model, cores, torch threads and versions (for the tables)."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    info = {"cpu": cpu, "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "torch": torch.__version__, "python": platform.python_version(), "platform": platform.platform()}
    if torch.cuda.is_available():
        info["cuda_device"] = torch.cuda.get_device_name(0)
    return info



def hardware_line() -> str:
    """One line for tables: CPU model (cores), GPU if any, torch version and threads."""
    hw = hardware()
    dev = f"GPU {hw['cuda_device']}" if hw.get("cuda_device") else "CPU"
    return (f"{hw['cpu']} ({hw['cpu_count']} cores), {dev}, torch {hw['torch']}, "
            f"{hw['torch_threads']} torch thread(s)")


def logits_accuracy(logits: Tensor, y: Tensor) -> float:
    """Share of rows of ``logits [T, C]`` whose arg-max is the label ``y [T]``."""
    return float((logits.argmax(-1).cpu() == y.cpu()).double().mean())


@torch.no_grad()
def predictor_accuracy(predict: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, chunk: int = 1000) -> float:
    """Share of the samples ``x [T, ...]`` (flattened) whose logits ``predict(rows)`` arg-max is
    ``y [T]``, predicted in chunks of ``chunk`` rows (a frozen-bank predictor, say)."""
    return logits_accuracy(torch.cat([predict(c) for c in x.flatten(1).split(chunk)]), y)


@torch.no_grad()
def student_accuracy(model: nn.Module, x_test: Tensor, y_test: Tensor, *, mechanism: str, train_x: Tensor,
                     batch_size: int = 100, bank_size: int = 100, seed: int = 0, predictor: bool = False) -> float:
    """Test accuracy of a student under ``mechanism`` (``model.predict`` on the model's device;
    ``predictor=True``: ``bank`` through the frozen-bank predictor, deterministic mode).

    Args:
        x_test: ``[T, F]`` or images ``[T, C, H, W]`` (flattened).
        train_x: ``[n_train, F]`` training features, row ``k`` = training sample ``k``.
    """
    dev = next(model.parameters()).device
    if predictor and mechanism == "bank":
        built = _bank_predictor(model, train_x.to(dev), min(bank_size, train_x.size(0)), seed, deterministic=True)
        if built is not None:
            return predictor_accuracy(built[0], x_test.to(dev), y_test)
    logits = model.predict(x_test.flatten(1).to(dev), mechanism=mechanism, train_x=train_x.to(dev),
                           batch_size=batch_size, bank_size=bank_size, seed=seed)
    return logits_accuracy(logits, y_test)
