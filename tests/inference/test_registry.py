"""The mechanism registry: names, lookups, and that predict dispatches through it."""
import pytest
import torch

from tg_cnn2gnn.inference import ABLATIONS, MECHANISMS, REGISTRY, get_mechanism
from tg_cnn2gnn.nn import CNN2GNN, EucGNN, GraphStudent, LearnedGraphHead


def test_unknown_name_lists_the_valid_ones():
    with pytest.raises(ValueError) as e:
        get_mechanism("banks")
    msg = str(e.value)
    assert "'banks'" in msg
    for name in (*MECHANISMS, *ABLATIONS):
        assert repr(name) in msg


def test_registry_covers_mechanisms_and_ablations():
    assert set(REGISTRY) == set(MECHANISMS) | set(ABLATIONS)
    assert get_mechanism("bank").row_invariant and get_mechanism("one_by_one").row_invariant
    assert not get_mechanism("batch").row_invariant
    assert not get_mechanism("direct").needs_train and get_mechanism("batch").needs_train


def test_models_list_registry_names_and_predict_dispatches(monkeypatch):
    torch.manual_seed(0)
    anchor = CNN2GNN(LearnedGraphHead(5, 30, s=3, hidden_channels=(6,)), GraphStudent(5, 4, 2))
    emb = CNN2GNN(LearnedGraphHead(5, None, s=3, hidden_channels=(6,), form="embedding"), GraphStudent(5, 4, 2))
    assert anchor.mechanisms == tuple(m for m in MECHANISMS if m != "direct")
    assert emb.mechanisms == MECHANISMS == EucGNN(GraphStudent(5, 4, 2)).mechanisms
    seen = {}
    real = REGISTRY["one_by_one"]

    def spy(model, x, **kw):
        seen.update(kw)
        return real.run(model, x, **kw)

    monkeypatch.setitem(REGISTRY, "one_by_one", real.__class__(**{**real.__dict__, "run": spy}))
    x, train_x = torch.randn(4, 5), torch.randn(30, 5)
    out = anchor.predict(x, mechanism="one_by_one", train_x=train_x, bank_size=10)
    assert out.shape == (4, 2) and seen["bank"].numel() == 10 and seen["train_x"] is not None
