"""The frozen-bank predictor equals predict(mechanism="bank") on digits, for every conv it can freeze."""
import pytest
import torch

from tg_cnn2gnn.inference import FREEZABLE_CONVS
from tg_cnn2gnn.nn import CNN2GNN, CONVS, FixedGraphGNN, GraphStudent, LearnedGraphHead

from inference_helpers import briefly_trained

BANK = 80


@pytest.mark.parametrize("form", ["anchor", "embedding"])
@pytest.mark.parametrize("conv", list(CONVS))
def test_predictor_equals_predict_bank_for_every_conv(digits, form, conv):
    x, y, xt, _ = digits
    model = briefly_trained(x, y, form, conv)
    if conv not in FREEZABLE_CONVS:
        with pytest.raises(ValueError, match=r"cannot freeze the bank for conv \w+Conv.*freezable: gcn"):
            model.bank_predictor(x, bank_size=BANK)
        return
    ref = model.predict(xt, mechanism="bank", train_x=x, bank_size=BANK, seed=3)
    for det in (False, True):
        pred = model.bank_predictor(x, bank_size=BANK, seed=3, deterministic=det)
        torch.testing.assert_close(pred(xt), ref, rtol=1e-4, atol=1e-4)
    assert not any(b.requires_grad for b in pred.buffers()) and not list(pred.parameters())


def test_cheb_is_refused_because_its_bank_test_nodes_ignore_the_bank(digits):
    """Why cheb is refused: under "bank" a ChebConv test node has out-degree 0, so every
    message it receives has weight 0 -- its logits do not depend on the bank at all."""
    x, y, xt, _ = digits
    model = briefly_trained(x, y, "anchor", "cheb", steps=0)
    a = model.predict(xt, mechanism="bank", train_x=x, bank_size=BANK, seed=0)
    b = model.predict(xt, mechanism="bank", train_x=x, bank_size=BANK + 40, seed=5)
    assert torch.equal(a, b)
    gcn = briefly_trained(x, y, "anchor", "gcn", steps=0)
    assert not torch.equal(gcn.predict(xt, train_x=x, bank_size=BANK, seed=0),
                           gcn.predict(xt, train_x=x, bank_size=BANK + 40, seed=5))


@pytest.mark.parametrize("metric", ["inner", "euclidean", "sqeuclidean", "cosine"])
def test_predictor_on_fixed_graph_baselines(digits, metric):
    x, _, xt, _ = digits
    torch.manual_seed(0)
    model = FixedGraphGNN(GraphStudent(64, 16, 10), s=8, metric=metric)
    ref = model.predict(xt, mechanism="bank", train_x=x, bank_size=BANK)
    torch.testing.assert_close(model.bank_predictor(x, bank_size=BANK)(xt), ref, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("conv", ["gcn", "tag", "le"])
def test_deterministic_mode_is_bit_identical_under_any_batching(digits, conv):
    x, y, xt, _ = digits
    pred = briefly_trained(x, y, "embedding", conv, steps=5).bank_predictor(x, bank_size=BANK, deterministic=True)
    with torch.no_grad():
        whole = pred(xt)
        ones = torch.cat([pred(xt[i:i + 1]) for i in range(xt.size(0))])
        sevens = torch.cat([pred(c) for c in xt.split(7)])
        perm = torch.randperm(xt.size(0), generator=torch.Generator().manual_seed(0))
        shuffled = torch.empty_like(whole)
        shuffled[perm] = pred(xt[perm])
    assert torch.equal(whole, ones) and torch.equal(whole, sevens) and torch.equal(whole, shuffled)


def test_chunked_neighbour_search_equals_one_pass_and_bank_can_be_the_whole_set(digits):
    x, y, xt, _ = digits
    model = briefly_trained(x, y)
    pred = model.bank_predictor(x, bank_size=len(x))         # the whole training set
    assert pred.spec["num_bank"] == len(x)
    with torch.no_grad():
        one = pred(xt)
        pred.neighbour_chunk = 37                               # 17 chunks, uneven tail
        chunked = pred(xt)
        nbr1, w1 = pred.neighbours(pred.encode(xt))
        pred.neighbour_chunk = 10_000
        nbr2, w2 = pred.neighbours(pred.encode(xt))
    assert torch.equal(nbr1, nbr2) and torch.equal(w1, w2) and torch.equal(one, chunked)
    torch.testing.assert_close(one, model.predict(xt, train_x=x, bank_size=len(x)), rtol=1e-4, atol=1e-4)


def test_explicit_bank_and_input_errors(digits):
    x, y, xt, _ = digits
    model = briefly_trained(x, y, steps=0)
    bank = torch.arange(0, 600, 7)
    ref = model.predict(xt, train_x=x, bank=bank)
    pred = model.bank_predictor(x, bank=bank)
    assert torch.equal(pred.bank_index, bank)
    torch.testing.assert_close(pred(xt.view(-1, 1, 8, 8)), ref, rtol=1e-4, atol=1e-4)   # images flatten
    with pytest.raises(ValueError, match=r"x must be \[T, 64\]"):
        pred(torch.randn(3, 65))
    with pytest.raises(ValueError, match="train_x has 599 rows"):
        model.bank_predictor(x[:599])
    with pytest.raises(ValueError, match="bank_size=601 exceeds"):
        model.bank_predictor(x, bank_size=601)


def test_predictor_with_normalised_codes_equals_predict_and_saves(digits, tmp_path):
    """``code_scale``: the predictor normalises and scales the codes as the head does."""
    from tg_cnn2gnn.inference import load_predictor, save_predictor
    x, y, xt, _ = digits
    torch.manual_seed(0)
    head = LearnedGraphHead(64, s=8, hidden_channels=(32,), form="embedding", code_scale=2.5)
    model = CNN2GNN(head, GraphStudent(64, 24, 10, dropout=0.0)).eval()
    ref = model.predict(xt, mechanism="bank", train_x=x, bank_size=BANK, seed=3)
    for det in (False, True):
        pred = model.bank_predictor(x, bank_size=BANK, seed=3, deterministic=det)
        torch.testing.assert_close(pred(xt), ref, rtol=1e-4, atol=1e-4)
    assert pred.spec["head"]["scale"] == 2.5
    torch.testing.assert_close(pred.encode(xt).norm(dim=1), torch.full((xt.size(0),), 2.5))
    save_predictor(pred, tmp_path / "p.pt", {})
    again, _ = load_predictor(tmp_path / "p.pt")
    assert torch.equal(again(xt), pred(xt))
