"""Distillers by name: the registry, the base contract (frozen teacher, no side effects) and
each objective's loss terms against a hand computation."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.distributed as dist
from torch import nn

from distill_helpers import make_model, make_teacher
from tg_cnn2gnn.distill import (DISTILLERS, CEDistiller, CNN2GNNDistiller, DKDDistiller, Distiller, HeteroDistiller,
                                KDDistiller, TrainBatch, build_distiller)
from tg_cnn2gnn.nn.mlp import MLP

ZS = torch.tensor([[2.0, -1.0, 0.5, 0.0], [0.3, 0.2, -0.7, 1.5], [-1.0, 2.5, 0.0, 0.4]], dtype=torch.float64)
ZT = torch.tensor([[3.0, 0.0, -1.0, 0.5], [-0.5, 1.0, 0.0, 2.0], [0.0, 1.0, 2.0, -1.0]], dtype=torch.float64)
Y = torch.tensor([0, 3, 1])


class Identity(nn.Module):
    """A 'student' whose logits are its input features (so the loss sees fixed logits; the
    distillers compute the loss in float32, hence the 1e-6 tolerances)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(()))

    def forward(self, x):
        return x * self.w


def _batch(teacher_logits=ZT):
    return TrainBatch(images=torch.zeros(3, 1, 2, 2), labels=Y, index=torch.arange(3), features=ZS.clone(),
                      teacher_logits=teacher_logits)


def _softmax(z):
    e = np.exp(z - z.max())
    return e / e.sum()


def _kl(p, q):
    return float(sum(pi * math.log(pi / qi) for pi, qi in zip(p, q) if pi > 0))


def _ce(z, t):
    return -math.log(_softmax(z)[t])


def test_registry_names_and_unknown_name():
    assert set(DISTILLERS) == {"cnn2gnn", "kd", "dkd", "ce"}
    for name, cls in DISTILLERS.items():
        assert issubclass(cls, Distiller) and cls.name == name
    with pytest.raises(ValueError, match=r"unknown distiller 'fitnet'; valid names: ce, cnn2gnn, dkd, kd"):
        build_distiller("fitnet", None, MLP(4, 4, 4))
    d = build_distiller("kd", nn.Linear(4, 4), MLP(4, 8, 4), tau=2.0, alpha=0.5)
    assert isinstance(d, KDDistiller) and d.tau == 2.0 and d.alpha == 0.5


def test_constructor_has_no_side_effects(teacher_state):
    teacher = make_teacher(teacher_state)
    model = make_model(200)
    t_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    m_before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    for name in DISTILLERS:
        build_distiller(name, teacher, model)
    assert torch.equal(torch.get_rng_state(), rng)                       # no random draws
    assert not (dist.is_available() and dist.is_initialized())           # no process group
    assert all(p.device.type == "cpu" for p in model.parameters())        # no device move
    assert all(torch.equal(v, t_before[k]) for k, v in teacher.state_dict().items())
    assert all(torch.equal(v, m_before[k]) for k, v in model.state_dict().items())
    d = CNN2GNNDistiller(teacher, model)
    assert not hasattr(d, "ctx") and not hasattr(d, "train_features")     # no data, no placement


def test_teacher_is_frozen_and_stays_in_eval(teacher_state):
    teacher = make_teacher(teacher_state).train()
    mlp = MLP(64, 16, 10)
    for d in (KDDistiller(teacher, mlp), DKDDistiller(teacher, mlp), CEDistiller(teacher, mlp),
              CNN2GNNDistiller(teacher, make_model(50))):
        assert all(not p.requires_grad for p in d.teacher.parameters())
        d.train()
        assert d.training and d.student.training and not d.teacher.training
        learnable = {id(p) for p in d.learnable_parameters()}
        assert learnable == {id(p) for p in d.student.parameters()}
        assert not learnable & {id(p) for p in d.teacher.parameters()}
    # the teacher is run without gradient even when called by the distiller
    d = KDDistiller(teacher, mlp)
    x = torch.randn(5, 1, 8, 8)
    logits, terms = d.forward_train(TrainBatch(x, torch.arange(5) % 10, torch.arange(5)), epoch=0)
    sum(terms.values()).backward()
    assert all(p.grad is None for p in teacher.parameters())
    assert all(p.grad is not None for p in mlp.parameters())


@pytest.mark.parametrize("alpha,tau,kd_scale", [(1.0, 4.0, "tau2"), (0.5, 2.0, "none")])
def test_kd_terms_equal_a_hand_computation(alpha, tau, kd_scale):
    d = KDDistiller(nn.Linear(1, 1), Identity(), alpha=alpha, tau=tau, kd_scale=kd_scale)
    logits, terms = d.forward_train(_batch(), epoch=3)
    assert set(terms) == {"ce", "kd"} and logits.shape == (3, 4)
    zs, zt, y = ZS.numpy(), ZT.numpy(), Y.numpy()
    ce = np.mean([_ce(s, t) for s, t in zip(zs, y)])
    kl = np.mean([_kl(_softmax(t / tau), _softmax(s / tau)) for s, t in zip(zs, zt)])
    c = tau * tau if kd_scale == "tau2" else 1.0
    assert terms["ce"].item() == pytest.approx(ce, rel=1e-6)
    assert terms["kd"].item() == pytest.approx(alpha * c * kl, rel=1e-6)


