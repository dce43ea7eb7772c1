"""Inductive inference: Mechanism 1 / 2, bank, direct; exact graphs and invariances."""
import pytest
import torch
from torch import nn

from tg_cnn2gnn.functional import dense_to_edges, edges_to_dense, sparse_simplex, sparse_simplex_graph
from tg_cnn2gnn.nn import (CNN2GNN, EucGNN, GraphStudent, InGNN, LearnedGraphHead,
                           proxy_distances, select_bank)

N_TRAIN, F_IN, C = 40, 5, 3


def _data():
    g = torch.Generator().manual_seed(0)
    train_x = torch.randn(N_TRAIN, F_IN, generator=g)
    test_x = torch.randn(13, F_IN, generator=g)
    return train_x, test_x


def _model(form="anchor", s=4, dense_max_nodes=512, seed=0):
    torch.manual_seed(seed)
    head = LearnedGraphHead(F_IN, N_TRAIN, s=s, hidden_channels=(8,), form=form,
                            embedding_channels=4)
    return CNN2GNN(head, GraphStudent(F_IN, 6, C, dense_max_nodes=dense_max_nodes))


def _models():
    torch.manual_seed(0)
    return {
        "anchor": _model("anchor"),
        "embedding": _model("embedding"),
        "ingnn": InGNN(GraphStudent(F_IN, 6, C), s=4),
        "eucgnn": EucGNN(GraphStudent(F_IN, 6, C), s=4),
    }


class Recorder(nn.Module):
    """A 'student' that records the graph it is given and returns zeros."""

    def __init__(self, in_channels):
        super().__init__()
        self.in_channels, self.out_channels = in_channels, 2
        self.calls = []

    def forward(self, x, edge_index, edge_weight=None):
        self.calls.append((x.clone(), edge_index.clone(), edge_weight.clone()))
        return x.new_zeros(x.size(0), 2)


# ------------------------------------------------------------------ Mechanism 2
def test_proxy_rule_on_a_hand_built_example():
    d_tr = torch.tensor([[0.10, 0.50, 0.90, 0.30],     # s = 2: p = (2/3 @ c0, 1/3 @ c3)
                         [0.80, 0.20, 0.40, 0.60],     # p = (2/3 @ c1, 1/3 @ c2)
                         [0.70, 0.60, 0.05, 0.90],     # p = (0.65, 0.10)/0.75 -> c2
                         [0.95, 0.90, 0.97, 0.15]])    # p = (0.75, 0.05)/0.80 -> c3
    p = sparse_simplex(d_tr, 2)
    torch.testing.assert_close(p[0], torch.tensor([2 / 3, 0, 0, 1 / 3]))
    proxy, d_tt = proxy_distances(d_tr, 2)
    assert proxy.tolist() == [0, 1, 2, 3] == p.argmax(1).tolist()
    torch.testing.assert_close(d_tt, d_tr)
    # two test samples sharing a proxy get identical approximate columns
    d2 = torch.cat([d_tr, torch.tensor([[0.05, 0.9, 0.9, 0.3]])])
    proxy2, d_tt2 = proxy_distances(d2, 2)
    assert proxy2.tolist() == [0, 1, 2, 3, 0]
    assert torch.equal(d_tt2[:, 4], d2[:, 0]) and torch.equal(d_tt2[:, 0], d2[:, 0])


def test_mechanism2_builds_the_paper_graph_end_to_end():
    """Linear anchor head with hand-set weights: head(one-hot k)[j] = W[j, k]."""
    d_tr = torch.tensor([[0.10, 0.50, 0.90, 0.30],
                         [0.80, 0.20, 0.40, 0.60],
                         [0.70, 0.60, 0.05, 0.90],
                         [0.95, 0.90, 0.97, 0.15],
                         [0.05, 0.90, 0.90, 0.30]])
    t, r = d_tr.shape
    head = LearnedGraphHead(t, 7, s=2, hidden_channels=())
    bank = torch.tensor([1, 3, 4, 6])
    with torch.no_grad():
        head.anchor_weight.normal_()
        head.anchor_bias.zero_()
        head.anchor_weight[bank] = d_tr.T
    rec = Recorder(t)
    model = CNN2GNN(head, rec)
    x_test = torch.eye(t)
    model.predict(x_test, mechanism="batch", train_x=torch.zeros(7, t), bank=bank, batch_size=t)
    (x_seen, ei, ew), = rec.calls
    assert torch.equal(x_seen, x_test)
    # expected: proxies c0, c1, c2, c3, c0 -> d(i, k) = d_tr[i, r(k)], Eq. 3 over T, symmetrised
    d_tt = d_tr[:, [0, 1, 2, 3, 0]]
    p = sparse_simplex(d_tt, 2, exclude_self=True)
    torch.testing.assert_close(edges_to_dense(ei, ew, num_nodes=t), 0.5 * (p + p.T))


