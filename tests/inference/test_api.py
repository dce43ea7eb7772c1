"""PyG habits: stock optimisers with defaults, lazy head sizing, PyG models as students."""
import pytest
import torch
import torch.nn.functional as F
from torch import nn
from torch_geometric.nn.models import GCN, GraphSAGE

from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead, as_student


def test_stock_adam_trains_cnn2gnn_with_default_arguments(digits):
    x, y, _, _ = digits
    torch.manual_seed(0)
    model = CNN2GNN(LearnedGraphHead(64, len(y), s=10), GraphStudent(64, 32, 10))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(0)
    losses = []
    for _ in range(30):
        idx = torch.randperm(len(y), generator=g)[:100]
        loss = F.cross_entropy(model(x[idx], idx), y[idx])
        opt.zero_grad()
        loss.backward()
        assert not model.head.anchor_weight.grad.is_sparse
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) / 5 < 0.7 * sum(losses[:5]) / 5


def test_head_is_sized_lazily_and_says_so_when_unsized():
    torch.manual_seed(0)
    model = CNN2GNN(LearnedGraphHead(6, s=3, hidden_channels=(5,)), GraphStudent(6, 4, 2))
    assert model.num_train is None and model.head.anchor_weight is None
    with pytest.raises(ValueError, match=r"not sized yet.*set_num_train"):
        model(torch.randn(8, 6), torch.arange(8))
    model.set_num_train(20)
    assert model.num_train == 20 and model.head.anchor_weight.shape == (20, 5)
    assert model(torch.randn(8, 6), torch.arange(8)).shape == (8, 2)
    model.set_num_train(20)                              # same size: nothing changes
    # an unsized head takes its size from a state_dict
    fresh = CNN2GNN(LearnedGraphHead(6, s=3, hidden_channels=(5,)), GraphStudent(6, 4, 2))
    fresh.load_state_dict(model.state_dict())
    assert torch.equal(fresh.head.anchor_weight, model.head.anchor_weight)
    with pytest.warns(UserWarning, match="re-sizing"):
        model.set_num_train(30)
    assert model.head.anchor_weight.shape == (30, 5)


def _pyg_gcn_matching(student: GraphStudent) -> GCN:
    pyg = GCN(student.in_channels, student.hidden_channels, student.num_layers, student.out_channels)
    for a, b in zip(pyg.convs, student.convs):
        a.load_state_dict(b.state_dict())
    return pyg


@pytest.mark.parametrize("mechanism", ["bank", "batch", "one_by_one"])
def test_pyg_gcn_model_as_student_gives_graphstudent_predictions(digits, mechanism):
    x, _, xt, _ = digits
    torch.manual_seed(0)
    ours = CNN2GNN(LearnedGraphHead(64, len(x), s=6, hidden_channels=(16,)), GraphStudent(64, 16, 10))
    theirs = CNN2GNN(ours.head, _pyg_gcn_matching(ours.student))
    a = ours.predict(xt, mechanism=mechanism, train_x=x, bank_size=50)
    b = theirs.predict(xt, mechanism=mechanism, train_x=x, bank_size=50)
    torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)
    # and the frozen-bank predictor accepts the PyG model too
    if mechanism == "bank":
        torch.testing.assert_close(theirs.bank_predictor(x, bank_size=50)(xt), b, rtol=1e-4, atol=1e-4)


def test_pyg_model_without_edge_weights_runs_and_bad_students_are_refused(digits):
    x, _, xt, _ = digits
    sage = CNN2GNN(LearnedGraphHead(64, len(x), s=6, hidden_channels=(16,)), GraphSAGE(64, 16, 2, 10))
    assert sage.predict(xt[:5], train_x=x, bank_size=20).shape == (5, 10)

    class OneArg(nn.Module):
        def forward(self, x):
            return x

    with pytest.raises(TypeError, match=r"OneArg.forward\(x\).*edge_weight"):
        as_student(OneArg())
    with pytest.raises(TypeError, match="student must be an nn.Module"):
        CNN2GNN(LearnedGraphHead(4, 5), "gcn")


@pytest.mark.parametrize("mechanism", ["bank", "batch", "one_by_one"])
def test_predict_refuses_non_finite_rows_naming_the_tensor(mechanism):
    from tg_cnn2gnn import CNN2GNN, GraphStudent, LearnedGraphHead
    torch.manual_seed(0)
    model = CNN2GNN(LearnedGraphHead(8, num_train=50, s=3, hidden_channels=(16,)), GraphStudent(8, 8, 3))
    train_x, x = torch.randn(50, 8), torch.randn(5, 8)
    bad = x.clone()
    bad[2, 1] = float("nan")
    with pytest.raises(ValueError, match=r"x contains NaN in rows \[2\] \(1 of 5\)"):
        model.predict(bad, mechanism=mechanism, train_x=train_x, bank_size=20)
    bad_train = train_x.clone()
    bad_train[7, 0] = float("inf")
    with pytest.raises(ValueError, match=r"train_x contains \+inf or -inf in rows \[7\]"):
        model.predict(x, mechanism=mechanism, train_x=bad_train, bank_size=20)
    assert torch.isfinite(model.predict(x, mechanism=mechanism, train_x=train_x, bank_size=20)).all()