def test_dkd_terms_equal_a_hand_computation_with_warmup():
    d = DKDDistiller(nn.Linear(1, 1), Identity(), alpha=1.0, beta=8.0, tau=4.0, warmup_epochs=4)
    assert [d.warmup(e) for e in range(5)] == [0.25, 0.5, 0.75, 1.0, 1.0]
    _, terms = d.forward_train(_batch(), epoch=1)                     # warm-up factor 0.5
    tau, zs, zt, y = 4.0, ZS.numpy(), ZT.numpy(), Y.numpy()
    tck, nck = [], []
    for s, t, k in zip(zs, zt, y):
        ps, pt = _softmax(s / tau), _softmax(t / tau)
        others = [j for j in range(4) if j != k]
        tck.append(_kl([pt[k], 1 - pt[k]], [ps[k], 1 - ps[k]]))
        nck.append(_kl([pt[j] / (1 - pt[k]) for j in others], [ps[j] / (1 - ps[k]) for j in others]))
    dkd = tau ** 2 * (np.mean(tck) + 8.0 * np.mean(nck))
    assert terms["ce"].item() == pytest.approx(np.mean([_ce(s, k) for s, k in zip(zs, y)]), rel=1e-6)
    assert terms["kd"].item() == pytest.approx(0.5 * dkd, rel=1e-5)
    assert d.metrics["tckd"].item() == pytest.approx(tau ** 2 * np.mean(tck), rel=1e-5)
    with pytest.raises(ValueError, match="DKDDistiller needs a teacher"):
        DKDDistiller(None, Identity())
    with pytest.raises(ValueError, match="warmup_epochs must be an int >= 0, got -1"):
        DKDDistiller(nn.Linear(1, 1), Identity(), warmup_epochs=-1)


def test_ce_terms_equal_a_hand_computation_and_need_no_teacher():
    d = build_distiller("ce", None, Identity())
    assert d.teacher is None and not d.uses_teacher
    _, terms = d.forward_train(_batch(teacher_logits=None), epoch=0)
    assert set(terms) == {"ce"}
    want = np.mean([_ce(s, k) for s, k in zip(ZS.numpy(), Y.numpy())])
    assert terms["ce"].item() == pytest.approx(want, rel=1e-6)
    with pytest.raises(ValueError, match="teacher is None but alpha=1.0"):
        KDDistiller(None, Identity())


def test_cnn2gnn_terms_sum_to_the_legacy_loss(digits, teacher_state):
    x, y, _, _ = digits
    idx = torch.arange(100)
    model = make_model(200)
    model.eval()
    d = CNN2GNNDistiller(make_teacher(teacher_state), model, alpha=0.5, relation_weight=2.0)
    logits, terms = d.forward_train(TrainBatch(x[idx], y[idx], idx), epoch=0)
    assert list(terms) == ["ce", "kd", "relation"]
    assert torch.equal(terms["relation"], 2.0 * d.metrics["rel"])
    legacy = HeteroDistiller(make_teacher(teacher_state), model, alpha=0.5, relation_weight=2.0, device="cpu")
    loss, parts, logits2 = legacy(x[idx], y[idx], idx)
    assert torch.equal(logits, logits2)
    assert torch.equal(terms["ce"] + terms["kd"] + terms["relation"], loss)
    assert parts["rel"] == d.metrics["rel"]


class _Graph:
    def __init__(self, **kw):
        self.__dict__.update(kw)


class ExtraNodesBuilder:
    """Adds the first 7 training samples as extra nodes, each linked to batch node 0."""

    def __init__(self, train_x):
        self.train_x = train_x
        self.epochs = []

    def on_epoch_start(self, model, train_x, train_y, epoch):
        self.epochs.append((epoch, train_x.shape[0], train_y.shape[0]))

    def __call__(self, model, x, y, index):
        b = x.size(0)
        ei, ew = model.graph(x.float(), index)
        extra = torch.arange(b, b + 7)
        ei = torch.cat([ei, torch.stack([extra, torch.zeros_like(extra)])], 1)
        ew = torch.cat([ew, torch.full((7,), 0.01)])
        return _Graph(x=torch.cat([x, self.train_x[:7]]), edge_index=ei, edge_weight=ew, num_batch=b,
                      aux_losses={"graph_l2": 1e-3 * ew.pow(2).sum()})


def test_graph_builder_hook(digits, teacher_state):
    x, y, _, _ = digits
    feats = x.flatten(1)
    builder = ExtraNodesBuilder(feats)
    d = CNN2GNNDistiller(make_teacher(teacher_state), make_model(200), relation_weight=1.0, graph_builder=builder)
    d.on_epoch_start(4, feats[:200], y[:200])
    assert builder.epochs == [(4, 200, 200)]
    idx = torch.arange(50)
    logits, terms = d.forward_train(TrainBatch(x[idx], y[idx], idx), epoch=4)
    assert logits.shape == (50, 10)                                   # only the batch's nodes
    assert list(terms) == ["ce", "kd", "relation", "graph_l2"]
    assert 0 < d.metrics["rel"].item() < 1
    with pytest.raises(TypeError, match="graph_builder must be callable"):
        CNN2GNNDistiller(None, make_model(10), alpha=0.0, graph_builder=3)
