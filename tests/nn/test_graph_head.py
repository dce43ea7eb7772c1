"""LearnedGraphHead: columns used, index errors, graph = Eq. 3 + symmetrisation, gradients."""
import pytest
import torch
import torch.nn.functional as F

from tg_cnn2gnn.functional import edges_to_dense, sparse_simplex
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead


def _anchor(num_train=40, f=6, s=4, hidden=(8, 5), **kw):
    torch.manual_seed(0)
    return LearnedGraphHead(f, num_train, s=s, hidden_channels=hidden, **kw).double()


def test_anchor_batch_uses_exactly_its_columns():
    head = _anchor()
    x = torch.randn(7, 6, dtype=torch.float64)
    idx = torch.tensor([3, 17, 0, 39, 22, 5, 11])
    d = head.distances(x, idx)
    full = head.encode(x) @ head.anchor_weight.T + head.anchor_bias.view(1, -1)   # all 40 outputs
    assert d.shape == (7, 7)
    torch.testing.assert_close(d, full[:, idx], rtol=1e-12, atol=1e-12)

    # Rows of the decision layer outside idx have no influence at all ...
    others = torch.tensor(sorted(set(range(40)) - set(idx.tolist())))
    with torch.no_grad():
        head.anchor_weight[others] += 100.0
        head.anchor_bias[others] -= 100.0
    assert torch.equal(head.distances(x, idx), d)
    # ... and a row inside idx changes exactly its own column.
    with torch.no_grad():
        head.anchor_bias[17] += 1.0
    d2 = head.distances(x, idx)
    assert torch.equal(d2[:, [0, 2, 3, 4, 5, 6]], d[:, [0, 2, 3, 4, 5, 6]])
    torch.testing.assert_close(d2[:, 1], d[:, 1] + 1.0)


def test_anchor_gradient_is_row_sparse_on_the_batch_rows():
    head = _anchor(sparse_grad=True)            # opt-in (default False: stock optimisers work)
    x = torch.randn(7, 6, dtype=torch.float64)
    idx = torch.tensor([3, 17, 0, 39, 22, 5, 11])
    _, ew = head(x, idx)
    (ew * torch.arange(ew.numel(), dtype=ew.dtype)).sum().backward()
    g = head.anchor_weight.grad
    assert g.is_sparse
    g = g.coalesce()
    assert sorted(g.indices()[0].tolist()) == sorted(idx.tolist())
    assert head.anchor_bias.grad.is_sparse


@pytest.mark.parametrize("bad", [40, -1, 1000])
def test_anchor_index_out_of_range_names_it(bad):
    head = _anchor()
    x = torch.randn(5, 6, dtype=torch.float64)
    idx = torch.tensor([0, 1, bad, 2, 3])
    with pytest.raises(ValueError, match=rf"\[{bad}\].*num_train=40"):
        head(x, idx)


def test_anchor_index_errors():
    head = _anchor()
    x = torch.randn(5, 6, dtype=torch.float64)
    with pytest.raises(ValueError, match="needs index"):
        head(x)
    with pytest.raises(ValueError, match=r"shape \[5\]"):
        head(x, torch.arange(4))
    with pytest.raises(TypeError, match="integer"):
        head(x, torch.arange(5).double())
    with pytest.raises(ValueError, match="form="):
        LearnedGraphHead(6, 10, form="bilinear")
    unsized = LearnedGraphHead(6, None, form="anchor")       # sized lazily
    with pytest.raises(ValueError, match=r"not sized yet.*set_num_train"):
        unsized(x, torch.arange(5))
    with pytest.raises(ValueError, match="num_train"):
        unsized.set_num_train(0)


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_graph_is_symmetrised_eq3_of_the_distances(form):
    head = _anchor(form=form)
    x = torch.randn(9, 6, dtype=torch.float64)
    idx = torch.randperm(40)[:9]
    ei, ew, p = head(x, idx, return_dense=True)
    d = head.distances(x, idx)
    ref_p = sparse_simplex(d, 4, exclude_self=True)        # functional reference (dense)
    torch.testing.assert_close(p, ref_p)
    torch.testing.assert_close(p.sum(1), torch.ones(9, dtype=torch.float64))
    assert (p.diagonal() == 0).all() and ((p > 0).sum(1) <= 4).all()
    torch.testing.assert_close(edges_to_dense(ei, ew, num_nodes=9), 0.5 * (ref_p + ref_p.T))


def test_small_batch_caps_s_and_tiny_batch_raises():
    head = _anchor(s=4)
    x = torch.randn(4, 6, dtype=torch.float64)
    _, _, p = head(x, torch.arange(4), return_dense=True)      # s capped at B - 2 = 2
    assert ((p > 0).sum(1) <= 2).all()
    torch.testing.assert_close(p.sum(1), torch.ones(4, dtype=torch.float64))
    with pytest.raises(ValueError, match="at least 2"):
        head(x[:1], torch.arange(1))


