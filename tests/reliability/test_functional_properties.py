"""Property-based tests of the functional core over scales 1e-30..1e30, four dtypes,
four metrics and batch vectors, against an independent float64 numpy reference."""
import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from tg_cnn2gnn.functional import METRICS, pairwise_distance, sparse_simplex_graph, sparse_simplex_topk

SETTINGS = settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DTYPES = [torch.float16, torch.bfloat16, torch.float32, torch.float64]
#: decimal exponent range each dtype can hold for randn-sized points
EXP_RANGE = {torch.float16: (-3, 3), torch.bfloat16: (-30, 30), torch.float32: (-30, 30),
             torch.float64: (-30, 30)}
#: relative tolerance of the row sums / gap used to decide a tie, per dtype
TOL = {torch.float16: 2e-2, torch.bfloat16: 2e-2, torch.float32: 1e-4, torch.float64: 1e-9}


def _reference(x: np.ndarray, metric: str, loop: bool = False) -> np.ndarray:
    """float64 distance matrix, ``inf`` on the diagonal unless ``loop``."""
    if metric == "inner":
        d = -(x @ x.T)
    elif metric == "cosine":
        n = np.linalg.norm(x, axis=1, keepdims=True)
        u = np.divide(x, n, out=np.zeros_like(x), where=n > 0)
        d = 1.0 - u @ u.T
    else:
        d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
        if metric == "euclidean":
            d = np.sqrt(d)
    if not loop:
        np.fill_diagonal(d, np.inf)
    return d


@st.composite
def point_sets(draw, min_rows=4, max_rows=24, dtype=None, d=None):
    dtype = draw(st.sampled_from(DTYPES)) if dtype is None else dtype
    lo, hi = EXP_RANGE[dtype]
    exponent = draw(st.integers(lo, hi))
    n = draw(st.integers(min_rows, max_rows))
    d = draw(st.integers(1, 6)) if d is None else d
    seed = draw(st.integers(0, 2 ** 31 - 1))
    gen = torch.Generator().manual_seed(seed)
    x64 = torch.randn(n, d, generator=gen, dtype=torch.float64) * 10.0 ** exponent
    x = x64.to(dtype)
    assume(bool(torch.isfinite(x).all()) and bool((x != 0).any(dim=1).all()))
    return x


def _rows(edge_index, edge_weight, n):
    """``{target: {source: weight}}`` of the unsymmetrised P."""
    out = {i: {} for i in range(n)}
    for (j, i), w in zip(edge_index.T.tolist(), edge_weight.double().tolist()):
        out[i][j] = w
    return out


def _check_rows(x, s, metric, ei, ew, offset=0):
    n = x.size(0)
    tol = TOL[x.dtype]
    assert ew.dtype == x.dtype and bool(torch.isfinite(ew).all()) and bool((ew >= 0).all())
    rows = _rows(ei, ew, offset + n)
    d = _reference(x.double().numpy(), metric)
    for i in range(n):
        row = rows[offset + i]
        assert len(row) == s, (i, row)
        assert abs(sum(row.values()) - 1) <= tol * 4, (i, sum(row.values()))
        order = np.argsort(d[i], kind="stable")
        nth, after = d[i, order[s - 1]], d[i, order[s]]
        scale = max(abs(d[i, order[0]]), abs(after), 1e-300)
        if after - nth > 4 * tol * scale:           # no tie within the dtype's resolution
            assert {j - offset for j in row} == set(order[:s].tolist()), (i, row, order[:s + 1])


@SETTINGS
@given(x=point_sets(), metric=st.sampled_from(METRICS), s_frac=st.floats(0, 1))
def test_graph_rows_are_simplex_rows_of_the_true_neighbours(x, metric, s_frac):
    n = x.size(0)
    s = 1 + int(s_frac * (n - 3))
    ei, ew = sparse_simplex_graph(x, s, metric=metric, symmetrize=False)
    _check_rows(x, s, metric, ei, ew)
    ei2, ew2 = sparse_simplex_graph(x, s, metric=metric)    # symmetrised: finite, total weight N
    assert bool(torch.isfinite(ew2).all()) and abs(float(ew2.double().sum()) - n) <= TOL[x.dtype] * 4 * n


@SETTINGS
@given(x=point_sets(), k=st.integers(-90, 90), s_frac=st.floats(0, 1))
def test_cosine_graph_is_the_same_at_any_scale(x, k, s_frac):
    scaled = x.double() * 2.0 ** k
    assume(bool(torch.isfinite(scaled.to(x.dtype)).all()))
    finfo = torch.finfo(x.dtype)
    assume(bool((scaled.abs() >= finfo.tiny).logical_or(scaled == 0).all()))   # no subnormal rounding
    s = 1 + int(s_frac * (x.size(0) - 3))
    a = sparse_simplex_graph(x, s, metric="cosine")
    b = sparse_simplex_graph(scaled.to(x.dtype), s, metric="cosine")
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


