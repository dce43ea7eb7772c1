"""Every student conv the package names (``tg_cnn2gnn.nn.CONVS``) on CUDA vs the CPU.

Tolerances: logits and parameter gradients rtol 1e-4 / atol 1e-5 (float32); the GCN's
dense fast path (graphs of <= 512 nodes) and its sparse path (larger graphs) both.
"""
from __future__ import annotations

import copy

import pytest
import torch
from conftest import ATOL, RTOL

from tg_cnn2gnn import GraphStudent
from tg_cnn2gnn.functional import sparse_simplex_graph
from tg_cnn2gnn.nn import CONVS


@pytest.mark.parametrize("conv", sorted(CONVS))
@pytest.mark.parametrize("n", [100, 600])
def test_student_conv_matches_cpu(cuda, conv, n):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(n, 24, generator=g)
    ei, w = sparse_simplex_graph(x, 8)
    w = w.detach()
    torch.manual_seed(0)
    net = GraphStudent(24, 32, 5, conv=conv, dropout=0.0)
    net_g = copy.deepcopy(net).to(cuda)
    out_c = net(x, ei, w)
    out_g = net_g(x.to(cuda), ei.to(cuda), w.to(cuda))
    assert out_g.shape == (n, 5) and out_g.device == cuda
    torch.testing.assert_close(out_c, out_g.cpu(), rtol=RTOL, atol=ATOL)
    target = torch.randn(n, 5, generator=g)
    ((out_c - target) ** 2).mean().backward()
    ((out_g - target.to(cuda)) ** 2).mean().backward()
    for (name, p), q in zip(net.named_parameters(), net_g.parameters()):
        assert (p.grad is None) == (q.grad is None), f"{conv}: {name}"
        if p.grad is not None:   # (ARMA's unused root weight of the last stack gets none)
            torch.testing.assert_close(p.grad, q.grad.cpu(), rtol=1e-3, atol=1e-5, msg=f"{conv}: {name}")
