"""Teacher pre-training (Algorithm 2, line 3): its own checkpoints, exact resume, loading."""
import pytest
import torch

from distill_helpers import make_model, num_train
from tg_cnn2gnn.distill import HeteroDistiller, accuracy, load_checkpoint, pretrain_teacher
from tg_cnn2gnn.teachers import build_teacher


def _teacher(seed=0):
    torch.manual_seed(seed)
    return build_teacher("simple-cnn", 10, in_channels=1, image_size=8, width=4)


SETTINGS = dict(epochs=3, batch_size=64, lr=0.05, seed=2, progress=False, tensorboard=False, device="cpu")


def test_pretrain_resume_is_bit_identical_and_teacher_file_loads(digits, tmp_path):
    x, y, xt, yt = digits
    ref = _teacher()
    res = pretrain_teacher(ref, x, y, val=(xt, yt), out_dir=tmp_path / "ref", **SETTINGS)
    assert [r["epoch"] for r in res["history"]] == [0, 1, 2]
    assert res["val_acc"] == pytest.approx(accuracy(ref, xt, yt))
    assert res["val_acc"] > 0.5                         # it learns (chance: 0.1)
    for name in ("teacher.pt", "teacher_checkpoint.pt", "teacher_best.pt", "teacher_metrics.csv"):
        assert (tmp_path / "ref" / name).is_file(), name
    assert load_checkpoint(tmp_path / "ref" / "teacher.pt", kind="teacher")["epochs"] == 3

    class Killed(Exception):
        pass

    def kill(epoch, row):
        if epoch == 0:
            raise Killed

    t = _teacher()
    with pytest.raises(Killed):
        pretrain_teacher(t, x, y, val=(xt, yt), out_dir=tmp_path / "run", callbacks=[kill], **SETTINGS)
    t = _teacher(seed=9)
    res2 = pretrain_teacher(t, x, y, val=(xt, yt), out_dir=tmp_path / "run", resume=True, **SETTINGS)
    assert res2["resumed_from"] == 0
    for (k, a), b in zip(ref.state_dict().items(), t.state_dict().values()):
        assert torch.equal(a, b), k                     # weights and BN statistics

    # a distiller loads the pre-trained teacher from its file and freezes it
    d = HeteroDistiller(_teacher(seed=5), make_model(num_train(y)), device="cpu")
    d.load_teacher(tmp_path / "ref" / "teacher.pt")
    assert all(torch.equal(a, b) for a, b in zip(ref.state_dict().values(), d.teacher.state_dict().values()))
    assert not d.teacher.training and not any(p.requires_grad for p in d.teacher.parameters())


def test_pretrain_via_distiller_refreezes(digits):
    x, y, _, _ = digits
    d = HeteroDistiller(_teacher(), make_model(num_train(y)), device="cpu")
    before = [p.clone() for p in d.teacher.parameters()]
    d.pretrain_teacher(x, y, **{**SETTINGS, "epochs": 1})
    assert any(not torch.equal(a, b) for a, b in zip(before, d.teacher.parameters()))
    assert not d.teacher.training and not any(p.requires_grad for p in d.teacher.parameters())


def test_pretrain_bad_arguments(digits):
    x, y, _, _ = digits
    with pytest.raises(ValueError, match="optimizer='lbfgs' is not supported"):
        pretrain_teacher(_teacher(), x, y, optimizer="lbfgs")
    with pytest.raises(ValueError, match="lr must be a finite number > 0"):
        pretrain_teacher(_teacher(), x, y, lr=0.0)
    with pytest.raises(TypeError, match="teacher must be an nn.Module"):
        pretrain_teacher("resnet", x, y)
