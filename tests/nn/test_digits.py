"""End to end on real data (scikit-learn's digits, offline): train from scratch, predict.

Chance is 10% (10 balanced classes). A few CPU seconds of training must give a test
accuracy far above it under every inference mechanism: >= 85% for the mechanisms that
connect a test sample to training samples ("bank", "one_by_one") or that use true
test-test distances ("direct"), and >= 60% for Mechanism 2 ("batch") with the anchor head,
whose proxy rule collapses many test samples onto a few proxies early in training (the
paper notes that Mechanism 2 trades accuracy for speed). A broken mechanism -- wrong
columns, a graph built over the wrong nodes, features of the wrong samples, exploding
distances -- lands near chance or fails outright. The embedding head must also learn a
class-aware graph: >= 50% of the training graph's edge weight between same-class samples
(about 10% at random). The fixed-graph baselines (8 epochs) must reach >= 80%.
Observed with these seeds: anchor 93/86/96% (bank/batch/one_by_one), embedding 96-97%,
InGNN/EucGNN 86-94%.
"""
import pytest
import torch
import torch.nn.functional as F

from tg_cnn2gnn.nn import CNN2GNN, EucGNN, GraphStudent, InGNN, LearnedGraphHead, make_optimizer

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    x, y = load_digits(return_X_y=True)
    x_tr, x_te, y_tr, y_te = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
    mu, sd = x_tr.mean(0), x_tr.std(0)
    sd[sd == 0] = 1.0                       # constant pixels: keep them at 0, do not blow up
    f = lambda a: torch.tensor((a - mu) / sd, dtype=torch.float32)  # noqa: E731
    return f(x_tr), torch.tensor(y_tr), f(x_te), torch.tensor(y_te)


def _train(model, x, y, epochs, lr=0.01, seed=0):
    g = torch.Generator().manual_seed(seed)
    opt = make_optimizer(model, lr=lr)
    n = x.size(0)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(n, generator=g)
        for i in range(0, n - 99, 100):
            idx = perm[i:i + 100]
            opt.zero_grad()
            F.cross_entropy(model(x[idx], idx), y[idx]).backward()
            opt.step()
    return model


def _homophily(model, x, y):
    idx = torch.arange(300)
    with torch.no_grad():
        ei, ew = model.graph(x[idx], idx)
    same = (y[ei[0]] == y[ei[1]]).float()
    return float((same * ew).sum() / ew.sum())


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_learned_graph_model_on_digits(digits, form):
    x_tr, y_tr, x_te, y_te = digits
    torch.manual_seed(0)
    head = LearnedGraphHead(64, x_tr.size(0), s=10, hidden_channels=(128, 64), form=form,
                            embedding_channels=32)
    model = _train(CNN2GNN(head, GraphStudent(64, 64, 10, dropout=0.5)), x_tr, y_tr, epochs=15)
    acc = {}
    for mech in model.mechanisms:
        pred = model.predict(x_te, mechanism=mech, train_x=x_tr, bank_size=100, seed=0)
        acc[mech] = float((pred.argmax(1) == y_te).float().mean())
    for mech, a in acc.items():
        floor = 0.60 if (form, mech) == ("anchor", "batch") else 0.85
        assert a >= floor, (mech, acc)
    if form == "embedding":
        assert _homophily(model, x_tr, y_tr) >= 0.5


@pytest.mark.parametrize("cls", [InGNN, EucGNN])
def test_fixed_graph_baselines_on_digits(digits, cls):
    x_tr, y_tr, x_te, y_te = digits
    torch.manual_seed(0)
    model = _train(cls(GraphStudent(64, 64, 10, dropout=0.5), s=10), x_tr, y_tr, epochs=8)
    for mech in ("batch", "bank"):
        pred = model.predict(x_te, mechanism=mech, train_x=x_tr)
        assert float((pred.argmax(1) == y_te).float().mean()) >= 0.80, mech
