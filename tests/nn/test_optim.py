"""Sparse-gradient training path == dense path; LazyAdam/LazySGD == torch optimisers on dense."""
import copy

import pytest
import torch
import torch.nn.functional as F

from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LazyAdam, LazySGD, LearnedGraphHead, make_optimizer


def _models(num_train=60):
    torch.manual_seed(0)
    head = LearnedGraphHead(7, num_train, s=4, hidden_channels=(9, 6), sparse_grad=True)
    fast = CNN2GNN(head, GraphStudent(7, 8, 3, dropout=0.0)).double()
    slow = copy.deepcopy(fast)
    slow.head.sparse_grad = False              # ordinary dense gradient of the whole layer
    return fast, slow


def _batch(num_train=60, b=12):
    g = torch.Generator().manual_seed(1)
    x = torch.randn(b, 7, generator=g, dtype=torch.float64)
    y = torch.randint(0, 3, (b,), generator=g)
    idx = torch.randperm(num_train, generator=g)[:b]
    return x, y, idx


@pytest.mark.parametrize("kind,reference", [
    ("adam", lambda p: torch.optim.Adam(p, lr=0.01)),
    ("adamw", lambda p: torch.optim.AdamW(p, lr=0.01, weight_decay=0.0)),
    ("sgd", lambda p: torch.optim.SGD(p, lr=0.05, momentum=0.9)),
])
def test_sparse_path_equals_dense_path_after_one_step(kind, reference):
    fast, slow = _models()
    x, y, idx = _batch()
    opt_fast = make_optimizer(fast, lr=0.05 if kind == "sgd" else 0.01, kind=kind,
                              **({"momentum": 0.9} if kind == "sgd" else {}))
    opt_slow = reference(slow.parameters())
    loss_fast = F.cross_entropy(fast(x, idx), y)
    loss_slow = F.cross_entropy(slow(x, idx), y)
    assert torch.equal(loss_fast, loss_slow)
    loss_fast.backward()
    loss_slow.backward()
    assert fast.head.anchor_weight.grad.is_sparse and not slow.head.anchor_weight.grad.is_sparse
    torch.testing.assert_close(fast.head.anchor_weight.grad.to_dense(), slow.head.anchor_weight.grad,
                               rtol=0, atol=0)
    before = fast.head.anchor_weight.detach().clone()
    grad_rows = (slow.head.anchor_weight.grad != 0).any(1).nonzero().flatten().tolist()
    assert set(grad_rows) <= set(idx.tolist()) and len(grad_rows) >= 4
    opt_fast.step()
    opt_slow.step()
    for (name, a), b in zip(fast.named_parameters(), slow.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-15, msg=name)
    # the update moved exactly the batch's rows that received a gradient
    moved = (fast.head.anchor_weight.detach() != before).any(1).nonzero().flatten()
    assert sorted(moved.tolist()) == sorted(grad_rows)
    # and the second forward agrees as well
    torch.testing.assert_close(fast(x, idx), slow(x, idx), rtol=1e-12, atol=1e-12)


def test_lazy_weight_decay_only_touches_batch_rows():
    fast, slow = _models()
    x, y, idx = _batch()
    opt_fast = make_optimizer(fast, lr=0.01, kind="adamw", weight_decay=0.1)
    opt_slow = torch.optim.AdamW(slow.parameters(), lr=0.01, weight_decay=0.1)
    for m, o in ((fast, opt_fast), (slow, opt_slow)):
        F.cross_entropy(m(x, idx), y).backward()
        o.step()
    rows = torch.zeros(60, dtype=torch.bool)
    rows[idx] = True
    torch.testing.assert_close(fast.head.anchor_weight[rows], slow.head.anchor_weight[rows],
                               rtol=1e-12, atol=1e-15)
    torch.testing.assert_close(fast.head.body[0].weight, slow.head.body[0].weight,
                               rtol=1e-12, atol=1e-15)
    # dense AdamW decays every row; the lazy update leaves unsampled rows untouched
    assert not torch.equal(slow.head.anchor_weight[~rows], fast.head.anchor_weight[~rows])
    fresh, _ = _models()
    assert torch.equal(fast.head.anchor_weight[~rows], fresh.head.anchor_weight[~rows])