@SETTINGS
@given(data=st.data(), metric=st.sampled_from(METRICS), s=st.integers(1, 3))
def test_batched_graphs_at_different_scales(data, metric, s):
    dtype, d = data.draw(st.sampled_from(DTYPES)), data.draw(st.integers(1, 5))
    graphs = data.draw(st.lists(point_sets(min_rows=s + 2, max_rows=10, dtype=dtype, d=d), min_size=1, max_size=4))
    x = torch.cat(graphs)
    batch = torch.cat([torch.full((g.size(0),), b) for b, g in enumerate(graphs)])
    perm = torch.randperm(x.size(0), generator=torch.Generator().manual_seed(len(graphs)))
    ei, ew = sparse_simplex_graph(x[perm], s, metric=metric, batch=batch[perm], symmetrize=False)
    inv = torch.empty_like(perm)
    inv[perm] = torch.arange(perm.numel())
    ei = perm[ei]                                            # back to the unpermuted node ids
    assert bool((batch[ei[0]] == batch[ei[1]]).all())        # never across graphs
    offset = 0
    for b, g in enumerate(graphs):
        keep = batch[ei[1]] == b
        _check_rows(g, s, metric, ei[:, keep], ew[keep], offset)
        offset += g.size(0)


@SETTINGS
@given(exponent=st.integers(-30, 30), dtype=st.sampled_from(DTYPES), n=st.integers(3, 12),
       seed=st.integers(0, 2 ** 20), exclude_self=st.booleans())
def test_sparse_simplex_topk_on_distances_at_any_scale(exponent, dtype, n, seed, exclude_self):
    lo, hi = EXP_RANGE[dtype]
    gen = torch.Generator().manual_seed(seed)
    dist = (torch.rand(n, n, generator=gen, dtype=torch.float64) * 10.0 ** min(max(exponent, lo), hi)).to(dtype)
    s = max(1, n - 2)
    idx, w = sparse_simplex_topk(dist, s, exclude_self=exclude_self)
    assert w.dtype == dtype and bool(torch.isfinite(w).all()) and bool((w >= 0).all())
    assert torch.allclose(w.double().sum(1), torch.ones(n, dtype=torch.float64), atol=TOL[dtype] * 4)
    assert all(len(set(r)) == s for r in idx.tolist())
    if exclude_self:
        assert not bool((idx == torch.arange(n).unsqueeze(1)).any())


@SETTINGS
@given(x=point_sets(min_rows=2, max_rows=12), metric=st.sampled_from(METRICS))
def test_pairwise_distance_never_nan_and_matches_float64(x, metric):
    d = pairwise_distance(x, x, metric)
    assert d.dtype == x.dtype and not bool(torch.isnan(d).any())
    ref = torch.from_numpy(_reference(x.double().numpy(), metric, loop=True))
    finite = torch.isfinite(d)
    big = float(ref.abs().max())
    # the |x|^2 + |y|^2 - 2<x, y> expansion cancels: absolute error ~ eps |x|^2 (its sqrt for euclidean)
    sq = float((x.double() ** 2).sum(1).max())
    err = TOL[x.dtype] * 10 * (sq if metric in ("sqeuclidean", "inner") else 1.0)
    err = (TOL[x.dtype] * 10 * sq) ** 0.5 if metric == "euclidean" else err
    atol = max(err, TOL[x.dtype] * 10 * big, 2 * torch.finfo(x.dtype).tiny)   # values below the range are 0
    assert torch.allclose(d.double()[finite], ref[finite], rtol=TOL[x.dtype] * 10, atol=atol)
    if x.dtype in (torch.float32, torch.float64):   # inf only where the value (within that error) overflows
        assert bool((ref[~finite].abs() + err > torch.finfo(x.dtype).max / 4).all())


@pytest.mark.parametrize("metric", METRICS)
def test_issue_cases(metric):
    torch.manual_seed(0)
    x = torch.randn(20, 5) * 1e20
    ei, ew = sparse_simplex_graph(x, 3, metric=metric)
    assert bool(torch.isfinite(ew).all())
    for scale in (1e19, 1e-20):
        y = torch.randn(20, 5) * scale
        _check_rows(y, 3, metric, *sparse_simplex_graph(y, 3, metric=metric, symmetrize=False))
    y = torch.randn(20, 5)
    y[3] = 1e20
    ei, ew = sparse_simplex_graph(y, 3, metric=metric, symmetrize=False)
    assert bool(torch.isfinite(ew).all())
    _check_rows(y, 3, metric, ei, ew)
