"""sparse_simplex_graph: edges vs scikit-learn, PyG convs vs dense math, chunking, batching."""
import numpy as np
import pytest
import torch
from scipy.spatial.distance import cdist
from sklearn.neighbors import kneighbors_graph
from torch_geometric.nn import ChebConv, GCNConv, GraphConv, SGConv, TAGConv

from tg_cnn2gnn.functional import (dense_to_edges, edges_to_dense, pairwise_distance,
                                   sparse_simplex, sparse_simplex_graph, topk_to_edges)


def dense_graph(x: torch.Tensor, s: int, metric: str = "sqeuclidean") -> torch.Tensor:
    """A = (P + P^T)/2 computed densely from scipy distances (independent of the chunked path)."""
    name = {"sqeuclidean": "sqeuclidean", "euclidean": "euclidean", "cosine": "cosine"}[metric]
    d = torch.from_numpy(cdist(x.numpy(), x.numpy(), metric=name))
    p = sparse_simplex(d, s, exclude_self=True)
    return (p + p.T) / 2


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "inner", "cosine"])
def test_pairwise_distance_matches_scipy(metric):
    x, y = torch.randn(7, 5, dtype=torch.float64), torch.randn(4, 5, dtype=torch.float64)
    got = pairwise_distance(x, y, metric)
    ref = -(x @ y.T).numpy() if metric == "inner" else cdist(x.numpy(), y.numpy(), metric=metric)
    np.testing.assert_allclose(got.numpy(), ref, atol=1e-10)


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "cosine"])
def test_graph_equals_dense_reference(metric):
    x = torch.randn(40, 6, dtype=torch.float64)
    ei, ew = sparse_simplex_graph(x, 5, metric=metric)
    a = edges_to_dense(ei, ew, num_nodes=40)
    torch.testing.assert_close(a, dense_graph(x, 5, metric), atol=1e-9, rtol=0)
    assert torch.allclose(a, a.T)                      # undirected
    assert torch.all(a.diagonal() == 0)                # no self-loops by default
    assert 40 * 5 <= ei.size(1) <= 2 * 40 * 5


def test_message_flow_is_source_to_target():
    """Row i of P lists the messages node i receives: edge j -> i carries A_ij."""
    x = torch.tensor([[0.0], [1.0], [3.0], [10.0]], dtype=torch.float64)
    ei, ew = sparse_simplex_graph(x, 1, symmetrize=False)
    # nearest of 0 is 1, of 1 is 0, of 2 is 1, of 3 is 2; each with weight 1 (s = 1)
    got = {(int(j), int(i)) for j, i in ei.T}
    assert got == {(1, 0), (0, 1), (1, 2), (2, 3)}
    assert torch.all(ew == 1)


def test_edge_set_equals_sklearn_kneighbors_graph():
    rng = np.random.default_rng(0)
    pts = rng.random((200, 8))                         # continuous: no distance ties
    s = 7
    knn = kneighbors_graph(pts, n_neighbors=s, mode="connectivity", include_self=False)
    sym = ((knn + knn.T) > 0).tocoo()
    ref = set(zip(sym.row.tolist(), sym.col.tolist()))
    ei, _ = sparse_simplex_graph(torch.from_numpy(pts), s)
    ours = {(int(i), int(j)) for j, i in ei.T}
    assert ours == ref


def test_gcnconv_equals_dense_normalised_propagation():
    torch.manual_seed(1)
    x = torch.randn(30, 4, dtype=torch.float64)
    ei, ew = sparse_simplex_graph(x, 4)
    conv = GCNConv(4, 3).double()
    out = conv(x, ei, ew)
    a = edges_to_dense(ei, ew, num_nodes=30) + torch.eye(30, dtype=torch.float64)
    dinv = a.sum(1).pow(-0.5)
    ref = (dinv[:, None] * a * dinv[None, :]) @ (x @ conv.lin.weight.T) + conv.bias
    torch.testing.assert_close(out, ref, atol=1e-10, rtol=0)