def test_mechanism2_small_tail_batch_is_merged():
    model = _model()
    train_x, test_x = _data()
    out = model.predict(test_x, mechanism="batch", train_x=train_x, batch_size=6)  # 6, 7 (1 merged)
    assert out.shape == (13, C) and torch.isfinite(out).all()
    with pytest.raises(ValueError, match="at least 3 test samples"):
        model.predict(test_x[:2], mechanism="batch", train_x=train_x)


# ------------------------------------------------------------------ Mechanism 1
@pytest.mark.parametrize("name", ["anchor", "embedding", "ingnn"])
def test_mechanism1_is_order_invariant_and_equals_one_at_a_time(name):
    model = _models()[name]
    train_x, test_x = _data()
    kw = dict(mechanism="one_by_one", train_x=train_x, bank_size=10, chunk_size=4)
    out = model.predict(test_x, **kw)
    perm = torch.randperm(13, generator=torch.Generator().manual_seed(5))
    assert torch.equal(model.predict(test_x[perm], **kw), out[perm])
    single = torch.cat([model.predict(test_x[i:i + 1], **kw) for i in range(13)])
    assert torch.equal(single, out)


def _reference_gcn(model, x_nodes, adj):
    """Run the model's student on a dense adjacency through PyG's GCNConv on edges."""
    ref_student = GraphStudent(F_IN, 6, C, dense_max_nodes=0)
    ref_student.load_state_dict(model.student.state_dict())
    ref_student.eval()
    ei, ew = dense_to_edges(adj)
    with torch.no_grad():
        return ref_student(x_nodes, ei, ew)


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_mechanism1_graph_matches_its_definition(form):
    model = _model(form).eval()
    train_x, test_x = _data()
    bank = select_bank(N_TRAIN, 10, seed=3)
    out = model.predict(test_x, mechanism="one_by_one", train_x=train_x, bank=bank)
    head, xb = model.head, train_x[bank]
    big = 1e30                                    # "never a neighbour"
    with torch.no_grad():
        for t in (0, 7):
            xt = test_x[t:t + 1]
            if form == "anchor":
                d_tb = head.cross_distances(xt, index=bank)[0]
                d_bb = head.cross_distances(xb, index=bank)
                d_bt = torch.full((10,), big)                 # p_it = 0 for the anchor head
            else:
                d_tb = head.cross_distances(xt, xb)[0]
                d_bb = head.cross_distances(xb, xb)
                d_bt = d_tb
            d = torch.full((11, 11), big)
            d[0, 1:] = d_tb
            d[1:, 0] = d_bt
            d[1:, 1:] = d_bb
            d.fill_diagonal_(big)
            p = sparse_simplex(d, 4 if form == "anchor" else 4)
            adj = 0.5 * (p + p.T)
            ref = _reference_gcn(model, torch.cat([xt, xb]), adj)[0]
            torch.testing.assert_close(out[t], ref, rtol=1e-5, atol=1e-5)


# ------------------------------------------------------------------ bank
@pytest.mark.parametrize("name", ["anchor", "embedding", "ingnn", "eucgnn"])
@pytest.mark.parametrize("dense_max_nodes", [512, 0])
def test_bank_is_bit_identical_under_any_batching(name, dense_max_nodes):
    model = _models()[name]
    model.student.dense_max_nodes = dense_max_nodes
    train_x, test_x = _data()
    kw = dict(mechanism="bank", train_x=train_x, bank_size=12, seed=1)
    out = model.predict(test_x, **kw)
    perm = torch.randperm(13, generator=torch.Generator().manual_seed(7))
    assert torch.equal(model.predict(test_x[perm], **kw), out[perm])
    singles = torch.cat([model.predict(test_x[i:i + 1], **kw) for i in range(13)])
    assert torch.equal(singles, out)
    pieces = torch.cat([model.predict(test_x[a:b], **kw) for a, b in [(0, 5), (5, 6), (6, 13)]])
    assert torch.equal(pieces, out)
    # neither do the batch_size and chunk_size arguments
    assert torch.equal(model.predict(test_x, batch_size=1, **kw), out)
    assert torch.equal(model.predict(test_x, chunk_size=3, **kw), out)
    # and the row-wise Linear swap is undone afterwards
    assert all("forward" not in m.__dict__ for m in model.modules())


