"""Helpers of the inference tests: a briefly trained CNN2GNN on the digits fixture."""
import torch
import torch.nn.functional as F

from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead


def briefly_trained(x, y, form="anchor", conv="gcn", *, s=8, steps=15, code_scale=0.0):
    """A CNN2GNN (head 64-32, ``conv`` student 24 wide; ``code_scale`` for the embedding
    head) after ``steps`` Adam steps on random batches of 100 (seeded), in eval mode, so
    that its learned distances are not random."""
    torch.manual_seed(0)
    extra = {"code_scale": code_scale} if code_scale else {}
    model = CNN2GNN(LearnedGraphHead(64, len(y), s=s, hidden_channels=(32,), form=form, **extra),
                    GraphStudent(64, 24, 10, conv=conv, dropout=0.0))
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    g = torch.Generator().manual_seed(1)
    for _ in range(steps):
        idx = torch.randperm(len(y), generator=g)[:100]
        loss = F.cross_entropy(model(x[idx], idx), y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()
