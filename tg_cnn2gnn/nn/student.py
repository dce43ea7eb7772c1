r"""The GNN student: a stack of stock PyG convs that take ``edge_weight``."""
from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch_geometric.nn import conv as pyg_conv
from torch_geometric.nn.conv import GCNConv, MessagePassing

from tg_cnn2gnn.functional._checks import check_dropout, check_positive_int

#: Conv names accepted by :class:`GraphStudent`: name -> (PyG class name, default kwargs).
#: Every one of them takes ``edge_weight`` in ``forward`` and maps
#: ``in_channels -> out_channels``.
CONVS: dict[str, tuple[str, dict[str, Any]]] = {
    "gcn": ("GCNConv", {}),
    "graph": ("GraphConv", {}),
    "sg": ("SGConv", {"K": 1}),
    "ssg": ("SSGConv", {"alpha": 0.1, "K": 1}),
    "tag": ("TAGConv", {"K": 2}),
    "cheb": ("ChebConv", {"K": 2}),
    "le": ("LEConv", {}),
    "arma": ("ARMAConv", {}),
}


def resolve_conv(conv: str | type[MessagePassing]) -> tuple[type[MessagePassing], dict[str, Any]]:
    """The conv class and default kwargs for a name of :data:`CONVS` or a ``MessagePassing`` class.

    Raises:
        ValueError: an unknown name (the message lists the valid ones).
        TypeError: a class that is not a ``MessagePassing`` or whose ``forward`` has no
            ``edge_weight`` argument.
    """
    if isinstance(conv, str):
        key = conv.lower()
        if key not in CONVS:
            raise ValueError(f"conv={conv!r} is not a known conv name; valid names: "
                             f"{', '.join(map(repr, CONVS))}, or pass a MessagePassing class "
                             f"whose forward takes edge_weight")
        name, defaults = CONVS[key]
        return getattr(pyg_conv, name), dict(defaults)
    if not (isinstance(conv, type) and issubclass(conv, MessagePassing)):
        raise TypeError(f"conv must be a name ({', '.join(map(repr, CONVS))}) or a "
                        f"torch_geometric MessagePassing subclass, got {conv!r}")
    if "edge_weight" not in inspect.signature(conv.forward).parameters:
        raise TypeError(f"conv={conv.__name__} does not take edge_weight in forward; the learned "
                        f"graph is weighted, so use a conv such as GCNConv, GraphConv, SGConv")
    return conv, {}


def layer_sizes(in_channels: int, hidden_channels: int, out_channels: int, num_layers: int) -> list[int]:
    """Checked widths ``[in, hidden, ..., hidden, out]`` of a ``num_layers``-layer student
    (shared by :class:`GraphStudent` and the MLP baselines, so both have the same shapes)."""
    check_positive_int("in_channels", in_channels)
    check_positive_int("hidden_channels", hidden_channels)
    check_positive_int("out_channels", out_channels)
    check_positive_int("num_layers", num_layers)
    return [in_channels] + [hidden_channels] * (num_layers - 1) + [out_channels]