@pytest.mark.parametrize("name", ["anchor", "embedding", "eucgnn"])
def test_bank_graph_matches_its_definition(name):
    model = _models()[name].eval()
    train_x, test_x = _data()
    bank = select_bank(N_TRAIN, 12, seed=2)
    out = model.predict(test_x, mechanism="bank", train_x=train_x, bank=bank)
    xb = train_x[bank]
    with torch.no_grad():
        d_bb = model.dist(model.code(xb), model.code(xb), bank)
        d_tb = model.dist(model.code(test_x), model.code(xb), bank)
    p_bb = sparse_simplex(d_bb, 4, exclude_self=True)
    p_tb = sparse_simplex(d_tb, 4)
    adj = torch.zeros(12 + 13, 12 + 13)
    adj[:12, :12] = 0.5 * (p_bb + p_bb.T)   # training-style graph among the bank
    adj[12:, :12] = p_tb                    # directed bank -> test edges, weight p_tj
    ref = _reference_gcn(model, torch.cat([xb, test_x]), adj)[12:]
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_bank_is_fixed_by_seed_and_independent_of_the_test_set():
    assert torch.equal(select_bank(100, 10, 3), select_bank(100, 10, 3))
    assert not torch.equal(select_bank(100, 10, 3), select_bank(100, 10, 4))
    b = select_bank(100, 10, 3)
    assert b.unique().numel() == 10 and (b >= 0).all() and (b < 100).all()
    with pytest.raises(ValueError, match="bank_size=200 exceeds"):
        select_bank(100, 200)


# ------------------------------------------------------------------ direct / baselines / errors
def test_direct_embedding_is_eq3_over_the_test_batch():
    model = _model("embedding").eval()
    _, test_x = _data()
    out = model.predict(test_x, mechanism="direct", batch_size=13)
    with torch.no_grad():
        e = model.head.encode(test_x)
    p = sparse_simplex(torch.cdist(e, e).square(), 4, exclude_self=True)
    ref = _reference_gcn(model, test_x, 0.5 * (p + p.T))
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("cls,metric", [(InGNN, "inner"), (EucGNN, "euclidean")])
def test_fixed_graph_baselines_use_the_feature_graph(cls, metric):
    torch.manual_seed(0)
    model = cls(GraphStudent(F_IN, 6, C, dropout=0.0, dense_max_nodes=0), s=4).eval()
    train_x, test_x = _data()
    ei, ew = model.graph(train_x[:20])
    ei_ref, ew_ref = sparse_simplex_graph(train_x[:20], 4, metric=metric)
    assert torch.equal(ei, ei_ref)
    torch.testing.assert_close(ew, ew_ref)
    with torch.no_grad():
        ref = model.student(test_x, *sparse_simplex_graph(test_x, 4, metric=metric))
    torch.testing.assert_close(model.predict(test_x, mechanism="batch", batch_size=13), ref)
    torch.testing.assert_close(model.predict(test_x, mechanism="direct", batch_size=13), ref)


def test_predict_errors_and_mode_restore():
    model = _model("anchor")
    train_x, test_x = _data()
    with pytest.raises(ValueError, match="mechanism='direct'.*'bank', 'batch', 'one_by_one'"):
        model.predict(test_x, mechanism="direct", train_x=train_x)
    with pytest.raises(ValueError, match="needs train_x"):
        model.predict(test_x, mechanism="bank")
    with pytest.raises(ValueError, match="num_train=40"):
        model.predict(test_x, mechanism="bank", train_x=train_x[:30])
    with pytest.raises(ValueError, match="features"):
        model.predict(test_x[:, :3], mechanism="bank", train_x=train_x)
    with pytest.raises(ValueError, match="duplicate"):
        model.predict(test_x, mechanism="bank", train_x=train_x, bank=torch.tensor([1, 1, 2, 3]))
    with pytest.raises(ValueError, match=r"bank has value\(s\) \[40\]"):
        model.predict(test_x, mechanism="bank", train_x=train_x, bank=torch.tensor([1, 40, 2]))
    model.train()
    model.predict(test_x, mechanism="bank", train_x=train_x)
    assert model.training
