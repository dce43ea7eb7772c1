r"""The MLP baselines' students: :class:`MLP` (a plain module on flat features) and
:class:`MLPStudent` (the same MLP with the CNN2GNN model interface: an empty graph and
``predict``). Both have the widths and parameter count of a
:class:`~tg_cnn2gnn.nn.GraphStudent` with the same arguments -- the GNN without the graph."""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from tg_cnn2gnn.functional._checks import check_choice, check_dropout, check_positive_int
from tg_cnn2gnn.nn.model import MECHANISMS
from tg_cnn2gnn.nn.student import layer_sizes

__all__ = ["MLP", "MLPStudent"]


class MLP(nn.Module):
    r"""``num_layers`` linear layers with ReLU and dropout between them (no activation at the
    end); the widths of a :class:`~tg_cnn2gnn.nn.GraphStudent` with the same arguments.

    ``forward(x [N, F], edge_index=None, edge_weight=None) -> [N, C]``: the graph arguments
    are accepted and ignored, so the module can stand where a GNN student stands.
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        sizes = layer_sizes(in_channels, hidden_channels, out_channels, num_layers)
        check_dropout(dropout)
        self.lins = nn.ModuleList(nn.Linear(a, b) for a, b in zip(sizes[:-1], sizes[1:]))
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers = num_layers
        self.dropout = float(dropout)

    def forward(self, x: Tensor, edge_index: Tensor | None = None, edge_weight: Tensor | None = None) -> Tensor:
        x = x.flatten(1) if x.dim() > 2 else x
        for i, lin in enumerate(self.lins):
            if i > 0:
                x = F.relu(x)
                x = F.dropout(x, p=self.dropout, training=self.training)
            x = lin(x)
        return x

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers})")


class MLPStudent(nn.Module):
    r"""The KD baselines' student: an :class:`MLP` with the distiller's model interface.

    It has the widths (and the parameter count) of a ``GraphStudent(in_channels,
    hidden_channels, out_channels, num_layers)``; layer ``l`` is ``Linear`` followed, except
    for the last, by ReLU and dropout -- the GCN student without the graph aggregation.
    To a distiller it looks like a :class:`~tg_cnn2gnn.nn.CNN2GNN`:

    * ``graph(x, index)`` returns an empty graph (``edge_index [2, 0]``, ``edge_weight [0]``),
    * ``student(x, edge_index, edge_weight)`` is the MLP (the graph is ignored),
    * ``forward(x, index)`` = ``student(x)`` (``index`` ignored),
    * ``predict(x, mechanism=..., train_x=..., batch_size=...)`` returns the MLP's logits
      in eval mode, ``batch_size`` samples at a time. Every name of
      :data:`~tg_cnn2gnn.nn.MECHANISMS` is accepted (so a distiller's default
      ``val_mechanism="bank"`` / ``test_mechanisms=("bank", "batch")`` work) and all of them
      give the same output: the prediction of a sample depends on that sample only.

    Args:
        in_channels (int): flattened input size ``F``.
        hidden_channels (int): hidden width.
        out_channels (int): number of classes.
        num_layers (int): number of linear layers. (default: :obj:`2`, as the paper's GNN)
        dropout (float): dropout before every layer but the first. (default: :obj:`0.5`)
    """

    mechanisms: tuple[str, ...] = MECHANISMS
    num_train: int | None = None

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int, num_layers: int = 2,
                 dropout: float = 0.5) -> None:
        super().__init__()
        self.student = MLP(in_channels, hidden_channels, out_channels, num_layers, dropout)

    def graph(self, x: Tensor, index: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """An empty graph over the batch: ``edge_index [2, 0]`` (long), ``edge_weight [0]``."""
        return (torch.empty(2, 0, dtype=torch.long, device=x.device),
                torch.empty(0, dtype=x.dtype if x.is_floating_point() else torch.float32, device=x.device))

    def forward(self, x: Tensor, index: Tensor | None = None) -> Tensor:
        """``x [B, F]`` (or images, flattened) -> logits ``[B, C]``; ``index`` is ignored."""
        return self.student(x.flatten(1) if x.dim() > 2 else x)

    @torch.no_grad()
    def predict(self, x: Tensor, *, mechanism: str = "bank", train_x: Tensor | None = None,
                batch_size: int = 100, **kwargs: Any) -> Tensor:
        """Logits ``[T, C]`` for ``x [T, F]`` in eval mode; every mechanism gives the same result
        (``train_x``, ``bank_size``, ``seed`` and other keyword arguments are accepted and unused)."""
        check_choice("mechanism", mechanism, self.mechanisms)
        check_positive_int("batch_size", batch_size)
        if not isinstance(x, Tensor):
            raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
        x = x.flatten(1) if x.dim() > 2 else x
        if x.size(1) != self.student.in_channels:
            raise ValueError(f"x has {x.size(1)} features but the MLP expects {self.student.in_channels}")
        was_training = self.training
        self.eval()
        try:
            outs = [self.student(x[a:a + batch_size]) for a in range(0, x.size(0), batch_size)]
            return torch.cat(outs) if outs else x.new_zeros(0, self.student.out_channels)
        finally:
            self.train(was_training)

    def extra_repr(self) -> str:
        return "graph=none"
