"""Multi-process data parallelism for the distiller (``torchrun``; gloo on CPU, nccl on GPU).

Design: every rank holds a full replica of the graph head and the student. In each
epoch a permutation of the training set, identical on all ranks (seeded by
``seed`` and the epoch), is cut into ``world_size`` disjoint shards
(:class:`~torch.utils.data.DistributedSampler` style: ``perm[rank::world_size]`` after
dropping the ``n % world_size`` last samples so every rank takes the same number of
steps). **Each rank's mini-batch is its own graph**: the head builds the graph among
the rank's ``B`` samples only; graphs never span ranks.

Gradients are averaged with explicit all-reduces (:func:`allreduce_gradients`) instead of
wrapping the model in :class:`~torch.nn.parallel.DistributedDataParallel`, because

* the anchor graph head may produce *sparse* gradients (one row per training sample
  touched by the batch) which DDP's bucketed reducer does not accept;
* the distiller calls the head and the student separately (to hand a PyG ``Data`` graph
  to the student), which DDP's single ``forward`` hook does not cover.

Dense gradients are flattened into one buffer per dtype and all-reduced in one call.
A sparse COO gradient ``g`` is densified, all-reduced together with a mask of the rows
each rank touched, and turned back into a sparse tensor holding exactly the union of
touched rows, so a sparse optimiser (``SparseAdam``) sees the same kind of gradient as in
a single-process run. This costs one dense all-reduce of the parameter (e.g.
``n_train x hidden`` for the anchor layer) per step; fine for the datasets of the paper,
and the ``embedding`` head form avoids it. A parameter whose gradient is ``None`` on
some ranks but not others is treated as zero there (as DDP with
``find_unused_parameters=True``).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

from tg_cnn2gnn.distill.seed import make_generator


@dataclass
class DistContext:
    """Where this process stands: ``rank`` of ``world_size``, its ``device``."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    backend: str | None = None
    initialized_here: bool = False

    @property
    def enabled(self) -> bool:
        """``True`` when more than one process takes part."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """``True`` on rank 0, the only rank that writes files."""
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    return int(value) if value not in (None, "") else default


def default_device(local_rank: int = 0) -> torch.device:
    """``cuda:local_rank`` when CUDA is available, else CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda", local_rank % max(torch.cuda.device_count(), 1))
    return torch.device("cpu")


def setup_distributed(distributed: bool | str = "auto", device: str | torch.device | None = None,
                      backend: str | None = None) -> DistContext:
    """Join (or start) the process group when running under ``torchrun``.

    Args:
        distributed: ``"auto"`` (default) uses an initialised process group, or starts one
            when ``WORLD_SIZE > 1`` is set (``torchrun``); ``True`` requires one;
            ``False`` stays single-process.
        device: the device to use; default ``cuda:LOCAL_RANK`` when CUDA is available, else CPU.
        backend: default ``"nccl"`` on CUDA, ``"gloo"`` otherwise.
    """
    if distributed not in ("auto", True, False):
        raise ValueError(f"distributed={distributed!r} is not supported; allowed values: 'auto', True, False")
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = torch.device(device) if device is not None else None
    if distributed is False or not dist.is_available():
        if distributed is True:
            raise RuntimeError("distributed=True but torch.distributed is not available in this build")
        return DistContext(device=dev or default_device(0))
    if dist.is_initialized():
        rank, world = dist.get_rank(), dist.get_world_size()
        be = dist.get_backend()
        if dev is None:
            dev = default_device(local_rank) if be == "nccl" else torch.device("cpu")
        return DistContext(rank, world, local_rank, dev, be, False)
    world_env = _env_int("WORLD_SIZE", 1)
    if world_env <= 1:
        if distributed is True:
            raise RuntimeError("distributed=True but no process group is initialised and WORLD_SIZE is not > 1; "
                               "launch with torchrun --nproc_per_node=N or call "
                               "torch.distributed.init_process_group first")
        return DistContext(device=dev or default_device(0))
    dev = dev or default_device(local_rank)
    be = backend or ("nccl" if dev.type == "cuda" else "gloo")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    dist.init_process_group(backend=be, init_method="env://")
    return DistContext(dist.get_rank(), dist.get_world_size(), local_rank, dev, be, True)


def stratified_permutation(labels: Tensor, generator: torch.Generator) -> Tensor:
    """A random order of ``range(len(labels))`` in which every class is spread evenly.

    Class ``c``'s ``k``-th sample (in a random order within the class) gets the key
    ``(k + u) / n_c`` with ``u ~ U[0, 1)``; sorting by key interleaves the classes, so any run
    of ``L`` consecutive positions holds ``L * n_c / n`` samples of class ``c``, give or take
    2: class-balanced mini-batches (exactly balanced for equal class sizes and batch sizes
    that are multiples of the class count), still a fresh random order per epoch.

    Args:
        labels: ``[n]`` integer class labels ``>= 0``.
        generator: the random source (CPU).
    """
    y = labels.reshape(-1).long().cpu()
    n = y.numel()
    if n and int(y.min()) < 0:
        raise ValueError(f"labels must be >= 0 for a class-balanced order, got {int(y.min())}")
    perm = torch.randperm(n, generator=generator)
    y = y[perm]
    counts = torch.bincount(y)
    order = torch.argsort(y, stable=True)
    starts = torch.cumsum(counts, 0) - counts
    rank = torch.empty(n, dtype=torch.long)
    rank[order] = torch.arange(n) - starts[y[order]]
    key = (rank.double() + torch.rand(n, generator=generator, dtype=torch.float64)) / counts[y].double()
    return perm[torch.argsort(key, stable=True)]