@pytest.mark.parametrize("form", ["anchor", "embedding"])
@pytest.mark.parametrize("dense_max_nodes", [0, 512])      # edge path and dense GCN path
def test_student_loss_reaches_every_head_parameter(form, dense_max_nodes):
    torch.manual_seed(1)
    head = LearnedGraphHead(6, 30, s=3, hidden_channels=(8, 5), form=form, embedding_channels=4)
    model = CNN2GNN(head, GraphStudent(6, 8, 3, dropout=0.0, dense_max_nodes=dense_max_nodes))
    x, y = torch.randn(10, 6), torch.randint(0, 3, (10,))
    idx = torch.randperm(30)[:10]
    F.cross_entropy(model(x, idx), y).backward()
    for name, p in model.head.named_parameters():
        assert p.grad is not None, name
        g = p.grad.coalesce().values() if p.grad.is_sparse else p.grad
        assert torch.isfinite(g).all() and g.abs().sum() > 0, name


def test_embedding_parameter_count_does_not_depend_on_num_train():
    def count(m):
        return sum(p.numel() for p in m.parameters())
    small = LearnedGraphHead(784, 10, form="embedding")
    large = LearnedGraphHead(784, 1_000_000, form="embedding")
    none = LearnedGraphHead(784, None, form="embedding")
    assert count(small) == count(large) == count(none)
    # whereas the anchor head grows by (last hidden + bias) per training sample
    a1 = LearnedGraphHead(20, 100, hidden_channels=(16, 8))
    a2 = LearnedGraphHead(20, 150, hidden_channels=(16, 8))
    assert count(a2) - count(a1) == 50 * (8 + 1)


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_gradcheck_through_edge_weight(form):
    torch.manual_seed(2)
    head = LearnedGraphHead(4, 9, s=2, hidden_channels=(5,), form=form, embedding_channels=3,
                            sparse_grad=False).double()
    x = torch.randn(6, 4, dtype=torch.float64, requires_grad=True)
    idx = torch.tensor([8, 0, 3, 5, 1, 7])
    ei0, _ = head(x, idx)

    def fn(inp):
        ei, ew = head(inp, idx)
        assert torch.equal(ei, ei0)          # the selection is locally constant
        return ew
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-6)

    # and w.r.t. the head's own parameters (last layer / projection)
    name = "anchor_weight" if form == "anchor" else "proj.weight"
    w0 = dict(head.named_parameters())[name].detach().clone().requires_grad_(True)

    def fw(w):
        return torch.func.functional_call(head, {name: w}, (x.detach(), idx))[1]
    assert torch.autograd.gradcheck(fw, (w0,), eps=1e-6, atol=1e-6)


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_training_forward_dense_path_equals_edge_path(form):
    torch.manual_seed(5)
    head = LearnedGraphHead(6, 30, s=3, hidden_channels=(8,), form=form, embedding_channels=4)
    fast = CNN2GNN(head, GraphStudent(6, 8, 3, dropout=0.0)).double()
    slow = CNN2GNN(LearnedGraphHead(6, 30, s=3, hidden_channels=(8,), form=form,
                                    embedding_channels=4),
                   GraphStudent(6, 8, 3, dropout=0.0, dense_max_nodes=0)).double()
    slow.load_state_dict(fast.state_dict())
    x = torch.randn(12, 6, dtype=torch.float64)
    idx = torch.randperm(30)[:12]
    out_f, out_s = fast(x, idx), slow(x, idx)
    torch.testing.assert_close(out_f, out_s, rtol=1e-12, atol=1e-12)
    out_f.sin().sum().backward()
    out_s.sin().sum().backward()
    for (name, a), b in zip(fast.named_parameters(), slow.parameters()):
        ga = a.grad.to_dense() if a.grad.is_sparse else a.grad
        gb = b.grad.to_dense() if b.grad.is_sparse else b.grad
        torch.testing.assert_close(ga, gb, rtol=1e-10, atol=1e-12, msg=name)
    # and the dense matrix is exactly the edge list's A = (P + P^T) / 2
    ei, ew = fast.graph(x, idx)
    torch.testing.assert_close(fast.dense_graph(x, idx), edges_to_dense(ei, ew, num_nodes=12))


def test_code_scale_normalises_the_codes_and_keeps_gradients():
    torch.manual_seed(0)
    x = torch.randn(12, 20)
    head = LearnedGraphHead(20, s=3, hidden_channels=(16,), form="embedding", embedding_channels=8, code_scale=3.0)
    raw = LearnedGraphHead(20, s=3, hidden_channels=(16,), form="embedding", embedding_channels=8)
    raw.load_state_dict(head.state_dict())
    code = head.encode(x)
    torch.testing.assert_close(code.norm(dim=1), torch.full((12,), 3.0))              # on the sphere of radius c
    torch.testing.assert_close(code, 3.0 * raw.encode(x) / raw.encode(x).norm(dim=1, keepdim=True))
    d = head.distances(x)
    assert d.min() >= -1e-5 and d.max() <= 4 * 3.0 ** 2 + 1e-4                           # [0, 4 c^2]
    d.sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in head.parameters())
    assert "code_scale=3" in repr(head)


@pytest.mark.parametrize("bad, form, match", [(-1.0, "embedding", "finite number >= 0"),
                                              (float("nan"), "embedding", "finite number >= 0"),
                                              ("2", "embedding", "finite number >= 0"),
                                              (2.0, "anchor", "needs form='embedding'")])
def test_code_scale_errors(bad, form, match):
    with pytest.raises(ValueError, match=match):
        LearnedGraphHead(20, 50, s=3, hidden_channels=(16,), form=form, code_scale=bad)