class GraphStudent(nn.Module):
    r"""The paper's student: ``num_layers`` graph convolutions over a sample graph (Eq. 2).

    .. math::
        H^{(l+1)} = \varphi\big(\mathrm{conv}_l(H^{(l)}, A)\big), \qquad H^{(0)} = X,

    with ReLU and dropout between layers and no activation after the last one (logits).
    With ``conv="gcn"`` each layer is :math:`\hat D^{-1/2}(A + I)\hat D^{-1/2} H W` as in
    the paper (Kipf and Welling normalisation, ``GCNConv`` adds the self-loops).

    Args:
        in_channels (int): node feature size ``F``.
        hidden_channels (int): width of the hidden layers.
        out_channels (int): number of classes ``C``.
        num_layers (int): number of convs (the paper uses 2). (default: :obj:`2`)
        conv (str or type): a name in :data:`CONVS` (``"gcn"``, ``"graph"``, ``"sg"``,
            ``"ssg"``, ``"tag"``, ``"cheb"``, ``"le"``, ``"arma"``) or any
            ``MessagePassing`` class built as ``conv(in, out, **conv_kwargs)`` whose
            ``forward(x, edge_index, edge_weight)`` takes edge weights. (default: :obj:`"gcn"`)
        dropout (float): dropout before every conv but the first. (default: :obj:`0.5`)
        conv_kwargs (dict, optional): extra arguments for every conv (override defaults).
        dense_max_nodes (int): GCN fast path. When every conv is a stock ``GCNConv`` with
            ``normalize=True`` and ``add_self_loops=True``, a graph of at most this many nodes
            and without self-loops is aggregated as a dense matrix product
            :math:`\hat D^{-1/2}(A + I)\hat D^{-1/2} (X\Theta) + b` with the convs' own
            ``lin`` and ``bias`` -- exactly ``GCNConv``'s math (same values up to float
            rounding, same gradients), but one ``[N, N] x [N, H]`` product instead of
            ``E``-row gathers and scatters. A training batch (``N = 100``, ``s = 50``, about
            ``7,500`` edges) is several times faster this way. ``0`` disables it.
            (default: :obj:`512`)

    Shapes:
        - **input:** ``x [N, F]``, ``edge_index [2, E]``, ``edge_weight [E]`` (optional)
        - **output:** logits ``[N, C]``
    """

    def __init__(self, in_channels: int, hidden_channels: int, out_channels: int,
                 num_layers: int = 2, conv: str | type[MessagePassing] = "gcn",
                 dropout: float = 0.5, conv_kwargs: dict[str, Any] | None = None,
                 dense_max_nodes: int = 512) -> None:
        super().__init__()
        sizes = layer_sizes(in_channels, hidden_channels, out_channels, num_layers)
        check_dropout(dropout)
        cls, kwargs = resolve_conv(conv)
        kwargs.update(conv_kwargs or {})
        self.convs = nn.ModuleList(cls(a, b, **kwargs) for a, b in zip(sizes[:-1], sizes[1:]))
        self.in_channels, self.hidden_channels, self.out_channels = in_channels, hidden_channels, out_channels
        self.num_layers = num_layers
        self.dropout = float(dropout)
        self.conv_name = cls.__name__
        if isinstance(dense_max_nodes, bool) or not isinstance(dense_max_nodes, int) or dense_max_nodes < 0:
            raise ValueError(f"dense_max_nodes must be a non-negative int, got {dense_max_nodes!r}")
        self.dense_max_nodes = dense_max_nodes

    @property
    def supports_dense(self) -> bool:
        """Whether :meth:`forward_dense` applies: every conv is a normalising ``GCNConv``
        that adds self-loops."""
        return (all(type(c) is GCNConv and c.normalize and c.add_self_loops for c in self.convs)
                and len({c.improved for c in self.convs}) == 1)

    def use_dense(self, num_nodes: int) -> bool:
        """Whether a graph of ``num_nodes`` nodes takes the dense GCN fast path."""
        return num_nodes <= self.dense_max_nodes and self.supports_dense

    def reset_parameters(self) -> None:
        for conv in self.convs:
            conv.reset_parameters()

    def forward(self, x: Tensor, edge_index: Tensor, edge_weight: Tensor | None = None,
                dense: bool | None = None) -> Tensor:
        """``x [N, F]``, ``edge_index [2, E]``, ``edge_weight [E]`` -> logits ``[N, C]``.

        ``dense``: :obj:`None` picks the dense GCN fast path automatically (see
        ``dense_max_nodes``), :obj:`False` always runs the convs on the edges. The edge path
        sums each node's messages in edge order, so a node's output does not depend on where
        other, unconnected nodes sit in the graph -- the inference mechanisms rely on that
        for bit-identical predictions.
        """
        n = x.size(0)
        if (dense is not False and isinstance(edge_index, Tensor) and not edge_index.is_sparse
                and self.use_dense(n) and not bool((edge_index[0] == edge_index[1]).any())):
            w = edge_weight if edge_weight is not None else x.new_ones(edge_index.size(1))
            adj = w.new_zeros(n, n).index_put((edge_index[1], edge_index[0]), w, accumulate=True)
            return self.forward_dense(x, adj)
        for i, conv in enumerate(self.convs):
            if i > 0:
                x = F.relu(x)
                x = F.dropout(x, p=self.dropout, training=self.training)
            x = conv(x, edge_index, edge_weight)
        return x

    def forward_dense(self, x: Tensor, adj: Tensor) -> Tensor:
        r"""The GCN student on a dense weighted adjacency without self-loops.

        ``adj [N, N]``: ``adj[i, j]`` is the weight of the edge ``j -> i`` (PyG flow), e.g.
        :math:`A = (P + P^\top)/2`. Computes, per layer, what ``GCNConv`` computes on the
        same graph: :math:`\hat A = A + I` (``2I`` with ``improved``),
        :math:`\hat d_i = \sum_j \hat A_{ij}` (incoming weight),
        :math:`\hat D^{-1/2}\hat A\hat D^{-1/2}\,\mathrm{lin}(H) + b`.
        Differentiable w.r.t. ``adj``, ``x`` and the parameters.
        """
        if not self.supports_dense:
            raise ValueError(f"forward_dense needs every conv to be a GCNConv with normalize=True "
                             f"and add_self_loops=True, got {self.conv_name}")
        conv0 = self.convs[0]
        fill = 2.0 if conv0.improved else 1.0
        a_hat = adj + fill * torch.eye(adj.size(0), dtype=adj.dtype, device=adj.device)
        deg = a_hat.sum(dim=1)
        dinv = deg.pow(-0.5)
        dinv = dinv.masked_fill(torch.isinf(dinv), 0.0)
        norm = dinv.unsqueeze(1) * a_hat * dinv.unsqueeze(0)
        for i, conv in enumerate(self.convs):
            if i > 0:
                x = F.relu(x)
                x = F.dropout(x, p=self.dropout, training=self.training)
            x = norm @ conv.lin(x)
            if conv.bias is not None:
                x = x + conv.bias
        return x

    def __repr__(self) -> str:
        return (f"{self.__class__.__name__}({self.in_channels}, {self.hidden_channels}, "
                f"{self.out_channels}, num_layers={self.num_layers}, conv={self.conv_name})")


