"""The edge-removal ablation ``predict_isolated`` (issue 7)."""
from __future__ import annotations

import torch

from tg_cnn2gnn import CNN2GNN, EucGNN, GraphStudent, LearnedGraphHead


def _gcn_alone(student, x):
    """A GCN node with only its self-loop: normalised weight 1, so each layer is Linear (+ReLU)."""
    h = x
    for i, conv in enumerate(student.convs):
        h = h @ conv.lin.weight.t() + conv.bias
        if i < len(student.convs) - 1:
            h = h.relu()
    return h


def test_isolated_is_the_student_on_each_node_alone():
    torch.manual_seed(0)
    model = CNN2GNN(LearnedGraphHead(12, num_train=40, s=5, hidden_channels=(8,)), GraphStudent(12, 16, 4))
    model.train()
    x = torch.randn(9, 12)
    out = model.predict_isolated(x, chunk_size=4)
    assert model.training                               # mode restored
    torch.testing.assert_close(out, _gcn_alone(model.student, x), rtol=1e-5, atol=1e-5)
    one = torch.cat([model.predict_isolated(x[i:i + 1]) for i in range(9)])
    torch.testing.assert_close(out, one, rtol=1e-5, atol=1e-6)
    # and it differs from a graph-based prediction, which mixes neighbours in
    bank = model.predict(x, mechanism="bank", train_x=torch.randn(40, 12), bank_size=10)
    assert not torch.allclose(bank, out)


def test_isolated_on_fixed_graph_baseline():
    torch.manual_seed(1)
    model = EucGNN(GraphStudent(6, 8, 3), s=3)
    x = torch.randn(5, 6)
    torch.testing.assert_close(model.predict_isolated(x), _gcn_alone(model.student, x), rtol=1e-5, atol=1e-5)
