"""Training graphs: BatchGraph (today's) and TrainingPool (Eq. 4 over a training pool)."""
import pytest
import torch
import torch.nn.functional as F

from tg_cnn2gnn.diagnostics import graph_class_consistency
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead, make_optimizer
from tg_cnn2gnn.nn.pool_graph import (BatchGraph, TrainingGraph, TrainingPool, pool_nca_loss,
                                      warm_start_anchors)

N, FEAT, C = 120, 12, 4


@pytest.fixture
def data():
    g = torch.Generator().manual_seed(0)
    return torch.randn(N, FEAT, generator=g), torch.randint(0, C, (N,), generator=g)


def make(form, s=4, seed=0):
    torch.manual_seed(seed)
    head = LearnedGraphHead(FEAT, num_train=N, s=s, hidden_channels=(16,), form=form, embedding_channels=8)
    return CNN2GNN(head, GraphStudent(FEAT, 8, C))


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_batch_graph_is_model_graph(data, form):
    x, y = data
    m = make(form)
    idx = torch.randperm(N)[:30]
    g = BatchGraph()(m, x[idx], y[idx], idx)
    ei, ew = m.graph(x[idx], idx)
    assert isinstance(g, TrainingGraph) and g.num_batch == 30 and g.aux_losses == {}
    assert torch.equal(g.edge_index, ei) and torch.equal(g.edge_weight, ew) and torch.equal(g.x, x[idx])


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_pool_equal_to_batch_reproduces_batch_graph(data, form):
    x, y = data
    m = make(form)
    idx = torch.randperm(N)[:30]
    b = TrainingPool(symmetric=True)
    b.set_pool(m, x, y, idx)
    g = b(m, x[idx], y[idx], idx)
    ei, ew = m.graph(x[idx], idx)
    assert g.x.shape == (30, FEAT) and torch.equal(g.x, x[idx])
    assert torch.equal(g.edge_index, ei)
    torch.testing.assert_close(g.edge_weight, ew, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_pool_neighbours_are_nearest_training_samples(data, form):
    x, y = data
    m = make(form)
    b = TrainingPool(chunk_size=7)                         # several ranking chunks
    b.on_epoch_start(m, x, y, 0)
    idx = torch.tensor([3, 50, 77, 100, 5])
    g = b(m, x[idx], y[idx], idx)
    # reference: full learned distances to the whole training set, own id excluded
    with torch.no_grad():
        code = m.code(x)
        d = m.dist(m.code(x[idx]), code, torch.arange(N))
        d[torch.arange(5), idx] = float("inf")
        ref = d.topk(m.s, dim=1, largest=False).indices.sort(1).values
    assert torch.equal(g.node_index[:5], idx) and torch.equal(g.x, x[g.node_index])
    for i in range(5):
        into = g.edge_index[1] == i
        src = g.node_index[g.edge_index[0, into]].sort().values
        assert torch.equal(src, ref[i])                       # exactly its s nearest, directed in
        assert float(g.edge_weight[into].detach().sum()) == pytest.approx(1.0, abs=1e-5)
    assert not bool(((g.edge_index[1] >= 5) & (g.edge_index[0] < 5)).any())  # batch sends nothing to pool
    assert bool((g.edge_index[1] >= 5).any())                                 # pool-pool edges exist
    extra = set(ref.flatten().tolist()) - set(idx.tolist())                   # selected, outside the batch
    assert sorted(g.node_index[5:].tolist()) == sorted(extra)


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_gradients_reach_head_through_edge_weight(data, form):
    x, y = data
    m = make(form, seed=1)
    b = TrainingPool(pool_edges=False)
    b.on_epoch_start(m, x, y, 0)
    idx = torch.arange(20)
    g = b(m, x[idx], y[idx], idx)
    out = m.student(g.x, g.edge_index, g.edge_weight)[:g.num_batch]
    F.cross_entropy(out, y[idx]).backward()
    assert g.edge_weight.requires_grad
    assert float(m.head.body[0].weight.grad.abs().sum()) > 0
    last = m.head.anchor_weight if form == "anchor" else m.head.proj.weight
    grad = last.grad.to_dense() if last.grad.is_sparse else last.grad
    assert float(grad.abs().sum()) > 0


def test_nca_loss_hand_computation():
    d = torch.tensor([[1.0, 2.0, float("inf")], [0.0, 3.0, 1.0], [5.0, 5.0, 5.0]], requires_grad=True)
    yb = torch.tensor([0, 1, 2])
    yp = torch.tensor([0, 1, 0])
    # row 0: positives {0}: -log(e^-1 / (e^-1 + e^-2)); row 1: positives {1}; row 2: no positive, skipped
    r0 = -torch.log(torch.exp(torch.tensor(-1.0)) / (torch.exp(torch.tensor(-1.0)) + torch.exp(torch.tensor(-2.0))))
    e = torch.exp(-torch.tensor([0.0, 3.0, 1.0]))
    r1 = -torch.log(e[1] / e.sum())
    loss = pool_nca_loss(d, yb, yp)
    assert float(loss.detach()) == pytest.approx(float((r0 + r1) / 2), rel=1e-6)
    loss.backward()
    assert torch.isfinite(d.grad).all() and float(d.grad[2].abs().sum()) == 0
    # tau scales distances
    assert float(pool_nca_loss(d.detach() * 2, yb, yp, tau=2.0)) == pytest.approx(float(loss.detach()), rel=1e-6)
    assert float(pool_nca_loss(d.detach(), yb, torch.tensor([3, 3, 3]))) == 0.0


def test_nca_aux_loss_is_weighted(data):
    x, y = data
    m = make("anchor")
    idx = torch.arange(10)
    b1, b2 = TrainingPool(nca_weight=1.0, nca_size=N), TrainingPool(nca_weight=0.5, nca_size=N)
    for b in (b1, b2):
        b.on_epoch_start(m, x, y, 0)
    l1 = b1(m, x[idx], y[idx], idx).aux_losses["nca"]
    l2 = b2(m, x[idx], y[idx], idx).aux_losses["nca"]
    assert float(l2.detach()) == pytest.approx(0.5 * float(l1.detach()), rel=1e-6)
    assert TrainingPool().nca_weight == 0.0


def test_warm_start_anchors_gives_encoder_distances(data):
    x, _ = data
    m = make("anchor")
    warm_start_anchors(m.head, x, chunk_size=50)
    with torch.no_grad():
        h = m.head.encode(x)
        d = m.head.distances_from_code(h[:7], index=torch.arange(N))
        ref = 0.5 * ((h[:7, None] - h[None]) ** 2).sum(-1) - 0.5 * (h[:7] ** 2).sum(1, keepdim=True)
    torch.testing.assert_close(d, ref, rtol=1e-4, atol=1e-4)


def test_bad_arguments(data):
    x, y = data
    m = make("anchor", s=4)
    with pytest.raises(ValueError, match=r"pool_size=5 is too small for s=4.*s \+ 2 = 6"):
        TrainingPool(5).on_epoch_start(m, x, y, 0)
    with pytest.raises(ValueError, match="exceeds"):
        TrainingPool(N + 1).on_epoch_start(m, x, y, 0)
    with pytest.raises(ValueError, match="train_y"):
        TrainingPool().on_epoch_start(m, x, y[:-1], 0)
    with pytest.raises(RuntimeError, match="on_epoch_start"):
        TrainingPool()(m, x[:5], y[:5], torch.arange(5))
    with pytest.raises(ValueError, match="pool_size"):
        TrainingPool(0)
    with pytest.raises(ValueError, match="refresh_every"):
        TrainingPool(refresh_every=0)
    with pytest.raises(ValueError, match="nca_weight"):
        TrainingPool(nca_weight=-1.0)
    with pytest.raises(ValueError, match="nca_weight"):
        TrainingPool(nca_weight=float("nan"))
    with pytest.raises(TypeError, match="symmetric"):
        TrainingPool(symmetric="yes")
    b = TrainingPool()
    b.on_epoch_start(m, x, y, 0)
    with pytest.raises(ValueError, match="index"):
        b(m, x[:5], y[:5], torch.arange(4))
    with pytest.raises(ValueError, match="anchor-form"):
        warm_start_anchors(make("embedding").head, x)
    with pytest.raises(ValueError, match="num_train"):
        warm_start_anchors(m.head, x[:10])
    with pytest.raises(ValueError, match="y_pool"):
        pool_nca_loss(torch.zeros(2, 3), torch.zeros(2, dtype=torch.long), torch.zeros(2, dtype=torch.long))


def test_pool_redrawn_on_refresh_only(data):
    x, y = data
    m = make("embedding")
    b = TrainingPool(40, refresh_every=2, seed=3)
    b.on_epoch_start(m, x, y, 0)
    p0, c0 = b.pool.clone(), b._codes
    b.on_epoch_start(m, x, y, 1)
    assert torch.equal(b.pool, p0) and b._codes is c0
    b.on_epoch_start(m, x, y, 2)
    assert not torch.equal(b.pool, p0) and b.pool.numel() == 40


# ---------------------------------------------------------------------------------- digits
sklearn = pytest.importorskip("sklearn")


@pytest.fixture(scope="module")
def digits():
    from sklearn.datasets import load_digits
    xd, yd = load_digits(return_X_y=True)
    x = torch.tensor(xd, dtype=torch.float32) / 16.0
    x = (x - x.mean()) / x.std()
    y = torch.tensor(yd)
    perm = torch.randperm(y.numel(), generator=torch.Generator().manual_seed(0))
    return x[perm[400:]], y[perm[400:]], x[perm[:400]], y[perm[:400]]


def _train(model, builder, x, y, epochs=3):
    """A tiny KD-free loop (cross-entropy + the builder's aux losses) at a fixed budget."""
    opt = make_optimizer(model, lr=0.005)
    gen = torch.Generator().manual_seed(0)
    for epoch in range(epochs):
        builder.on_epoch_start(model, x, y, epoch)
        perm = torch.randperm(x.size(0), generator=gen)
        for a in range(0, x.size(0) - 99, 100):
            idx = perm[a:a + 100]
            g = builder(model, x[idx], y[idx], idx)
            loss = F.cross_entropy(model.student(g.x, g.edge_index, g.edge_weight)[:g.num_batch], y[idx])
            loss = loss + sum(g.aux_losses.values())
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model


def test_digits_pool_head_learns_class_consistent_graph(digits):
    """Observed: batch-internal ~10 % (chance), pool + NCA ~55-60 %, warm start + pool + NCA ~70 %."""
    x, y, xt, yt = digits
    res = {}
    for name, builder, warm in (("batch", BatchGraph(), False), ("pool", TrainingPool(nca_weight=1.0), True)):
        torch.manual_seed(0)
        head = LearnedGraphHead(64, num_train=x.size(0), s=10, hidden_channels=(128, 64))
        model = CNN2GNN(head, GraphStudent(64, 64, 10))
        if warm:
            warm_start_anchors(head, x)
        _train(model, builder, x, y)
        res[name] = graph_class_consistency(model, xt, yt, x, y, bank_size=300)
    assert res["batch"]["chance"] == pytest.approx(0.1, abs=0.02)
    assert res["pool"]["learned"] > res["pool"]["chance"] + 0.35
    assert res["pool"]["learned"] > res["batch"]["learned"] + 0.3


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_batch_graph_nca_term(data, form):
    x, y = data
    m = make(form)
    idx = torch.randperm(N)[:25]
    g = BatchGraph(nca_weight=2.0)(m, x[idx], y[idx], idx)
    ei, ew = m.graph(x[idx], idx)
    assert torch.equal(g.edge_index, ei) and torch.equal(g.edge_weight, ew)   # graph unchanged
    d = m.head.distances(x[idx], idx).masked_fill(torch.eye(25, dtype=torch.bool), float("inf"))
    want = 2.0 * float(pool_nca_loss(d.detach(), y[idx], y[idx]))
    assert float(g.aux_losses["nca"].detach()) == pytest.approx(want, rel=1e-5)
    with pytest.raises(ValueError, match="nca_weight"):
        BatchGraph(nca_weight=-0.1)


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_batch_graph_nca_memory_queue(data, form):
    """The NCA term over the batch plus the last ``nca_memory`` samples, by hand: the queued
    samples' codes as they were (no grad), their own ids excluded, the graph unchanged."""
    x, y = data
    m = make(form).eval()
    b = BatchGraph(nca_weight=1.5, nca_memory=50)
    b.on_epoch_start(m, x, y, 0)
    batches = [torch.arange(0, 30), torch.arange(30, 60), torch.arange(20, 45)]   # the last overlaps both
    old_codes = {}
    for k, idx in enumerate(batches):
        with torch.no_grad():                       # the codes the queue should hold, before this step
            for i, c in zip(idx.tolist(), m.code(x[idx])):
                old_codes.setdefault(i, []).append(c)
        g = b(m, x[idx], y[idx], idx)
        ei, ew = m.graph(x[idx], idx)
        assert torch.equal(g.edge_index, ei) and torch.equal(g.edge_weight, ew)
        if k > 0:
            queue = torch.cat(batches[:k])[-50:]      # FIFO: the last 50 samples pushed before this step
            code = m.code(x[idx])
            d_b = m.dist(code, code, idx).masked_fill(torch.eye(idx.numel(), dtype=torch.bool), float("inf"))
            d_q = torch.stack([torch.stack([m.dist(code[r:r + 1], None if form == "anchor" else
                                                   old_codes[int(j)][0].view(1, -1), j.view(1)).view(())
                                            for j in queue]) for r in range(idx.numel())])
            d_q = d_q.masked_fill(queue.view(1, -1) == idx.view(-1, 1), float("inf"))
            want = 1.5 * pool_nca_loss(torch.cat([d_b, d_q], 1), y[idx], torch.cat([y[idx], y[queue]]))
            assert float(g.aux_losses["nca"].detach()) == pytest.approx(float(want.detach()), rel=1e-5)
        with torch.no_grad():                       # a training step: the queued codes go stale
            for p in m.head.parameters():
                p.add_(0.05 * torch.randn_like(p))
    assert torch.equal(b._mem_ids, torch.cat(batches)[-50:])
    assert (b._mem_codes is None) == (form == "anchor")
    if b._mem_codes is not None:
        assert not b._mem_codes.requires_grad and b._mem_codes.shape == (50, 8)
    b.on_epoch_start(m, x, y, 1)                     # emptied: the next step sees the batch only
    idx = batches[0]
    g0 = BatchGraph(nca_weight=1.5)(m, x[idx], y[idx], idx)
    assert float(b(m, x[idx], y[idx], idx).aux_losses["nca"].detach()) == \
        pytest.approx(float(g0.aux_losses["nca"].detach()))
    for bad in (-1, 2.5, True):
        with pytest.raises(ValueError, match="nca_memory"):
            BatchGraph(nca_weight=1.0, nca_memory=bad)


def test_batch_graph_nca_memory_changes_the_loss_and_keeps_its_gradient(data):
    x, y = data
    m = make("embedding")
    b = BatchGraph(nca_weight=1.0, nca_memory=40)
    b(m, x[:30], y[:30], torch.arange(30))
    xb = x[30:60].clone().requires_grad_(True)
    loss = b(m, xb, y[30:60], torch.arange(30, 60)).aux_losses["nca"]
    batch_only = BatchGraph(nca_weight=1.0)(m, xb, y[30:60], torch.arange(30, 60)).aux_losses["nca"]
    assert abs(float(loss.detach()) - float(batch_only.detach())) > 1e-3
    loss.backward()
    assert torch.isfinite(xb.grad).all() and xb.grad.abs().sum() > 0