@pytest.mark.parametrize("conv", [
    lambda: GCNConv(4, 3), lambda: GraphConv(4, 3), lambda: SGConv(4, 3, K=2),
    lambda: TAGConv(4, 3, K=2), lambda: ChebConv(4, 3, K=2)])
def test_edges_drive_stock_convs_with_gradients(conv):
    x = torch.randn(25, 4, requires_grad=True)
    ei, ew = sparse_simplex_graph(x, 3)
    ew.retain_grad()
    layer = conv()
    out = layer(x, ei, ew)
    assert out.shape == (25, 3)
    out.square().sum().backward()
    assert ew.grad is not None and torch.isfinite(ew.grad).all() and ew.grad.abs().sum() > 0
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("metric", ["sqeuclidean", "euclidean", "inner", "cosine"])
def test_gradcheck_graph(metric):
    x = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    fn = lambda t: sparse_simplex_graph(t, 3, metric=metric)[1]  # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,))


def test_euclidean_gradient_finite_at_duplicate_points():
    x = torch.tensor([[0.0, 0.0], [0.0, 0.0], [1.0, 0.0], [2.0, 1.0]], requires_grad=True)
    _, ew = sparse_simplex_graph(x, 2, metric="euclidean")
    ew.sum().backward()
    assert torch.isfinite(x.grad).all()


@pytest.mark.parametrize("chunk", [1, 300, 600, 10_000])
@pytest.mark.parametrize("metric", ["sqeuclidean", "cosine"])
def test_chunked_equals_unchunked(chunk, metric):
    x = torch.randn(1100, 5, requires_grad=True)
    ei0, ew0 = sparse_simplex_graph(x, 6, metric=metric, chunk_size=1100)
    ei1, ew1 = sparse_simplex_graph(x, 6, metric=metric, chunk_size=chunk)
    assert torch.equal(ei0, ei1) and torch.equal(ew0, ew1)
    g0 = torch.autograd.grad(ew0.square().sum(), x)[0]
    g1 = torch.autograd.grad(ew1.square().sum(), x)[0]
    assert torch.equal(g0, g1)


def test_batch_never_connects_graphs_and_matches_separate_calls():
    xs = [torch.randn(n, 3, dtype=torch.float64) for n in (12, 7, 20)]
    batch = torch.cat([torch.full((x.size(0),), i) for i, x in enumerate(xs)])
    perm = torch.randperm(batch.numel())               # interleaved nodes, not sorted
    x_all, b_all = torch.cat(xs)[perm], batch[perm]
    ei, ew = sparse_simplex_graph(x_all, 4, batch=b_all)
    assert torch.equal(b_all[ei[0]], b_all[ei[1]])
    a = edges_to_dense(ei, ew, num_nodes=x_all.size(0))
    inv = torch.argsort(perm)
    a_sorted = a[inv][:, inv]
    start = 0
    for x in xs:
        n = x.size(0)
        torch.testing.assert_close(a_sorted[start:start + n, start:start + n], dense_graph(x, 4),
                                   atol=1e-9, rtol=0)
        start += n


def test_batch_sparsity_limit_names_smallest_graph():
    batch = torch.tensor([0, 0, 0, 1, 1, 1, 1, 1])
    with pytest.raises(ValueError, match=r"s=3 is out of range.*1 <= s <= 1 .*smallest graph"):
        sparse_simplex_graph(torch.randn(8, 2), 3, batch=batch)


