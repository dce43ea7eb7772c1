"""The graph core and the graph head on CUDA vs the CPU.

Tolerances: the selected neighbours (edge_index) must be identical; edge weights and
gradients agree to rtol 1e-4 / atol 1e-5 (float32, different summation order). Chunking
must not change a bit on the GPU either (the package promises it on every device).
"""
from __future__ import annotations

import copy

import pytest
import torch
from conftest import ATOL, RTOL
from torch_geometric.data import Data

from tg_cnn2gnn import LearnedGraphHead, SparseSimplexGraph
from tg_cnn2gnn.functional import METRICS, sparse_simplex_graph


def _points(n: int = 600, d: int = 16, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, d, generator=torch.Generator().manual_seed(seed))


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float = RTOL, atol: float = ATOL) -> None:
    torch.testing.assert_close(a.detach().cpu(), b.detach().cpu(), rtol=rtol, atol=atol)


@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("chunk_size", [None, 256])
def test_sparse_simplex_graph_matches_cpu(cuda, metric, chunk_size):
    x = _points()
    xc = x.clone().requires_grad_()
    xg = x.to(cuda).requires_grad_()
    ei_c, w_c = sparse_simplex_graph(xc, 10, metric=metric, chunk_size=chunk_size)
    ei_g, w_g = sparse_simplex_graph(xg, 10, metric=metric, chunk_size=chunk_size)
    assert ei_g.device == cuda and w_g.device == cuda
    assert torch.equal(ei_c, ei_g.cpu())
    _close(w_c, w_g)
    # the weights depend on the distances: gradients must agree too
    probe = torch.linspace(0, 1, w_c.numel())
    (w_c * probe).sum().backward()
    (w_g * probe.to(cuda)).sum().backward()
    _close(xc.grad, xg.grad, rtol=1e-3, atol=1e-5)


def test_chunking_is_bit_exact_on_cuda(cuda):
    x = _points(1000, 32).to(cuda)
    ei_a, w_a = sparse_simplex_graph(x, 8)
    ei_b, w_b = sparse_simplex_graph(x, 8, chunk_size=256)
    assert torch.equal(ei_a, ei_b) and torch.equal(w_a, w_b)


def test_batched_graph_and_transform_on_cuda(cuda):
    x = _points(500, 8)
    batch = torch.arange(500) % 3
    ei_c, w_c = sparse_simplex_graph(x, 5, batch=batch)
    ei_g, w_g = sparse_simplex_graph(x.to(cuda), 5, batch=batch.to(cuda))
    assert torch.equal(ei_c, ei_g.cpu())
    _close(w_c, w_g)
    assert bool((batch[ei_c[0]] == batch[ei_c[1]]).all())   # never across graphs
    data = SparseSimplexGraph(s=5, attr="pos")(Data(pos=x.to(cuda)))
    assert data.edge_index.device == cuda
    assert torch.equal(data.edge_index.cpu(), sparse_simplex_graph(x, 5)[0])


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_head_matches_cpu(cuda, form):
    torch.manual_seed(0)
    head = LearnedGraphHead(64, num_train=300, s=10, hidden_channels=(32,), form=form, embedding_channels=16)
    head_g = copy.deepcopy(head).to(cuda)
    x = _points(100, 64)
    index = torch.randperm(300, generator=torch.Generator().manual_seed(1))[:100]
    ei_c, w_c = head(x, index)
    ei_g, w_g = head_g(x.to(cuda), index.to(cuda))
    assert torch.equal(ei_c, ei_g.cpu())
    _close(w_c, w_g)
    probe = torch.linspace(-1, 1, w_c.numel())
    (w_c * probe).sum().backward()
    (w_g * probe.to(cuda)).sum().backward()
    for (name, p), q in zip(head.named_parameters(), head_g.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            gc = p.grad.to_dense() if p.grad.is_sparse else p.grad
            gg = q.grad.to_dense() if q.grad.is_sparse else q.grad
            _close(gc, gg, rtol=1e-3, atol=1e-5)


def test_head_rejects_bad_index_on_cuda(cuda):
    head = LearnedGraphHead(8, num_train=20, s=3, hidden_channels=(8,)).to(cuda)
    with pytest.raises(ValueError, match="num_train"):
        head(torch.randn(10, 8, device=cuda), torch.arange(15, 25, device=cuda))