def shard_batches(n: int, batch_size: int, *, seed: int, epoch: int, rank: int = 0, world_size: int = 1,
                  shuffle: bool = True, tail: str = "merge", labels: Tensor | None = None) -> list[Tensor]:
    """This rank's mini-batches (positions in ``[0, n)``) for one epoch.

    The permutation depends only on ``(seed, epoch)`` (an explicit
    :class:`torch.Generator`, never the global RNG), so every rank cuts the same one and a
    resumed run replays it exactly. With ``world_size > 1`` the last ``n % world_size``
    samples of the permutation are dropped and rank ``r`` takes ``perm[r::world_size]``.

    Args:
        tail: what to do with a last batch smaller than ``batch_size``: ``"merge"`` it into
            the previous batch (every graph then has ``>= batch_size`` nodes, which the
            sparsity ``s`` needs), ``"keep"`` it, or ``"drop"`` it.
        labels: ``[n]`` class labels: each rank puts its shard in a class-balanced order
            (:func:`stratified_permutation`), so that every batch holds the classes in about
            the shard's proportions (``shuffle=True`` only).
    """
    if tail not in ("merge", "keep", "drop"):
        raise ValueError(f"tail={tail!r} is not supported; allowed values: 'merge', 'keep', 'drop'")
    if labels is not None and (not isinstance(labels, Tensor) or labels.numel() != n):
        raise ValueError(f"labels must be a tensor of {n} class labels (one per sample), got "
                         f"{tuple(labels.shape) if isinstance(labels, Tensor) else type(labels).__name__}")
    g = make_generator(seed, epoch)
    perm = torch.randperm(n, generator=g) if shuffle else torch.arange(n)
    if world_size > 1:
        perm = perm[: (n // world_size) * world_size][rank::world_size]
    if shuffle and labels is not None:         # each rank orders its own shard class-balanced
        perm = perm[stratified_permutation(labels.reshape(-1)[perm], g)]
    batches = list(torch.split(perm, batch_size))
    if batches and batches[-1].numel() < batch_size:
        if tail == "drop":
            batches.pop()
        elif tail == "merge" and len(batches) > 1:
            last = batches.pop()
            batches[-1] = torch.cat([batches[-1], last])
    return batches


def broadcast_module(module: nn.Module, src: int = 0) -> None:
    """Copy ``src``'s parameters and buffers to every rank (in place)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for t in list(module.parameters()) + list(module.buffers()):
            dist.broadcast(t.data, src)


def _grad_kind(p: Tensor) -> int:
    if p.grad is None:
        return 0
    return 2 if p.grad.is_sparse else 1


def allreduce_gradients(params: Iterable[Tensor], world_size: int | None = None) -> None:
    """Average the gradients of ``params`` over all ranks, in place (dense and sparse COO)."""
    if not (dist.is_available() and dist.is_initialized()):
        return
    world = world_size or dist.get_world_size()
    if world == 1:
        return
    params = [p for p in params if p.requires_grad]
    if not params:
        return
    device = params[0].device
    kinds = torch.tensor([_grad_kind(p) for p in params], dtype=torch.int64, device=device)
    dist.all_reduce(kinds, op=dist.ReduceOp.MAX)
    dense: list[Tensor] = []
    for p, k in zip(params, kinds.tolist()):
        if k == 0:
            continue
        if k == 2:
            _allreduce_sparse(p, world)
            continue
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        dense.append(p.grad)
    by_dtype: dict[Any, list[Tensor]] = {}
    for g in dense:
        by_dtype.setdefault((g.dtype, g.device), []).append(g)
    for grads in by_dtype.values():
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat.div_(world)
        for g, synced in zip(grads, _unflatten_dense_tensors(flat, grads)):
            g.copy_(synced)


def _allreduce_sparse(p: Tensor, world: int) -> None:
    g = p.grad
    if g is None:
        sparse_dim = 1
        dense = torch.zeros_like(p)
        touched = torch.zeros(p.shape[:1], dtype=p.dtype, device=p.device)
    else:
        g = g.coalesce()
        sparse_dim = g.sparse_dim()
        dense = g.to_dense()
        touched = torch.zeros(p.shape[:sparse_dim], dtype=p.dtype, device=p.device)
        touched[tuple(g.indices())] = 1
    dist.all_reduce(dense)
    dist.all_reduce(touched)
    idx = touched.nonzero().t()
    values = dense[tuple(idx)] / world
    p.grad = torch.sparse_coo_tensor(idx, values, p.shape, device=p.device).coalesce()


def broadcast_buffers(module: nn.Module, src: int = 0) -> None:
    """Copy ``src``'s buffers (e.g. batch-norm statistics) to every rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return
    with torch.no_grad():
        for b in module.buffers():
            dist.broadcast(b.data, src)


def allreduce_sum(values: Tensor) -> Tensor:
    """Sum ``values`` over ranks (a copy; the input is untouched)."""
    out = values.clone()
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.all_reduce(out)
    return out


def broadcast_object(obj: Any, src: int = 0) -> Any:
    """``src``'s ``obj`` on every rank (in-process communication, not a file load)."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src)
    return box[0]


def gather_objects(obj: Any) -> list[Any]:
    """Every rank's ``obj``, in rank order, on every rank."""
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return [obj]
    out: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(out, obj)
    return out


def barrier() -> None:
    """Wait for every rank (no-op when single-process)."""
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        dist.barrier()
