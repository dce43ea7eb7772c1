"""The inference mechanisms by name: one place that lists them and what each needs.

>>> from tg_cnn2gnn.inference import get_mechanism
>>> get_mechanism("bank").needs_train
True

``MECHANISMS`` are the names :meth:`InductiveGraphModel.predict` accepts (each model lists
the ones it supports in ``model.mechanisms``); ``ABLATIONS`` are analysis tools with the
same call (``"isolated"``: the edge-removal ablation, ``model.predict_isolated``).
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import Tensor

from tg_cnn2gnn.inference.bank import predict_bank
from tg_cnn2gnn.inference.batch import predict_batch
from tg_cnn2gnn.inference.direct import predict_direct
from tg_cnn2gnn.inference.isolated import predict_isolated
from tg_cnn2gnn.inference.one_by_one import predict_one_by_one


@dataclass(frozen=True)
class Mechanism:
    """One inference mechanism.

    Attributes:
        name: its registry name.
        run: ``run(model, x [T, F], *, train_x, bank, batch_size, chunk_size, progress)``
            -> logits ``[T, C]`` (model in eval mode, no grad; arguments it does not use
            are ignored).
        needs_train: whether it reads the training samples (``train_x`` and a bank).
        row_invariant: whether it runs in the row-invariant context, so that its output is
            bit-identical under any batching.
        summary: one line for listings.
    """

    name: str
    run: Callable[..., Tensor]
    needs_train: bool
    row_invariant: bool
    summary: str


REGISTRY: dict[str, Mechanism] = {m.name: m for m in (
    Mechanism("bank", predict_bank, True, True,
              "test nodes receive messages from a fixed training bank (ours; batch-invariant)"),
    Mechanism("batch", predict_batch, True, False,
              "paper Mechanism 2: graph over each test batch via training proxies"),
    Mechanism("one_by_one", predict_one_by_one, True, True,
              "paper Mechanism 1: one (1 + |bank|)-node graph per test sample"),
    Mechanism("direct", predict_direct, False, False,
              "Eq. 3 over true test-test distances (embedding head, baselines)"),
    Mechanism("isolated", predict_isolated, False, False,
              "edge-removal ablation: the student with no edges"),
)}

#: Inference mechanisms of ``predict`` (each model lists its own in ``model.mechanisms``).
MECHANISMS: tuple[str, ...] = ("bank", "batch", "one_by_one", "direct")
#: Analysis-only entries of the registry.
ABLATIONS: tuple[str, ...] = ("isolated",)


def get_mechanism(name: str) -> Mechanism:
    """The :class:`Mechanism` called ``name``; ``ValueError`` listing the valid names otherwise."""
    if not isinstance(name, str) or name not in REGISTRY:
        raise ValueError(f"mechanism={name!r} is not a known inference mechanism; valid names: "
                         f"{', '.join(map(repr, REGISTRY))}")
    return REGISTRY[name]
