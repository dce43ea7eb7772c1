"""The Trainer: any distiller through one loop, stock optimisers, resume fingerprints,
up-front input checks, the sync-free non-finite check, and bit-identity with the old
``HeteroDistiller.fit``."""
from __future__ import annotations

import functools

import pytest
import torch

from distill_helpers import FIT, HIDDEN, S, make_model, make_teacher, num_train
from tg_cnn2gnn.data import train_val_split
from tg_cnn2gnn.distill import CEDistiller, HeteroDistiller, KDDistiller, Trainer, TrainBatch, build_distiller
from tg_cnn2gnn.nn import CNN2GNN, GraphStudent, LearnedGraphHead
from tg_cnn2gnn.nn.mlp import MLP

TRAIN = {k: v for k, v in FIT.items()}


def _split(x, y):
    tr, va = train_val_split(y, 0.1, seed=0)
    return (x[tr], y[tr]), (x[va], y[va])


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def test_kd_into_an_mlp_trains_and_returns_a_summary(digits, teacher_state, tmp_path):
    x, y, xt, yt = digits
    train, val = _split(x, y)
    torch.manual_seed(0)
    d = build_distiller("kd", make_teacher(teacher_state), MLP(64, HIDDEN, 10), tau=4.0)
    s = Trainer(d, epochs=3, cache_teacher_logits=True, out_dir=tmp_path, **TRAIN).fit(train, val, (xt, yt))
    assert s["distiller"] == "kd" and s["n_train"] == train[1].numel() and s["n_val"] == val[1].numel()
    assert [r["epoch"] for r in s["history"]] == [0, 1, 2]
    assert {"loss", "ce", "kd", "train_acc", "val_acc"} <= set(s["history"][0])
    for r in s["history"]:                               # the logged loss is the sum of its terms
        assert r["loss"] == pytest.approx(r["ce"] + r["kd"], rel=1e-6)
    assert s["test"]["last"]["bank"] == s["test"]["last"]["batch"] > 0.8      # an MLP: mechanisms agree
    assert s["teacher_test_acc"] > 0.9
    assert (tmp_path / "checkpoint.pt").is_file() and (tmp_path / "metrics.csv").is_file()
    assert not (tmp_path / "summary.json").exists()     # the run layer writes the summary


def test_stock_adam_trains_cnn2gnn_through_forward_train(digits, teacher_state):
    x, y, _, _ = digits
    n = 400
    torch.manual_seed(0)
    head = LearnedGraphHead(64, num_train=n, s=S, hidden_channels=(HIDDEN,), sparse_grad=False)
    model = CNN2GNN(head, GraphStudent(64, HIDDEN, 10, dropout=0.0))
    d = build_distiller("cnn2gnn", make_teacher(teacher_state), model)
    opt = torch.optim.Adam(d.learnable_parameters(), lr=0.01)
    d.train()
    losses = []
    for step in range(30):
        idx = torch.randperm(n)[:100]
        logits, terms = d.forward_train(TrainBatch(x[idx], y[idx], idx), epoch=0)
        loss = sum(terms.values())
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert sum(losses[-5:]) < 0.5 * sum(losses[:5])
    # ... and through the Trainer, with an optimiser factory
    torch.manual_seed(0)
    head = LearnedGraphHead(64, num_train=n, s=S, hidden_channels=(HIDDEN,), sparse_grad=False)
    d = build_distiller("cnn2gnn", make_teacher(teacher_state), CNN2GNN(head, GraphStudent(64, HIDDEN, 10)))
    t = Trainer(d, epochs=2, optimizer=functools.partial(torch.optim.Adam, lr=0.01), progress=False,
                tensorboard=False)
    s = t.fit((x[:n], y[:n]))
    assert s["optimizer"] == "Adam" and len(s["history"]) == 2 and s["history"][1]["loss"] < s["history"][0]["loss"]


