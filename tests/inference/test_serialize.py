"""Predictor files: safe save/load and torch.export round trips."""
import pytest
import torch

from tg_cnn2gnn.distill.checkpoint import CheckpointError
from tg_cnn2gnn.inference import export_predictor, load_exported, load_predictor, save_predictor
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead

META = {"class_names": [str(i) for i in range(10)], "channels": 1, "image_size": 8,
        "mean": [0.3053], "std": [0.3760]}


def _predictor(x, conv="gcn", deterministic=False, form="anchor"):
    torch.manual_seed(0)
    model = CNN2GNN(LearnedGraphHead(64, len(x), s=6, hidden_channels=(16,), form=form),
                    GraphStudent(64, 16, 10, conv=conv))
    return model.bank_predictor(x, bank_size=60, deterministic=deterministic)


@pytest.mark.parametrize("deterministic", [False, True])
def test_save_load_round_trip_is_exact(digits, tmp_path, deterministic):
    x, _, xt, _ = digits
    pred = _predictor(x, "tag", deterministic, "embedding")
    path = save_predictor(pred, tmp_path / "sub" / "p.pt", META)
    assert [p.name for p in path.parent.iterdir()] == ["p.pt"]        # atomic: no temp left
    back, meta = load_predictor(path)
    assert meta == META and back.spec == pred.spec and back.deterministic == deterministic
    with torch.no_grad():
        assert torch.equal(back(xt), pred(xt))


def test_load_refuses_code_foreign_and_broken_files(digits, tmp_path):
    class Boom:
        def __reduce__(self):
            return (print, ("executed!",))

    evil = tmp_path / "evil.pt"
    torch.save({"format": "tg_cnn2gnn", "version": 1, "kind": "bank-predictor", "x": Boom()}, evil)
    with pytest.raises(CheckpointError, match="refused without running them"):
        load_predictor(evil)
    foreign = tmp_path / "foreign.pt"
    torch.save({"a": torch.zeros(2)}, foreign)
    with pytest.raises(CheckpointError, match="not written by tg_cnn2gnn"):
        load_predictor(foreign)
    bad_spec = tmp_path / "bad.pt"
    from tg_cnn2gnn.distill.checkpoint import save_checkpoint
    save_checkpoint({"spec": {"version": 99}, "tensors": {}, "meta": {}}, bad_spec, kind="bank-predictor")
    with pytest.raises(CheckpointError, match="not a valid bank predictor"):
        load_predictor(bad_spec)
    with pytest.raises(TypeError, match="JSON"):
        save_predictor(_predictor(digits[0]), tmp_path / "m.pt", {"f": object()})


@pytest.mark.parametrize("conv", ["gcn", "graph", "sg", "ssg", "tag", "le"])
def test_export_round_trip_gives_the_in_memory_logits(digits, tmp_path, conv):
    x, _, xt, _ = digits
    pred = _predictor(x, conv)
    path = export_predictor(pred, tmp_path / "p.pt2", xt[:4], META)
    module, meta = load_exported(path)
    assert meta == META
    with torch.no_grad():
        torch.testing.assert_close(module(xt), pred(xt), rtol=1e-6, atol=1e-6)
        torch.testing.assert_close(module(xt[:1]), pred(xt[:1]), rtol=1e-6, atol=1e-6)


def test_export_errors(digits, tmp_path):
    pred = _predictor(digits[0])
    with pytest.raises(ValueError, match=r"example_x must be a \[T, F\] tensor with T >= 2"):
        export_predictor(pred, tmp_path / "p.pt2", digits[2][:1])
    (tmp_path / "junk.pt2").write_bytes(b"not a program")
    with pytest.raises(ValueError, match="is not a torch.export program"):
        load_exported(tmp_path / "junk.pt2")
