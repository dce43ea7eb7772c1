r"""The learned graph's label vote: the bank neighbours' labels, Eq. 3 weighted, mixed into the logits.

A ``bank`` prediction joins a test sample to its ``s`` nearest bank samples under the learned
distance, with Eq. 3 weights ``w_tj`` (summing to 1). The bank samples are training samples,
so their labels are known; the *vote* of test sample ``t`` is the class distribution of its
neighbours,

.. math::
    v_{tc} = \sum_{j \in N_s(t)} w_{tj} \, [y_j = c],

and the predictor's output with vote weight :math:`\beta > 0` is

.. math::
    \log \mathrm{softmax}(z_t) + \beta \log(v_t + \epsilon), \qquad \epsilon = 10^{-3},

a product of experts between the student's class probabilities and the graph's label vote
(``beta = 0``: the student alone). This is label propagation over one hop of the learned graph
(ours, not in the paper): it uses only training samples and their labels, so predictions stay
strictly inductive. It is what a graph gives that an MLP student cannot (the learned
neighbours' labels), and it is only as good as the graph's class-consistency
(:func:`tg_cnn2gnn.diagnostics.graph_class_consistency`). The vote's bank can be the whole
training split (the vote gains from more neighbours to choose from, unlike the GNN's messages;
``benchmarks/results/budget_levers.md``).
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

#: :math:`\epsilon` of the vote's logarithm: a class no neighbour votes for costs ``beta log(1e-3)``.
VOTE_EPS = 1e-3


def check_label_vote(value: object, name: str = "label_vote") -> float:
    """``value`` as a finite float ``>= 0``, else ``TypeError``/``ValueError`` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number >= 0 (0 = no label vote), got {type(value).__name__} ({value!r})")
    value = float(value)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{name}={value!r}: must be a finite number >= 0 (0 = no label vote)")
    return value


def neighbour_vote(nbr: Tensor, w: Tensor, labels: Tensor, num_classes: int) -> Tensor:
    """``v [T, C]``: ``v[t, c] = sum_j w[t, j] [labels[nbr[t, j]] = c]`` for bank positions
    ``nbr [T, s]``, Eq. 3 weights ``w [T, s]`` and the bank's labels ``labels [|B|]``."""
    return torch.zeros(nbr.size(0), num_classes, dtype=w.dtype, device=w.device).scatter_add(
        1, labels[nbr], w)


def with_label_vote(logits: Tensor, vote: Tensor, beta: float) -> Tensor:
    """``log_softmax(logits) + beta log(vote + 1e-3)``, ``[T, C]`` (see the module docstring)."""
    return logits.log_softmax(1) + beta * (vote + VOTE_EPS).log()
