"""The sparse simplex graph (paper Eq. 3) as a PyG transform."""
from __future__ import annotations

from torch_geometric.data import Data
from torch_geometric.data.datapipes import functional_transform
from torch_geometric.transforms import BaseTransform
from torch_geometric.typing import WITH_TORCH_SPARSE

from tg_cnn2gnn.functional._checks import check_choice, check_flag, check_positive_int
from tg_cnn2gnn.functional.distance import METRICS
from tg_cnn2gnn.functional.graph import sparse_simplex_graph


@functional_transform("cnn2gnn_sparse_simplex_graph")
class SparseSimplexGraph(BaseTransform):
    r"""Connects each node to its ``s`` nearest nodes with the weights of the paper's
    Eq. 3 and symmetrises, :math:`A = (P + P^\top)/2` (functional name:
    :obj:`cnn2gnn_sparse_simplex_graph`).

    A drop-in replacement for :class:`~torch_geometric.transforms.KNNGraph` that needs
    no compiled extension and also writes ``edge_weight`` for convs that take it
    (``GCNConv``, ``GraphConv``, ``SGConv``, ``TAGConv``, ``ChebConv``, ...).
    Edges follow PyG's ``source_to_target`` flow: ``j -> i`` carries :math:`A_{ij}`.

    Args:
        s (int): sparsity, neighbours per node. (default: :obj:`10`)
        attr (str): the node attribute to measure distances on, ``"pos"`` or ``"x"``
            or any ``[N, D]`` attribute. (default: :obj:`"pos"`)
        metric (str): ``"sqeuclidean"``, ``"euclidean"``, ``"inner"`` or ``"cosine"``.
            (default: :obj:`"sqeuclidean"`)
        loop (bool): a node may choose itself. (default: :obj:`False`)
        chunk_size (int, optional): rows per distance block (memory bound only).
        sparse_tensor (bool): also write ``adj_t`` as a ``torch_sparse.SparseTensor``
            (needs the optional ``torch_sparse``). (default: :obj:`False`)
    """

    def __init__(self, s: int = 10, attr: str = "pos", metric: str = "sqeuclidean",
                 loop: bool = False, chunk_size: int | None = None,
                 sparse_tensor: bool = False) -> None:
        check_positive_int("s", s)
        check_choice("metric", metric, METRICS)
        check_positive_int("chunk_size", chunk_size, allow_none=True)
        if not isinstance(attr, str):
            raise TypeError(f"attr must be a str naming a node attribute (e.g. 'pos' or 'x'), got {attr!r}")
        check_flag("loop", loop)
        check_flag("sparse_tensor", sparse_tensor)
        if sparse_tensor and not WITH_TORCH_SPARSE:
            raise ValueError("sparse_tensor=True needs torch_sparse; install the 'accel' extra "
                             "(pip install 'tg_cnn2gnn[accel]') or keep sparse_tensor=False")
        self.s = s
        self.attr = attr
        self.metric = metric
        self.loop = loop
        self.chunk_size = chunk_size
        self.sparse_tensor = sparse_tensor

    def forward(self, data: Data) -> Data:
        feats = getattr(data, self.attr, None)
        if feats is None:
            raise ValueError(f"SparseSimplexGraph(attr={self.attr!r}) found no data.{self.attr}; "
                             f"set attr to one of the data's node attributes: {list(data.keys())}")
        feats = feats.view(feats.size(0), -1) if feats.dim() != 2 else feats
        edge_index, edge_weight = sparse_simplex_graph(
            feats.float() if not feats.is_floating_point() else feats, self.s,
            metric=self.metric, loop=self.loop, batch=data.batch if "batch" in data else None,
            chunk_size=self.chunk_size)
        data.edge_index = edge_index
        data.edge_weight = edge_weight
        data.edge_attr = None
        if self.sparse_tensor:
            from torch_sparse import SparseTensor
            n = data.num_nodes
            data.adj_t = SparseTensor(row=edge_index[1], col=edge_index[0], value=edge_weight,
                                      sparse_sizes=(n, n))
        return data

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(s={self.s}, metric={self.metric!r})"