def test_resume_with_a_changed_fingerprint_is_refused(digits, tmp_path):
    x, y, _, _ = digits
    train, val = _split(x, y)
    n = train[1].numel()

    def trainer(fp, **kw):
        d = CEDistiller(None, make_model(n))
        return Trainer(d, epochs=2, out_dir=tmp_path, fingerprint=fp, **{**TRAIN, **kw})

    trainer({"s": 10, "dropout": 0.5}).fit(train, val)
    with pytest.raises(ValueError, match="the run's settings differ") as e:
        trainer({"s": 5, "dropout": 0.1}, resume=True, bank_size=50).fit(train, val)
    msg = str(e.value)
    for line in ("s: 10 -> 5", "dropout: 0.5 -> 0.1", "bank_size: 100 -> 50"):
        assert line in msg
    assert "epochs" not in msg                           # unchanged settings are not listed
    s = trainer({"s": 10, "dropout": 0.5}, resume=True).fit(train, val)    # same settings: accepted
    assert s["resumed_from"] == 1 and s["s"] == 10
    with pytest.raises(ValueError, match=r"fingerprint entries \['bank_size'\] contradict"):
        trainer({"bank_size": 7}).fit(train, val)


def test_bad_inputs_are_refused_before_training(digits, tmp_path):
    x, y, xt, yt = digits
    train, val = _split(x, y)
    n = train[1].numel()

    def fit(**kw):
        d = CEDistiller(None, make_model(n))
        Trainer(d, epochs=1, out_dir=tmp_path, **TRAIN).fit(kw.get("train", train), kw.get("val", val),
                                                                 kw.get("test", (xt, yt)))

    bad_x = xt.clone()
    bad_x[[7, 42]] = float("nan")
    with pytest.raises(ValueError, match=r"test\[0\] \(x\) has NaN or infinite values in 2 row\(s\) \(first: 7, 42\)"):
        fit(test=(bad_x, yt))
    bad_v = val[0].clone()
    bad_v[3, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"val\[0\] \(x\) has NaN or infinite values in 1 row\(s\) \(first: 3\)"):
        fit(val=(bad_v, val[1]))
    bad_y = train[1].clone()
    bad_y[5] = 12
    with pytest.raises(ValueError, match=r"train labels has label 12 at row 5 .* must be in \[0, 10\)"):
        fit(train=(train[0], bad_y))
    bad_t = yt.clone()
    bad_t[0] = 99
    with pytest.raises(ValueError, match=r"test\[1\] \(labels\) has label 99 at row 0"):
        fit(test=(xt, bad_t))
    assert not (tmp_path / "checkpoint.pt").exists()     # nothing trained
    d = CEDistiller(None, make_model(n))
    for bad in (-1, float("nan"), float("inf"), 0):
        with pytest.raises(ValueError, match=f"gamma must be a finite number > 0, got {bad}"):
            Trainer(d, gamma=bad)
    with pytest.raises(ValueError, match="lr must be a finite number > 0, got nan"):
        Trainer(d, lr=float("nan"))
    with pytest.raises(ValueError, match="momentum must be a finite number >= 0, got -0.5"):
        Trainer(d, momentum=-0.5)
    with pytest.raises(ValueError, match="step_size must be a positive int or None, got 0"):
        Trainer(d, step_size=0)


def test_non_finite_loss_is_caught_at_the_end_of_the_epoch(digits):
    x, y, _, _ = digits
    n = 300

    class Blows(CEDistiller):
        calls = 0

        def forward_train(self, batch, epoch):
            logits, terms = super().forward_train(batch, epoch)
            Blows.calls += 1
            return logits, {"ce": terms["ce"] * (float("nan") if Blows.calls == 2 else 1.0)}

    d = Blows(None, MLP(64, 8, 10))
    with pytest.raises(FloatingPointError, match="non-finite loss at epoch 0, step 1"):
        Trainer(d, epochs=2, **TRAIN).fit((x[:n], y[:n]))
    assert Blows.calls == 3                              # detected once the epoch ended, not per step


