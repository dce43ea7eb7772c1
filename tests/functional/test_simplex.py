"""Eq. 3 (sparse_simplex) against independent references, invariants and gradients."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import minimize

from tg_cnn2gnn.functional import sparse_simplex, sparse_simplex_topk
from tg_cnn2gnn.functional.simplex import simplex_weights


def eq3_loop(d: np.ndarray, s: int) -> np.ndarray:
    """Eq. 3 written out literally, one row at a time (reference for values)."""
    out = np.zeros_like(d)
    for i, row in enumerate(d):
        order = np.argsort(row, kind="stable")
        srt = row[order]
        denom = sum(srt[s] - srt[h] for h in range(s))
        for h in range(s):
            out[i, order[h]] = (srt[s] - srt[h]) / denom if denom > 0 else 1.0 / s
    return out


def project_to_simplex(v: np.ndarray) -> np.ndarray:
    """Euclidean projection onto the probability simplex (sort-based, Duchi et al. 2008)."""
    u = np.sort(v)[::-1]
    css = np.cumsum(u)
    rho = np.nonzero(u * np.arange(1, len(v) + 1) > (css - 1))[0][-1]
    theta = (css[rho] - 1) / (rho + 1.0)
    return np.maximum(v - theta, 0)


def eq5_solution(d: np.ndarray, s: int) -> np.ndarray:
    """Theorem 1: argmin_p <p, d> + gamma ||p - 1/n||^2 on the simplex.

    On the simplex ||p - pi||^2 = ||p||^2 - 2/n + 1/n, so the problem is the projection of
    -d / (2 gamma) onto the simplex. gamma is the adaptive-neighbour choice that leaves
    exactly s free entries: gamma = (s d_(s+1) - sum_{h<=s} d_(h)) / 2.
    """
    out = np.zeros_like(d)
    for i, row in enumerate(d):
        srt = np.sort(row)
        gamma = (s * srt[s] - srt[:s].sum()) / 2.0
        out[i] = project_to_simplex(-row / (2.0 * gamma))
    return out


@pytest.mark.parametrize("n,m,s", [(7, 12, 1), (20, 30, 5), (5, 60, 50), (9, 9, 8)])
def test_theorem1_projection_reference(n, m, s):
    rng = np.random.default_rng(n * m + s)
    d = rng.random((n, m)) * 10.0
    got = sparse_simplex(torch.from_numpy(d), s).numpy()
    np.testing.assert_allclose(got, eq5_solution(d, s), atol=1e-6, rtol=0)
    np.testing.assert_allclose(got, eq3_loop(d, s), atol=1e-12, rtol=0)


def test_theorem1_qp_solver_reference():
    """Same problem solved by a generic QP solver (SLSQP), no closed form used."""
    rng = np.random.default_rng(3)
    d = rng.random((4, 10))
    s = 3
    got = sparse_simplex(torch.from_numpy(d), s).numpy()
    for i, row in enumerate(d):
        srt = np.sort(row)
        gamma = (s * srt[s] - srt[:s].sum()) / 2.0
        pi = np.full(len(row), 1.0 / len(row))
        res = minimize(lambda p: p @ row + gamma * np.sum((p - pi) ** 2), pi,
                       jac=lambda p: row + 2 * gamma * (p - pi), method="SLSQP",
                       bounds=[(0, 1)] * len(row),
                       constraints=[{"type": "eq", "fun": lambda p: p.sum() - 1}],
                       options={"ftol": 1e-15, "maxiter": 500})
        assert res.success
        np.testing.assert_allclose(got[i], res.x, atol=1e-6)


def test_exclude_self_drops_diagonal():
    d = torch.rand(8, 8, dtype=torch.float64)
    d.fill_diagonal_(-5.0)  # self would be the nearest if allowed
    p = sparse_simplex(d, 3, exclude_self=True)
    assert torch.all(p.diagonal() == 0)
    masked = d.clone()
    masked.fill_diagonal_(1e9)
    torch.testing.assert_close(p, sparse_simplex(masked, 3))


def test_ties_still_give_s_distinct_columns_and_constant_rows_are_uniform():
    d = torch.tensor([[1.0, 1.0, 1.0, 1.0, 1.0],      # constant: uniform 1/s
                      [0.0, 2.0, 2.0, 2.0, 5.0]])     # tie at the (s+1)-th boundary
    index, weight = sparse_simplex_topk(d, 3)
    assert index.shape == (2, 3)
    assert all(len(set(r.tolist())) == 3 for r in index)
    torch.testing.assert_close(weight[0], torch.full((3,), 1 / 3))
    # Row 1: d_(4) = 2, so the two selected neighbours at distance 2 get weight 0 (Eq. 3).
    p = sparse_simplex(d, 3)
    torch.testing.assert_close(p[1], torch.tensor([1.0, 0, 0, 0, 0]))


@pytest.mark.parametrize("exclude_self", [False, True])
def test_stable_ties_pick_the_lowest_columns_like_a_reference_sort(exclude_self):
    """``stable=True``: among equal distances the lower column index wins (a device-independent
    rule; plain ``torch.topk`` picked columns 2 and 4 of ``[3, 1, 1, 2, 1]`` on the CPU)."""
    g = torch.Generator().manual_seed(0)
    d = torch.randint(0, 4, (30, 30), generator=g).double()   # many exact ties
    s = 5
    index, weight = sparse_simplex_topk(d, s, exclude_self=exclude_self, stable=True)
    for i, row in enumerate(d.tolist()):
        cand = [(v, j) for j, v in enumerate(row) if not (exclude_self and j == i)]
        ref = sorted(cand)[:s + 1]                       # by value, then by column
        assert index[i].tolist() == [j for _, j in ref[:s]]
        torch.testing.assert_close(weight[i], simplex_weights(torch.tensor([[v for v, _ in ref]]).double(), s)[0])
    # the weights do not depend on the tie rule (equal distances, equal weights)
    _, w_topk = sparse_simplex_topk(d, s, exclude_self=exclude_self)
    torch.testing.assert_close(weight, w_topk)


def _adversarial(draw_kind: str, n: int, m: int, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(n, m, generator=g, dtype=torch.float64)
    if draw_kind == "duplicates":
        base = torch.round(base * 3) / 3
    elif draw_kind == "constant":
        base = torch.full((n, m), 0.5, dtype=torch.float64)
        base[0] = torch.rand(m, generator=g, dtype=torch.float64)
    elif draw_kind == "tiny":
        base = base * 1e-30
    elif draw_kind == "huge":
        base = base * 1e30
    elif draw_kind == "negative":
        base = base - 0.5
    return base


@settings(max_examples=60, deadline=None)
@given(kind=st.sampled_from(["random", "duplicates", "constant", "tiny", "huge", "negative"]),
       n=st.integers(1, 6), m=st.integers(2, 40), s_frac=st.floats(0, 1), seed=st.integers(0, 10_000),
       dtype=st.sampled_from([torch.float32, torch.float64]))
def test_invariants_property(kind, n, m, s_frac, seed, dtype):
    d = _adversarial(kind, n, m, seed).to(dtype).requires_grad_(True)
    s = 1 + int(s_frac * (m - 2))           # 1 <= s <= m - 1 (s = candidates - 1 included)
    index, weight = sparse_simplex_topk(d, s)
    p = sparse_simplex(d, s)
    # exactly s selected (distinct) neighbours per row, a probability vector over them
    assert index.shape == (n, s)
    assert all(len(set(r.tolist())) == s for r in index)
    assert torch.isfinite(weight).all() and (weight >= 0).all()
    torch.testing.assert_close(weight.sum(1), torch.ones(n, dtype=dtype))
    assert torch.isfinite(p).all() and (p >= 0).all()
    torch.testing.assert_close(p.sum(1), torch.ones(n, dtype=dtype))
    nnz = (p > 0).sum(1)
    assert (nnz <= s).all() and (nnz >= 1).all()
    # exactly s positive weights whenever the s-th and (s+1)-th distances differ
    srt = torch.sort(d.detach(), dim=1).values
    strict = srt[:, s - 1] < srt[:, s]
    assert torch.all(nnz[strict] == s)
    # gradients are finite
    (p * torch.arange(m, dtype=dtype)).sum().backward()
    assert torch.isfinite(d.grad).all()


def test_gradcheck_sparse_simplex():
    d = (torch.rand(5, 9, dtype=torch.float64) * 3).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: sparse_simplex(t, 4), (d,))
    sq = torch.rand(6, 6, dtype=torch.float64).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda t: sparse_simplex(t, 3, exclude_self=True), (sq,))


def test_gradient_is_zero_for_uniform_rows_and_finite():
    d = torch.ones(3, 6, dtype=torch.float64, requires_grad=True)
    sparse_simplex(d, 4).pow(2).sum().backward()
    assert torch.equal(d.grad, torch.zeros_like(d))


@pytest.mark.parametrize("bad,match", [
    (dict(s=0), r"s=0 is out of range.*1 <= s <= 5"),
    (dict(s=6), r"s=6 is out of range.*1 <= s <= 5"),
    (dict(s=2.5), r"s must be an int, got 2.5"),
])
def test_bad_sparsity(bad, match):
    with pytest.raises((ValueError, TypeError), match=match):
        sparse_simplex(torch.rand(3, 6), **bad)


def test_bad_sparsity_exclude_self_limit():
    with pytest.raises(ValueError, match=r"s=5 is out of range.*1 <= s <= 4"):
        sparse_simplex(torch.rand(6, 6), 5, exclude_self=True)


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"dist must be 2-D \[N, M\], got a tensor of shape \(6,\)"):
        sparse_simplex(torch.rand(6), 2)
    nan = torch.rand(3, 6)
    nan[1, 2] = float("nan")
    with pytest.raises(ValueError, match=r"dist contains NaN in rows \[1\] \(1 of 3\)"):
        sparse_simplex(nan, 2)
    inf = torch.rand(3, 6)
    inf[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"finite"):
        sparse_simplex(inf, 2)
    with pytest.raises(TypeError, match=r"floating-point"):
        sparse_simplex(torch.ones(3, 6, dtype=torch.long), 2)
    with pytest.raises(ValueError, match=r"square"):
        sparse_simplex(torch.rand(3, 6), 2, exclude_self=True)