@pytest.mark.parametrize("fused", [True, False])
@pytest.mark.parametrize("decoupled", [False, True])
def test_lazy_adam_equals_torch_adam_on_dense_params(fused, decoupled):
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(5, 7), torch.nn.Tanh(), torch.nn.Linear(7, 2)).double()
    ref = copy.deepcopy(net)
    cls = torch.optim.AdamW if decoupled else torch.optim.Adam
    o1 = LazyAdam(net.parameters(), lr=0.03, weight_decay=0.01, decoupled=decoupled, fused=fused)
    o2 = cls(ref.parameters(), lr=0.03, weight_decay=0.01)
    sched1 = torch.optim.lr_scheduler.StepLR(o1, 2, gamma=0.5)
    sched2 = torch.optim.lr_scheduler.StepLR(o2, 2, gamma=0.5)
    x = torch.randn(16, 5, dtype=torch.float64)
    for _ in range(6):
        for m, o, s in ((net, o1, sched1), (ref, o2, sched2)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
            s.step()
    for a, b in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-12)
    assert o1.param_groups[0]["lr"] == pytest.approx(0.03 * 0.5 ** 3)


def test_lazy_sgd_equals_torch_sgd_on_dense_params():
    torch.manual_seed(0)
    net = torch.nn.Linear(5, 3).double()
    ref = copy.deepcopy(net)
    o1 = LazySGD(net.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    o2 = torch.optim.SGD(ref.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01, nesterov=True)
    x = torch.randn(8, 5, dtype=torch.float64)
    for _ in range(4):
        for m, o in ((net, o1), (ref, o2)):
            o.zero_grad()
            m(x).square().mean().backward()
            o.step()
    for a, b in zip(net.parameters(), ref.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-14)


def test_lazy_adam_sparse_rows_equal_sparse_adam():
    torch.manual_seed(0)
    w1 = torch.nn.Parameter(torch.randn(20, 4, dtype=torch.float64))
    w2 = torch.nn.Parameter(w1.detach().clone())
    # SparseAdam adds eps before the bias correction, Adam (and LazyAdam) after it:
    # with a negligible eps the two lazy updates must agree.
    o1 = LazyAdam([w1], lr=0.05, eps=1e-30)
    o2 = torch.optim.SparseAdam([w2], lr=0.05, eps=1e-30)
    for step in range(5):
        idx = torch.randint(0, 20, (6,), generator=torch.Generator().manual_seed(step))
        for w, o in ((w1, o1), (w2, o2)):
            o.zero_grad()
            F.embedding(idx, w, sparse=True).sin().sum().backward()
            o.step()
    torch.testing.assert_close(w1, w2, rtol=1e-10, atol=1e-12)


def test_make_optimizer_arguments():
    model, _ = _models()
    model.head.body[0].weight.requires_grad_(False)
    opt = make_optimizer(model, lr=0.1)
    params = [p for g in opt.param_groups for p in g["params"]]
    assert all(p is not model.head.body[0].weight for p in params)
    assert len(params) == sum(1 for p in model.parameters() if p.requires_grad)
    assert isinstance(make_optimizer(model.parameters(), kind="sgd", momentum=0.5), LazySGD)
    with pytest.raises(ValueError, match="kind='rmsprop'.*'adam', 'adamw', 'sgd'"):
        make_optimizer(model, kind="rmsprop")
    with pytest.raises(TypeError, match="momentum"):
        make_optimizer(model, kind="adam", momentum=0.9)
    with pytest.raises(ValueError, match="lr must be >= 0"):
        make_optimizer(model, lr=-1.0)
    with pytest.raises(ValueError, match="no trainable"):
        make_optimizer(torch.nn.Linear(2, 2).requires_grad_(False))
    # state_dict round trip
    x, y, idx = _batch()
    F.cross_entropy(model(x, idx), y).backward()
    opt.step()
    opt2 = make_optimizer(model, lr=0.1)
    opt2.load_state_dict(opt.state_dict())
    assert set(opt2.state_dict()["state"]) == set(opt.state_dict()["state"])


def test_clip_grad_norm_matches_torch_on_the_densified_gradient():
    fast, slow = _models()
    x, y, idx = _batch()
    for m in (fast, slow):
        F.cross_entropy(m(x, idx), y).backward()
    from tg_cnn2gnn.nn import clip_grad_norm
    n_fast = clip_grad_norm(fast, 0.01)
    n_slow = torch.nn.utils.clip_grad_norm_(slow.parameters(), 0.01)
    torch.testing.assert_close(n_fast.double(), n_slow.double())
    assert n_fast > 0.01                                     # clipping did happen
    for a, b in zip(fast.parameters(), slow.parameters()):
        ga = a.grad.to_dense() if a.grad.is_sparse else a.grad
        torch.testing.assert_close(ga, b.grad, rtol=1e-10, atol=1e-14)
