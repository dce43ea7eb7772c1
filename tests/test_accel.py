"""The ``accel`` extra: a ``torch_sparse.SparseTensor`` ``adj_t`` is the same graph as the
package's edge list, for the learned graph (values and gradients through the head) and for the
:class:`SparseSimplexGraph` transform. Skipped unless ``torch_sparse`` imports."""
import pytest
import torch
import torch.nn.functional as F
from torch_geometric.data import Batch, Data
from torch_geometric.typing import WITH_TORCH_SPARSE

from tg_cnn2gnn.functional import edges_to_dense
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead
from tg_cnn2gnn.transforms import SparseSimplexGraph

pytestmark = pytest.mark.skipif(not WITH_TORCH_SPARSE, reason="torch_sparse (the 'accel' extra) is not installed")


def _adj_t(edge_index, edge_weight, n):
    from torch_sparse import SparseTensor
    return SparseTensor(row=edge_index[1], col=edge_index[0], value=edge_weight, sparse_sizes=(n, n))


def _grads(model):
    out = {}
    for name, p in model.named_parameters():
        if p.grad is not None:
            out[name] = p.grad.to_dense() if p.grad.is_sparse else p.grad.clone()
    return out


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_gcn_on_learned_graph_same_output_and_gradients_via_adj_t(form):
    torch.manual_seed(0)
    head = LearnedGraphHead(6, 40, s=3, hidden_channels=(8,), form=form, embedding_channels=4)
    model = CNN2GNN(head, GraphStudent(6, 8, 3, dropout=0.0, dense_max_nodes=0)).double()
    x, y = torch.randn(12, 6, dtype=torch.float64), torch.randint(0, 3, (12,))
    idx = torch.randperm(40)[:12]

    results = []
    for via in ("edge_index", "adj_t"):
        model.zero_grad(set_to_none=True)
        ei, ew = model.graph(x, idx)             # the learned graph, differentiable w.r.t. the head
        assert ew.requires_grad
        out = model.student(x, ei, ew) if via == "edge_index" else model.student(x, _adj_t(ei, ew, 12))
        F.cross_entropy(out, y).backward()
        results.append((out.detach(), _grads(model)))
    (out_e, g_e), (out_a, g_a) = results
    torch.testing.assert_close(out_a, out_e, rtol=1e-10, atol=1e-12)
    assert g_a.keys() == g_e.keys() and any(k.startswith("head.") for k in g_e)
    for name in g_e:                             # head parameters get the graph's gradient
        torch.testing.assert_close(g_a[name], g_e[name], rtol=1e-9, atol=1e-12, msg=name)
    assert all(g.abs().sum() > 0 for k, g in g_e.items() if k.startswith("student."))


def test_adj_t_path_differs_from_a_wrong_orientation():
    """The check above can fail: the transposed adjacency (a directed P) gives other outputs."""
    torch.manual_seed(2)
    x = torch.randn(10, 4, dtype=torch.float64)
    head = LearnedGraphHead(4, 10, s=2, hidden_channels=(5,)).double()
    model = CNN2GNN(head, GraphStudent(4, 5, 2, dropout=0.0, dense_max_nodes=0)).double()
    from tg_cnn2gnn.functional import topk_to_edges
    idx, w = model.batch_topk(x, torch.arange(10))
    ei, ew = topk_to_edges(idx, w, num_nodes=10, symmetrize=False)
    right = model.student(x, _adj_t(ei, ew, 10))
    wrong = model.student(x, _adj_t(ei.flip(0), ew, 10))
    torch.testing.assert_close(right, model.student(x, ei, ew), rtol=1e-10, atol=1e-12)
    assert not torch.allclose(right, wrong)


@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_transform_adj_t_equals_edge_list(metric):
    torch.manual_seed(1)
    data = SparseSimplexGraph(s=4, metric=metric, sparse_tensor=True)(Data(pos=torch.randn(25, 3)))
    row, col, value = data.adj_t.coo()
    ei, ew = data.edge_index, data.edge_weight
    assert data.adj_t.sparse_sizes() == (25, 25) and value.numel() == ei.size(1)
    # the same (target, source, weight) triples, edge for edge
    mine = sorted(zip(row.tolist(), col.tolist(), value.tolist()))
    theirs = sorted(zip(ei[1].tolist(), ei[0].tolist(), ew.tolist()))
    assert [(a, b) for a, b, _ in mine] == [(a, b) for a, b, _ in theirs]
    torch.testing.assert_close(torch.tensor([v for *_, v in mine]), torch.tensor([v for *_, v in theirs]))
    torch.testing.assert_close(data.adj_t.to_dense(), edges_to_dense(ei, ew, num_nodes=25))


def test_transform_adj_t_on_a_batch_never_links_graphs():
    torch.manual_seed(3)
    batch = Batch.from_data_list([Data(pos=torch.randn(n, 2)) for n in (7, 9, 6)])
    data = SparseSimplexGraph(s=3, sparse_tensor=True)(batch)
    row, col, _ = data.adj_t.coo()
    assert torch.equal(data.batch[row], data.batch[col])
    torch.testing.assert_close(data.adj_t.to_dense(), edges_to_dense(data.edge_index, data.edge_weight, num_nodes=22))
