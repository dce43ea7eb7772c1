"""The predictor's per-call shortcuts (issue 13): each one against the arithmetic it replaces."""
import pytest
import torch

from tg_cnn2gnn.functional.simplex import simplex_weights
from tg_cnn2gnn.inference import load_predictor, save_predictor
from tg_cnn2gnn.inference.bank_predictor import eq3_weights

from inference_helpers import briefly_trained

BANK = 80


def test_eq3_weights_equal_simplex_weights_including_ties_and_negative_scores():
    g = torch.Generator().manual_seed(0)
    s = 6
    vals = torch.randn(50, s + 1, generator=g).sort(1).values * 10 - 3        # negative scores too
    vals[3] = 2.0                                                               # all s + 1 equal
    vals[4, 2:] = vals[4, 2]                                                    # the last s - 1 tie
    vals[5, :s] = vals[5, 0]                                                    # the first s tie
    got, ref = eq3_weights(vals.clone(), s), simplex_weights(vals, s)
    torch.testing.assert_close(got, ref, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got[3], torch.full((s,), 1 / s))
    assert torch.isfinite(got).all() and torch.allclose(got.sum(1), torch.ones(50))


@pytest.mark.parametrize("code_scale", [0.0, 3.0])
def test_shortcuts_match_the_plain_arithmetic(digits, code_scale):
    """The fused first product and (with ``code_scale``) the search on unnormalised codes
    give the logits of the plain path: normalised codes, separate products."""
    x, y, xt, _ = digits
    model = briefly_trained(x, y, "embedding", "gcn", steps=10, code_scale=code_scale)
    pred = model.bank_predictor(x, bank_size=BANK, seed=1)
    assert pred._x_split == 32 and pred._direction_search == bool(code_scale)
    fast = pred(xt)
    plain = model.bank_predictor(x, bank_size=BANK, seed=1)
    plain._x_split, plain._direction_search = 0, False
    torch.testing.assert_close(fast, plain(xt), rtol=1e-5, atol=1e-5)
    nbr_plain, _ = plain.neighbours(plain.encode(xt))
    p, _ = pred._encode(xt, normalise=False)
    if code_scale:
        nbr_fast = pred._exact_search(p, bias=False)[1][:, :pred.spec["s"]]
        assert (nbr_fast == nbr_plain).float().mean() > 0.99          # rounding may swap a near tie


@pytest.mark.parametrize("conv", ["gcn", "graph"])
def test_deterministic_with_normalised_codes_is_bit_identical_under_any_batching(digits, conv):
    x, y, xt, _ = digits
    pred = briefly_trained(x, y, "embedding", conv, steps=5, code_scale=3.0).bank_predictor(
        x, bank_size=BANK, deterministic=True)
    with torch.no_grad():
        whole = pred(xt)
        assert torch.equal(whole, torch.cat([pred(xt[i:i + 1]) for i in range(xt.size(0))]))
        assert torch.equal(whole, torch.cat([pred(c) for c in xt.split(7)]))


def test_derived_tensors_are_not_saved_and_are_rebuilt_on_load(digits, tmp_path):
    x, y, xt, _ = digits
    pred = briefly_trained(x, y, "embedding", "gcn", steps=5, code_scale=2.0).bank_predictor(x, bank_size=BANK)
    assert "_x_w" in dict(pred.named_buffers()) and "_x_w" not in pred.state_dict()
    save_predictor(pred, tmp_path / "p.pt", {})
    again, _ = load_predictor(tmp_path / "p.pt")
    assert torch.equal(again._x_w, pred._x_w) and torch.equal(again(xt), pred(xt))


def test_non_finite_samples_are_refused_with_their_rows(digits):
    x, y, xt, _ = digits
    pred = briefly_trained(x, y, "embedding", "gcn", steps=0).bank_predictor(x, bank_size=BANK)
    bad = xt[:9].clone()
    bad[2, 5], bad[7, 0] = float("nan"), float("-inf")
    with pytest.raises(ValueError, match=r"NaN or infinite values in rows \[2, 7\] of 9"):
        pred(bad)
    huge = torch.full((2, 64), 3e38)                  # finite, but the cheap sum overflows
    assert torch.isfinite(huge.sum(1)).logical_not().all()
    pred(huge)                                        # no error: every value is finite