def test_set_num_train_is_called_with_the_training_size(digits):
    x, y, _, _ = digits
    seen = []

    class Sized(MLP):
        def set_num_train(self, n):
            seen.append(n)

    Trainer(CEDistiller(None, Sized(64, 8, 10)), epochs=1, **TRAIN).fit((x[:250], y[:250]))
    assert seen == [250]


def test_old_fit_and_new_trainer_give_bit_identical_weights(digits, teacher_state, tmp_path):
    x, y, xt, yt = digits
    n = num_train(y)
    settings = dict(epochs=2, seed=3, cache_teacher_logits=True, **FIT)
    old = HeteroDistiller(make_teacher(teacher_state), make_model(n), alpha=1.0, relation_weight=0.5, device="cpu")
    s_old = old.fit(x, y, test=(xt, yt), out_dir=tmp_path / "old", **settings)
    train, val = _split(x, y)
    new = build_distiller("cnn2gnn", make_teacher(teacher_state), make_model(n), alpha=1.0, relation_weight=0.5)
    s_new = Trainer(new, out_dir=tmp_path / "new", **settings).fit(train, val, (xt, yt))
    a, b = _state(old.model), _state(new.student)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert s_old["test"] == s_new["test"]
    assert [r["loss"] for r in s_old["history"]] == [r["loss"] for r in s_new["history"]]
    assert (tmp_path / "old" / "summary.json").is_file() and not (tmp_path / "new" / "summary.json").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_training_step_has_no_host_sync(digits, teacher_state):
    """Issue 14: from the second step to the last one of an epoch (forward, backward and
    optimiser step of each), nothing synchronises the host with the device."""
    x, y, _, _ = digits
    n, bs = 600, 100

    class Watched(KDDistiller):
        calls = 0

        def forward_train(self, batch, epoch):
            Watched.calls += 1
            if epoch == 0 and Watched.calls == 2:
                torch.cuda.set_sync_debug_mode("error")
            if epoch == 0 and Watched.calls == n // bs:
                torch.cuda.set_sync_debug_mode("default")
            return super().forward_train(batch, epoch)

    d = Watched(make_teacher(teacher_state), MLP(64, HIDDEN, 10))
    try:
        s = Trainer(d, epochs=1, device="cuda", cache_teacher_logits=True, **TRAIN).fit((x[:n], y[:n]))
    finally:
        torch.cuda.set_sync_debug_mode("default")
    assert Watched.calls == n // bs and s["history"][0]["loss"] > 0


@pytest.mark.parametrize("balanced", [False, True])
def test_balanced_batches_hold_the_class_proportions(digits, teacher_state, balanced):
    x, y, _, _ = digits
    train, _ = _split(x, y)
    torch.manual_seed(0)
    d = build_distiller("kd", make_teacher(teacher_state), MLP(64, HIDDEN, 10), tau=4.0)
    seen = []
    forward_train = d.forward_train

    def spy(batch, *args, **kwargs):
        seen.append(batch.labels.clone())
        return forward_train(batch, *args, **kwargs)

    d.forward_train = spy
    s = Trainer(d, epochs=2, balanced_batches=balanced, **TRAIN).fit(train)
    share = torch.bincount(train[1], minlength=10).double() / train[1].numel()
    worst = max(float((torch.bincount(b, minlength=10) - b.numel() * share).abs().max()) for b in seen)
    assert len(seen) == 2 * (train[1].numel() // 100)
    if balanced:
        assert worst <= 2 and s["balanced_batches"] is True
    else:                                    # a uniform shuffle: some batch is off by more
        assert worst > 2 and "balanced_batches" not in s
    with pytest.raises(TypeError, match="balanced_batches must be a bool"):
        Trainer(d, balanced_batches="yes")
