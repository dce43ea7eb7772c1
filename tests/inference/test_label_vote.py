"""The label vote of the learned graph (tg_cnn2gnn.inference.label_vote) and its predictor wiring."""
import math

import pytest
import torch

from tg_cnn2gnn.inference import export_predictor, load_exported, load_predictor, save_predictor
from tg_cnn2gnn.inference.label_vote import VOTE_EPS, check_label_vote, neighbour_vote, with_label_vote

from inference_helpers import briefly_trained

BANK = 80


def test_neighbour_vote_is_the_weighted_label_histogram():
    nbr = torch.tensor([[0, 2, 3], [1, 1, 4]])
    w = torch.tensor([[0.5, 0.3, 0.2], [0.6, 0.4, 0.0]])
    labels = torch.tensor([2, 0, 2, 1, 1])
    vote = neighbour_vote(nbr, w, labels, 3)
    torch.testing.assert_close(vote, torch.tensor([[0.0, 0.2, 0.8], [1.0, 0.0, 0.0]]))
    out = with_label_vote(torch.zeros(2, 3), vote, 2.0)
    expect = math.log(1 / 3) + 2 * math.log(0.8 + VOTE_EPS)
    assert out[0, 2].item() == pytest.approx(expect, rel=1e-6)
    assert out.argmax(1).tolist() == [2, 0]


@pytest.mark.parametrize("bad, err", [(-1.0, ValueError), (float("nan"), ValueError), (float("inf"), ValueError),
                                      (True, TypeError), ("2", TypeError)])
def test_label_vote_values_are_checked(bad, err):
    with pytest.raises(err, match="label_vote"):
        check_label_vote(bad)


def test_predictor_vote_matches_an_independent_computation(digits):
    x, y, xt, _ = digits
    model = briefly_trained(x, y, "embedding", "gcn", steps=10)   # raw codes: forward's own neighbours
    plain = model.bank_predictor(x, bank_size=BANK, seed=2)
    pred = model.bank_predictor(x, bank_size=BANK, seed=2, train_y=y, label_vote=1.5)
    with torch.no_grad():
        z = plain(xt)
        nbr, w = plain.neighbours(plain.encode(xt))
        vote = torch.zeros(xt.size(0), 10)
        for t in range(xt.size(0)):
            for j, wt in zip(nbr[t].tolist(), w[t].tolist()):
                vote[t, int(y[plain.bank_index[j]])] += wt
        torch.testing.assert_close(pred(xt), z.log_softmax(1) + 1.5 * (vote + VOTE_EPS).log(), rtol=1e-5, atol=1e-5)
        pred.label_vote = 0.0                                  # the student alone, same bank
        assert torch.equal(pred(xt), z)
    assert "label_vote" not in repr(pred)


def test_vote_errors_name_what_is_missing(digits):
    x, y, xt, _ = digits
    model = briefly_trained(x, y, "embedding", "gcn", steps=0)
    with pytest.raises(ValueError, match="label_vote=2.0 needs train_y"):
        model.bank_predictor(x, bank_size=BANK, label_vote=2.0)
    with pytest.raises(ValueError, match=r"train_y must be integer class labels of shape \[%d\]" % len(y)):
        model.bank_predictor(x, bank_size=BANK, train_y=y[:-1], label_vote=1.0)
    with pytest.raises(ValueError, match="train_y must be integer"):
        model.bank_predictor(x, bank_size=BANK, train_y=y.float(), label_vote=1.0)
    with pytest.raises(ValueError, match=r"labels outside \[0, 10\)"):
        model.bank_predictor(x, bank_size=len(y), train_y=y + 5, label_vote=1.0)
    pred = model.bank_predictor(x, bank_size=BANK)
    with pytest.raises(ValueError, match="label_vote needs the bank's labels"):
        pred.label_vote = 1.0


def test_vote_survives_save_load_export_and_any_batching(digits, tmp_path):
    x, y, xt, _ = digits
    model = briefly_trained(x, y, "embedding", "gcn", steps=5, code_scale=2.0)
    pred = model.bank_predictor(x, bank_size=BANK, train_y=y, label_vote=2.0, deterministic=True)
    with torch.no_grad():
        whole = pred(xt)
        assert torch.equal(whole, torch.cat([pred(xt[i:i + 1]) for i in range(xt.size(0))]))
        again, _ = load_predictor(save_predictor(pred, tmp_path / "p.pt", {}))
        assert again.label_vote == 2.0 and torch.equal(again(xt), whole)
        exported, _ = load_exported(export_predictor(pred, tmp_path / "p.pt2", xt[:2]))
        torch.testing.assert_close(exported(xt), whole, rtol=1e-5, atol=1e-5)


def test_vote_with_the_ivf_search_agrees_with_the_exact_search(digits):
    """The vote reads whichever search found the neighbours: with every list probed, the
    IVF predictor's classes are the exact one's (near ties may round differently)."""
    x, y, xt, _ = digits
    model = briefly_trained(x, y, "embedding", "gcn", steps=10, code_scale=2.0)
    exact = model.bank_predictor(x, bank_size=len(y), train_y=y, label_vote=2.0)
    ivf = model.bank_predictor(x, bank_size=len(y), train_y=y, label_vote=2.0, search="ivf")
    ivf.nprobe = ivf.spec["ivf"]["nlist"]
    with torch.no_grad():
        a, b = ivf(xt), exact(xt)
    assert (a.argmax(1) == b.argmax(1)).float().mean() >= 0.99
    torch.testing.assert_close(a.softmax(1), b.softmax(1), rtol=0, atol=0.02)
