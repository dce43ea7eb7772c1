"""The SparseSimplexGraph transform in PyG's conventions."""
import pytest
import torch
from torch_geometric.data import Batch, Data
from torch_geometric.nn import GCNConv
from torch_geometric.typing import WITH_TORCH_SPARSE

import tg_cnn2gnn
from tg_cnn2gnn.functional import edges_to_dense, sparse_simplex_graph
from tg_cnn2gnn.transforms import SparseSimplexGraph


def test_exported_at_top_level_and_repr():
    assert tg_cnn2gnn.SparseSimplexGraph is SparseSimplexGraph
    assert repr(SparseSimplexGraph(s=4, metric="cosine")) == "SparseSimplexGraph(s=4, metric='cosine')"


def test_writes_edges_from_pos_like_functional_core():
    pos = torch.randn(30, 3)
    data = SparseSimplexGraph(s=5)(Data(pos=pos, edge_attr=torch.ones(3, 1)))
    ei, ew = sparse_simplex_graph(pos, 5)
    assert torch.equal(data.edge_index, ei) and torch.equal(data.edge_weight, ew)
    assert data.edge_attr is None
    assert data.is_undirected()
    out = GCNConv(3, 2)(data.pos, data.edge_index, data.edge_weight)
    assert out.shape == (30, 2)


def test_reads_x_and_flattens_images():
    x = torch.rand(12, 1, 4, 4)
    data = SparseSimplexGraph(s=3, attr="x")(Data(x=x))
    ei, ew = sparse_simplex_graph(x.view(12, -1), 3)
    assert torch.equal(data.edge_index, ei) and torch.equal(data.edge_weight, ew)


def test_honours_batch_vector():
    graphs = [Data(pos=torch.randn(n, 2)) for n in (8, 10, 6)]
    batch = Batch.from_data_list(graphs)
    out = SparseSimplexGraph(s=3)(batch)
    assert torch.equal(batch.batch[out.edge_index[0]], batch.batch[out.edge_index[1]])
    a = edges_to_dense(out.edge_index, out.edge_weight, num_nodes=batch.num_nodes)
    start = 0
    for g in graphs:
        n = g.num_nodes
        ei, ew = sparse_simplex_graph(g.pos, 3)
        torch.testing.assert_close(a[start:start + n, start:start + n],
                                   edges_to_dense(ei, ew, num_nodes=n))
        start += n


def test_drop_in_for_knn_graph_edge_set():
    """Same edges as an undirected exact kNN graph (PyG's KNNGraph semantics, computed densely)."""
    pos = torch.randn(40, 3, dtype=torch.float64)
    data = SparseSimplexGraph(s=4)(Data(pos=pos))
    d = torch.cdist(pos, pos).fill_diagonal_(float("inf"))
    nbr = d.topk(4, largest=False).indices
    ref = {(int(j), i) for i in range(40) for j in nbr[i]}
    ref |= {(i, j) for j, i in ref}
    assert {tuple(e) for e in data.edge_index.T.tolist()} == ref


def test_clear_errors():
    with pytest.raises(ValueError, match=r"attr='feat'.*no data.feat"):
        SparseSimplexGraph(s=2, attr="feat")(Data(pos=torch.randn(5, 2)))
    with pytest.raises(ValueError, match=r"metric='l1' is not supported"):
        SparseSimplexGraph(s=2, metric="l1")
    with pytest.raises(ValueError, match=r"s must be a positive int, got 0"):
        SparseSimplexGraph(s=0)
    with pytest.raises(ValueError, match=r"s=9 is out of range"):
        SparseSimplexGraph(s=9)(Data(pos=torch.randn(5, 2)))


def test_functional_datapipe_name_registered():
    dp_mod = pytest.importorskip("torch.utils.data.datapipes.iter")
    dp = dp_mod.IterableWrapper([Data(pos=torch.randn(10, 2))])
    out = next(iter(dp.cnn2gnn_sparse_simplex_graph(s=3)))
    assert out.edge_index.size(1) >= 30


@pytest.mark.skipif(WITH_TORCH_SPARSE, reason="checks the message shown when torch_sparse is absent")
def test_sparse_tensor_without_torch_sparse_is_a_clear_error():
    with pytest.raises(ValueError, match=r"sparse_tensor=True needs torch_sparse"):
        SparseSimplexGraph(s=2, sparse_tensor=True)


@pytest.mark.skipif(not WITH_TORCH_SPARSE, reason="torch_sparse (the 'accel' extra) is not installed")
def test_sparse_tensor_adj_t_matches_edges():
    data = SparseSimplexGraph(s=3, sparse_tensor=True)(Data(pos=torch.randn(15, 2)))
    dense = data.adj_t.to_dense()
    torch.testing.assert_close(dense, edges_to_dense(data.edge_index, data.edge_weight, num_nodes=15))
    conv = GCNConv(2, 2)
    torch.testing.assert_close(conv(data.pos, data.adj_t),
                               conv(data.pos, data.edge_index, data.edge_weight), atol=1e-5, rtol=0)
