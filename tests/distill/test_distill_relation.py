"""The teacher-relation term for the graph head (issue 7 lever; not in the paper)."""
from __future__ import annotations

import pytest
import torch

from distill_helpers import FIT, make_model, make_teacher, num_train
from tg_cnn2gnn.distill import HeteroDistiller, relation_loss


def test_relation_loss_equals_a_hand_computation():
    torch.manual_seed(0)
    logits = torch.randn(4, 3, dtype=torch.float64)
    edge_index = torch.tensor([[1, 0, 2, 3, 0], [0, 1, 0, 0, 2]])
    w = torch.tensor([0.5, 0.25, 0.75, 0.1, 0.4], dtype=torch.float64)
    q = torch.softmax(logits / 2.0, dim=1)
    expected = 0.0
    for e in range(edge_index.size(1)):
        j, i = int(edge_index[0, e]), int(edge_index[1, e])
        expected += float(w[e]) * (1.0 - sum(float(q[i, c] * q[j, c]) for c in range(3)))
    expected /= 4
    got = relation_loss(edge_index, w, logits, tau=2.0)
    assert float(got) == pytest.approx(expected, rel=1e-6)


def test_relation_gradient_is_teacher_disagreement_and_teacher_is_detached():
    logits = torch.tensor([[5.0, 0.0], [5.0, 0.0], [0.0, 5.0]], requires_grad=True)
    edge_index = torch.tensor([[1, 2], [0, 0]])
    w = torch.tensor([0.5, 0.5], requires_grad=True)
    relation_loss(edge_index, w, logits).backward()
    q = torch.softmax(logits.detach(), 1)
    assert torch.allclose(w.grad, (1 - torch.stack([q[1] @ q[0], q[2] @ q[0]])) / 3)
    assert w.grad[1] > 10 * w.grad[0]       # the unlike neighbour is pushed away much harder
    assert logits.grad is None


def test_relation_errors():
    ei, w, t = torch.tensor([[0], [1]]), torch.ones(1), torch.randn(2, 3)
    with pytest.raises(ValueError, match="tau"):
        relation_loss(ei, w, t, tau=0.0)
    with pytest.raises(ValueError, match="teacher_logits"):
        relation_loss(ei, w, torch.randn(6))
    with pytest.raises(ValueError, match="edge_weight"):
        relation_loss(ei, torch.ones(2), t)


def test_distiller_adds_the_term_and_it_reaches_the_head(digits, teacher_state):
    x, y, _, _ = digits
    model = make_model(200)
    idx = torch.arange(100)
    t = make_teacher(teacher_state)
    plain = HeteroDistiller(t, model, alpha=1.0, device="cpu")
    loss0, parts0, _ = plain(x[idx], y[idx], idx)
    assert "rel" not in parts0
    rel_only = HeteroDistiller(make_teacher(teacher_state), model, alpha=0.0, relation_weight=2.0, device="cpu")
    torch.manual_seed(1)
    model.train()
    loss, parts, logits = rel_only(x[idx], y[idx], idx)
    assert float(loss.detach()) == pytest.approx(float(parts["ce"]) + 2.0 * float(parts["rel"]), rel=1e-5)
    assert 0.0 < float(parts["rel"]) < 1.0
    rel_term = loss - torch.nn.functional.cross_entropy(logits, y[idx])      # 2 * rel, with its graph
    head_params = [p for p in model.head.parameters() if p.requires_grad]
    grads = torch.autograd.grad(rel_term, head_params, allow_unused=True)
    assert all(g is not None for g in grads)                                # the term reaches the head


def test_relation_weight_validation(teacher_state):
    model = make_model(50)
    with pytest.raises(ValueError, match="relation_weight must be a finite number >= 0, got -1"):
        HeteroDistiller(make_teacher(teacher_state), model, relation_weight=-1)
    with pytest.raises(ValueError, match="relation_weight=0.5; the relation term needs a teacher"):
        HeteroDistiller(None, model, alpha=0.0, relation_weight=0.5)


def test_fit_logs_the_relation_term_and_uses_cached_logits(digits, teacher_state, tmp_path):
    x, y, _, _ = digits
    n = num_train(y)
    d = HeteroDistiller(make_teacher(teacher_state), make_model(n), alpha=0.0, relation_weight=1.0,
                        device="cpu")
    summary = d.fit(x, y, epochs=2, seed=0, cache_teacher_logits=True, out_dir=tmp_path, **FIT)
    assert d.teacher_cache is not None
    rows = (tmp_path / "metrics.csv").read_text().splitlines()
    header = rows[0].split(",")
    assert "rel" in header and len(rows) == 3
    rel = [float(r.split(",")[header.index("rel")]) for r in rows[1:]]
    assert all(0.0 < v < 1.0 for v in rel)
    assert summary["relation_weight"] == 1.0