def as_student(student: object) -> nn.Module:
    """Check that ``student`` can serve as the GNN of an inductive model and return it.

    Accepted: :class:`GraphStudent`, PyG's own models (``torch_geometric.nn.models.GCN``,
    ``GraphSAGE``, ``GAT``, ... -- their ``forward(x, edge_index, edge_weight=None, ...)``
    passes the weights to convs that take them) or any ``nn.Module`` whose ``forward``
    takes ``(x [N, F], edge_index [2, E], edge_weight [E])`` and returns ``[N, C]``.
    Duck-typed: nothing is wrapped, so parameters and ``state_dict`` keys stay the module's own.

    Raises:
        TypeError: not an ``nn.Module``, or its ``forward`` cannot take three positional
            arguments.
    """
    if not isinstance(student, nn.Module):
        raise TypeError(f"student must be an nn.Module (GraphStudent, a torch_geometric.nn.models "
                        f"model, or any module forward(x, edge_index, edge_weight)), "
                        f"got {type(student).__name__}")
    try:
        params = list(inspect.signature(student.forward).parameters.values())
    except (TypeError, ValueError):    # builtins / C++ modules: trust the caller
        return student
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 3 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        names = ", ".join(p.name for p in params)
        raise TypeError(f"student {type(student).__name__}.forward({names}) must take "
                        f"(x, edge_index, edge_weight): the sample graph is weighted")
    return student
