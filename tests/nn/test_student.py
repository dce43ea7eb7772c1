"""GraphStudent: conv registry, errors, and the dense GCN fast path = GCNConv on edges."""
import pytest
import torch
from torch_geometric.nn import GATConv, GCNConv, GraphConv, SAGEConv

from tg_cnn2gnn.functional import sparse_simplex_graph
from tg_cnn2gnn.nn import CONVS, GraphStudent


@pytest.mark.parametrize("conv", sorted(CONVS))
def test_every_named_conv_runs_and_passes_gradient_to_edge_weight(conv):
    torch.manual_seed(0)
    x = torch.randn(12, 5)
    ei, ew = sparse_simplex_graph(x, 3)
    ew = ew.clone().requires_grad_(True)
    student = GraphStudent(5, 8, 3, conv=conv, dropout=0.0, dense_max_nodes=0)
    out = student(x, ei, ew)
    assert out.shape == (12, 3) and torch.isfinite(out).all()
    (g,) = torch.autograd.grad(out.square().sum(), ew)
    assert torch.isfinite(g).all() and g.abs().sum() > 0


def test_conv_class_and_errors():
    student = GraphStudent(5, 8, 3, conv=GraphConv, num_layers=3)
    assert len(student.convs) == 3 and all(isinstance(c, GraphConv) for c in student.convs)
    with pytest.raises(ValueError, match="conv='gin'.*'gcn', 'graph', 'sg'"):
        GraphStudent(5, 8, 3, conv="gin")
    with pytest.raises(TypeError, match="SAGEConv does not take edge_weight"):
        GraphStudent(5, 8, 3, conv=SAGEConv)
    with pytest.raises(TypeError, match="GATConv does not take edge_weight"):
        GraphStudent(5, 8, 3, conv=GATConv)
    with pytest.raises(TypeError, match="MessagePassing"):
        GraphStudent(5, 8, 3, conv=torch.nn.Linear)
    with pytest.raises(ValueError, match="dropout"):
        GraphStudent(5, 8, 3, dropout=1.5)
    with pytest.raises(ValueError, match="num_layers"):
        GraphStudent(5, 8, 3, num_layers=0)


def _directed_graph(n=10, seed=0):
    """A weighted graph with an asymmetric part (test nodes 7..9 only receive)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 4, generator=g, dtype=torch.float64)
    ei, ew = sparse_simplex_graph(x[:7], 3)
    src = torch.randint(0, 7, (9,), generator=g)
    dst = torch.arange(7, 10).repeat_interleave(3)
    ei = torch.cat([ei, torch.stack([src, dst])], 1)
    ew = torch.cat([ew, torch.rand(9, generator=g, dtype=torch.float64)])
    return x, ei, ew


@pytest.mark.parametrize("improved", [False, True])
def test_dense_path_equals_gcnconv_on_edges(improved):
    x, ei, ew = _directed_graph()
    torch.manual_seed(3)
    fast = GraphStudent(4, 6, 3, dropout=0.0, conv_kwargs={"improved": improved}).double()
    slow = GraphStudent(4, 6, 3, dropout=0.0, conv_kwargs={"improved": improved},
                        dense_max_nodes=0).double()
    slow.load_state_dict(fast.state_dict())
    assert fast.use_dense(10) and not slow.use_dense(10)
    outs, grads = [], []
    for m in (fast, slow):
        xx = x.clone().requires_grad_(True)
        ww = ew.clone().requires_grad_(True)
        out = m(xx, ei, ww)
        gs = torch.autograd.grad(out.sin().sum(), [xx, ww, *m.parameters()])
        outs.append(out)
        grads.append(gs)
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)


def test_dense_path_is_skipped_for_self_loops_and_other_convs():
    x, ei, ew = _directed_graph()
    ei = torch.cat([ei, torch.tensor([[2], [2]])], 1)
    ew = torch.cat([ew, torch.tensor([0.7], dtype=torch.float64)])
    torch.manual_seed(3)
    a = GraphStudent(4, 6, 3, dropout=0.0).double()
    b = GraphStudent(4, 6, 3, dropout=0.0, dense_max_nodes=0).double()
    b.load_state_dict(a.state_dict())
    # GCNConv keeps an existing self-loop weight: the student must fall back to it.
    torch.testing.assert_close(a(x, ei, ew), b(x, ei, ew))
    assert not GraphStudent(4, 6, 3, conv="graph").supports_dense
    assert not GraphStudent(4, 6, 3, conv_kwargs={"normalize": False}).supports_dense
    with pytest.raises(ValueError, match="forward_dense needs"):
        GraphStudent(4, 6, 3, conv="sg").forward_dense(x.float(), torch.zeros(10, 10))


def test_gcn_student_matches_a_hand_written_two_layer_gcn():
    x, ei, ew = _directed_graph()
    torch.manual_seed(4)
    st = GraphStudent(4, 6, 3, dropout=0.0, dense_max_nodes=0).double()
    a = torch.zeros(10, 10, dtype=torch.float64).index_put((ei[1], ei[0]), ew, accumulate=True)
    a_hat = a + torch.eye(10, dtype=torch.float64)
    dinv = a_hat.sum(1).rsqrt()
    norm = dinv[:, None] * a_hat * dinv[None, :]
    c0, c1 = st.convs
    h = torch.relu(norm @ x @ c0.lin.weight.T + c0.bias)
    ref = norm @ h @ c1.lin.weight.T + c1.bias
    torch.testing.assert_close(st(x, ei, ew), ref)
    assert isinstance(c0, GCNConv)