def test_bad_graph_arguments():
    with pytest.raises(ValueError, match=r"metric='manhattan' is not supported; allowed values: "
                                         r"'sqeuclidean', 'euclidean', 'inner', 'cosine'"):
        sparse_simplex_graph(torch.randn(5, 2), 2, metric="manhattan")
    with pytest.raises(ValueError, match=r"x must be 2-D"):
        sparse_simplex_graph(torch.randn(5, 2, 2), 2)
    with pytest.raises(ValueError, match=r"s=4 is out of range.*1 <= s <= 3"):
        sparse_simplex_graph(torch.randn(5, 2), 4)
    with pytest.raises(ValueError, match=r"chunk_size must be a positive int or None, got 0"):
        sparse_simplex_graph(torch.randn(5, 2), 2, chunk_size=0)
    x = torch.randn(5, 2)
    x[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x contains NaN in rows \[2\] \(1 of 5\)"):
        sparse_simplex_graph(x, 2)


def test_loop_allows_self_and_raises_limit():
    x = torch.randn(6, 2, dtype=torch.float64)
    ei, _ = sparse_simplex_graph(x, 5, loop=True)     # s = N - 1 allowed with loops
    assert bool((ei[0] == ei[1]).any())


def test_dense_edges_roundtrip_single_and_batched():
    p = sparse_simplex(torch.rand(3, 6, 6).view(18, 6), 2).view(3, 6, 6)
    ei, ew = dense_to_edges(p)
    back = edges_to_dense(ei, ew, num_nodes=6, batch_size=3)
    assert torch.equal(back, p)
    # single graph: entry (i, j) is the edge j -> i
    m = torch.tensor([[0.0, 0.7], [0.0, 0.0]])
    ei, ew = dense_to_edges(m)
    assert ei.tolist() == [[1], [0]] and ew.tolist() == [pytest.approx(0.7)]
    assert torch.equal(edges_to_dense(ei, ew, num_nodes=2), m)


def test_topk_to_edges_is_differentiable_and_symmetric():
    idx = torch.tensor([[1, 2], [0, 2], [1, 0]])
    w = torch.tensor([[0.6, 0.4], [0.5, 0.5], [1.0, 0.0]], requires_grad=True)
    ei, ew = topk_to_edges(idx, w)
    a = edges_to_dense(ei, ew, num_nodes=3)
    p = torch.zeros(3, 3).scatter(1, idx, w.detach())
    torch.testing.assert_close(a, (p + p.T) / 2)
    ew.sum().backward()
    torch.testing.assert_close(w.grad, torch.ones_like(w))


def test_dense_to_edges_errors():
    with pytest.raises(ValueError, match=r"adj must be a \[N, N\] or \[B, N, N\] tensor, got \(4,\)"):
        dense_to_edges(torch.rand(4))
    with pytest.raises(ValueError, match=r"square"):
        dense_to_edges(torch.rand(2, 3))


def test_two_stage_search_equals_full_topk():
    from tg_cnn2gnn.functional.graph import GROUP, _smallest_k
    torch.manual_seed(3)
    score = torch.randn(50, GROUP * 30)
    score[:, -7:] = float("inf")                                     # padding columns
    score[5] = torch.round(score[5])                                 # heavy ties
    score[6] = 1.0                                                   # constant row
    for k in (1, 6, 29):
        got = _smallest_k(score, k)
        assert got.shape == (50, k)
        assert all(len(set(r.tolist())) == k for r in got)          # k distinct columns
        ref = torch.topk(score, k, dim=1, largest=False).values
        torch.testing.assert_close(score.gather(1, got).sort(1).values, ref)


def test_edge_set_equals_sklearn_on_large_graph_two_stage_path():
    rng = np.random.default_rng(1)
    pts = rng.random((1500, 8))
    s = 5
    knn = kneighbors_graph(pts, n_neighbors=s, mode="connectivity", include_self=False)
    sym = ((knn + knn.T) > 0).tocoo()
    ei, _ = sparse_simplex_graph(torch.from_numpy(pts), s, chunk_size=100)
    assert {(int(i), int(j)) for j, i in ei.T} == set(zip(sym.row.tolist(), sym.col.tolist()))


def test_gathered_distance_gradcheck_separate_rows_and_columns():
    from tg_cnn2gnn.functional.distance import gathered_distance
    x = torch.randn(6, 3, dtype=torch.float64, requires_grad=True)
    y = torch.randn(9, 3, dtype=torch.float64, requires_grad=True)
    index = torch.randint(0, 9, (6, 4))
    for metric in ("sqeuclidean", "inner"):
        assert torch.autograd.gradcheck(lambda a, b: gathered_distance(a, index, metric, y=b), (x, y))
