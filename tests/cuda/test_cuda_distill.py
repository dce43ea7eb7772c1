"""Distillation on CUDA: one step vs the CPU, AMP (bf16; fp16 with a GradScaler), the
bank / Mechanism 2 predictors, host synchronisations, and a 1-process NCCL run.

All package calls go through ``benchmarks/gpu/gpu_api.py`` (one place to retarget after a
refactor). Data: scikit-learn's digits (no files needed).

Tolerances:
* fp32 step, CUDA vs CPU (same weights, batch, cached logits; SGD so that the update is
  ``lr * grad``): loss rtol 1e-4; updated parameters rtol 1e-4 / atol 1e-5.
* bf16 autocast: loss within 3e-2 relative of the fp32 CPU loss (8-bit mantissa);
  fp16 autocast + GradScaler: within 1e-2. For both, the parameter update has cosine
  similarity >= 0.99 with the fp32 update and stays finite.
* predictions (bank, Mechanism 2, Mechanism 1, direct): >= 99.5 % of the rows' logits within
  rtol 1e-4 / atol 1e-4 (a near-tie at the (s+1)-th neighbour may flip a row), same argmax
  on >= 99.5 %.
"""
from __future__ import annotations

import copy
import os

import gpu_api as api
import probes
import pytest
import torch

SETTINGS = dict(dataset="digits", teacher="simple-cnn", teacher_width=8, s=10, head_hidden=[64], hidden=32,
                batch_size=100, optimizer="sgd", lr=0.01, momentum=0.0, alpha=1.0, tau=4.0, dropout=0.0,
                val_fraction=0.1, bank_size=100, epochs=1, device="cpu", mechanisms=["bank", "batch"])


@pytest.fixture(scope="module")
def setup():
    s = api.settings(SETTINGS)
    data = api.load(s)
    teacher = api.build_teacher(s, data).eval()
    return s, data, teacher


def _pair(setup, cuda, form="anchor", amp="none", **kw):
    """The same distiller (weights, teacher) on the CPU (fp32) and on CUDA (``amp``)."""
    s, data, teacher = setup
    s = s.replace(head_form=form, **kw)
    model = api.build_student(s, data)
    d_cpu = api.make_distiller(s, copy.deepcopy(teacher), model)
    d_gpu = api.make_distiller(s.replace(device=str(cuda)), copy.deepcopy(teacher), copy.deepcopy(model), amp=amp)
    assert next(d_gpu.parameters()).device.type == cuda.type
    return s, data, d_cpu, d_gpu


def _batch(data, dev, n=100, seed=0):
    pos = torch.randperm(data.n_train, generator=torch.Generator().manual_seed(seed))[:n]
    return data.x_train[pos].to(dev), data.y_train[pos].to(dev), pos.to(dev)


def _cache(d, data, dev):
    return api.teacher_logits(d.teacher, data.x_train, dev)


#: GradScaler start of the one-step fp16 test: torch's default (2^16) overflowed the first step's
#: fp16 gradients on the H200, so the scaler skipped it (a zero update); a single step needs a scale
#: that does not overflow
FP16_INIT_SCALE = 2.0 ** 8


def _step(d, s, data, dev, amp="none"):
    opt, scaler = api.make_step_state(d, s, amp=amp, init_scale=FP16_INIT_SCALE)
    cache = _cache(d, data, dev)
    api.start_epoch(d, data.x_train.to(dev), data.y_train.to(dev))
    x, y, pos = _batch(data, dev)
    before = [p.detach().clone() for p in d.learnable_parameters()]
    d.train()
    loss = api.train_step(d, opt, scaler, x, y, pos, cache, amp=amp)
    delta = torch.cat([(p.detach() - b).flatten().cpu() for p, b in zip(d.learnable_parameters(), before)])
    return float(loss), delta, scaler


@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_fp32_step_matches_cpu(setup, cuda, form):
    s, data, d_cpu, d_gpu = _pair(setup, cuda, form)
    loss_c, delta_c, _ = _step(d_cpu, s, data, torch.device("cpu"))
    loss_g, delta_g, _ = _step(d_gpu, s, data, cuda)
    assert loss_g == pytest.approx(loss_c, rel=1e-4)
    assert delta_c.abs().sum() > 0
    torch.testing.assert_close(delta_g, delta_c, rtol=1e-4, atol=1e-5)
    for p_c, p_g in zip(d_cpu.learnable_parameters(), d_gpu.learnable_parameters()):
        torch.testing.assert_close(p_g.detach().cpu(), p_c.detach(), rtol=1e-4, atol=1e-5)


#: the training graphs of the two shipped presets (configs/fashion-mnist/paper.yaml: Eq. 4 over a
#: pool of the whole training set with the NCA term; main.yaml: batch graph, embedding head with
#: normalised codes, NCA and relation terms)
GRAPHS = {"pool-anchor": dict(head_form="anchor", graph="pool", graph_nca=3.0),
          "batch-embedding-nca": dict(head_form="embedding", graph="batch", graph_nca=3.0, code_scale=5.0,
                                      relation_weight=5.0, embedding_channels=16)}


@pytest.mark.parametrize("graph", sorted(GRAPHS))
def test_fp32_step_with_training_graph_matches_cpu(setup, cuda, graph):
    kw = dict(GRAPHS[graph])
    s, data, d_cpu, d_gpu = _pair(setup, cuda, kw.pop("head_form"), **kw)
    assert d_cpu.graph_builder is not None
    loss_c, delta_c, _ = _step(d_cpu, s, data, torch.device("cpu"))
    loss_g, delta_g, _ = _step(d_gpu, s, data, cuda)
    assert loss_g == pytest.approx(loss_c, rel=1e-4)
    assert delta_c.abs().sum() > 0
    torch.testing.assert_close(delta_g, delta_c, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("amp,rel", [("bf16", 3e-2), pytest.param("fp16", 1e-2, marks=pytest.mark.real_cuda)])
def test_amp_step_close_to_fp32(setup, cuda, amp, rel):
    s, data, d_cpu, d_gpu = _pair(setup, cuda, amp=amp)
    loss_c, delta_c, _ = _step(d_cpu, s, data, torch.device("cpu"))
    loss_g, delta_g, scaler = _step(d_gpu, s, data, cuda, amp=amp)
    assert loss_g == pytest.approx(loss_c, rel=rel)
    assert loss_g != loss_c or cuda.type == "cpu"    # the low-precision path really ran
    if amp == "fp16":   # a skipped step (inf/NaN gradients) would leave a zero update
        assert scaler.get_scale() == FP16_INIT_SCALE, f"GradScaler skipped the step (scale now {scaler.get_scale()})"
    assert torch.isfinite(delta_g).all()
    cos = torch.nn.functional.cosine_similarity(delta_g.double(), delta_c.double(), dim=0)
    assert cos >= 0.99, f"{amp} update direction differs from fp32 (cosine {float(cos):.4f})"
    if amp == "fp16":
        assert scaler is not None and 0 < scaler.get_scale() < float("inf")


@pytest.mark.real_cuda
def test_fit_with_amp_on_cuda(setup, cuda):
    """The package's own AMP path (train_student -> Trainer(amp=True): fp16 + GradScaler) for one epoch."""
    s, data, teacher = setup
    s = s.replace(device="cuda")
    summary = api.distill(s, data, copy.deepcopy(teacher), api.build_student(s, data), amp="fp16",
                          log=lambda m: None)
    hist = summary["history"]
    assert len(hist) == 1 and torch.isfinite(torch.tensor(hist[0]["loss"]))
    for mech in ("bank", "batch"):
        assert 0.0 <= summary["test"]["last"][mech] <= 1.0


@pytest.mark.parametrize("form,mechanisms", [("anchor", ("bank", "batch", "one_by_one")),
                                             ("embedding", ("bank", "batch", "direct"))])
def test_predictors_match_cpu(setup, cuda, form, mechanisms):
    s, data, d_cpu, d_gpu = _pair(setup, cuda, form)
    _step(d_cpu, s, data, torch.device("cpu"))     # move away from the initialisation, same on both
    d_gpu.model.load_state_dict(d_cpu.model.state_dict())
    train_x = data.train_features
    xt = data.x_test.flatten(1)
    for mech in mechanisms:
        lc = api.predict(d_cpu.model, xt, train_x, mech, bank_size=50)
        lg = api.predict(d_gpu.model, xt.to(cuda), train_x.to(cuda), mech, bank_size=50)
        assert lg.device == cuda
        # rows, not all entries: a near-tie at the (s+1)-th neighbour may pick another
        # neighbour on the GPU (float32 rounding), which changes that row's logits
        close = ((lg.cpu() - lc).abs() <= 1e-4 + 1e-4 * lc.abs()).all(1).double().mean()
        assert close >= 0.995, f"{mech}: only {float(close):.4f} of the rows agree to 1e-4"
        agree = (lg.argmax(-1).cpu() == lc.argmax(-1)).double().mean()
        assert agree >= 0.995, f"{mech}: argmax agrees on {float(agree):.4f}"


# Host synchronisations the CURRENT code makes inside one training step, found by reading it
# (the test below fails and lists the real sites until they are removed; each is a GPU stall
# per step):
#   - nn/head.py check_index: bool(((index < 0) | (index >= num_train)).any())  (anchor head)
#   - functional/distance.py scale_points: float(x.abs().amax())  (one per distance call,
#     via nn/_invariant.py pairwise_distance in the head)
#   - functional/simplex.py sparse_simplex_topk(validate=True): check_matrix(dist, finite=True)
#     -> bool(torch.isfinite(dist).all())
#   - nn/student.py forward: bool((edge_index[0] == edge_index[1]).any())        (dense-path guard)
#   - functional/graph.py topk_to_edges -> torch_geometric.utils.coalesce: mask.all() and
#     boolean-mask indexing (data-dependent output size)
#   - nn/optim.py LazyAdam/LazySGD: float(state["step"]) and sparse-gradient coalesce
#   - fp16 only: GradScaler.step reads found_inf (.item()); GradScaler.update
# Not in the step any more: the Trainer's loop (distill/_engine.py TrainLoop._epoch) is
# sync-free per step -- a non-finite loss sets a device flag (torch.where) that is read once
# per epoch (int(bad_step)), metric sums stay on the device, and on CUDA the training set is
# resident on the device with batches gathered by pinned, non-blocking position copies
# (distill/_data.py TensorSource.iterate). api.train_step leaves the flag and sums out.
#: Host synchronisations of one training step, found on the H200 (torch 2.11, 2026-11-30):
#: anchor head: head.py check_index (``bool(bad.any())``), functional/_checks.py, PyG coalesce
#: (3 sites) in topk_to_edges, student.py's dense-path self-loop guard; embedding head: the same
#: without check_index, plus distance.py ``scale_points`` (``float(x.abs().amax())``, 2 sites).
#: The issue's target (none) is not met; strict, so that a fix shows up as XPASS.
KNOWN_SYNCS = pytest.mark.xfail(torch.cuda.is_available(), strict=True,
                                reason="known host synchronisations in the training step (see KNOWN_SYNCS)")


@pytest.mark.real_cuda
@KNOWN_SYNCS
@pytest.mark.parametrize("form", ["anchor", "embedding"])
def test_training_step_has_no_host_sync(setup, cuda, form):
    s, data, _, d = _pair(setup, cuda, form)
    opt, scaler = api.make_step_state(d, s)
    cache = _cache(d, data, cuda)
    x, y, pos = _batch(data, cuda)
    d.train()
    api.train_step(d, opt, scaler, x, y, pos, cache)      # warm-up: lazy state, cuBLAS handles
    torch.cuda.synchronize()
    torch.cuda.set_sync_debug_mode("error")
    try:
        api.train_step(d, opt, scaler, x, y, pos, cache)
        error = None
    except RuntimeError as e:
        error = e
    finally:
        torch.cuda.set_sync_debug_mode(0)
    if error is not None:
        sites = probes.sync_sites(lambda: api.train_step(d, opt, scaler, x, y, pos, cache))
        pytest.fail(f"the training step synchronises with the host ({form} head) at {len(sites)} site(s): "
                    f"{sites}; first error: {str(error).splitlines()[0]}")


@pytest.mark.real_cuda
def test_nccl_single_process_fit(setup, cuda, tmp_path):
    """A 1-process NCCL process group (init_method=file) and one distillation epoch in it."""
    import torch.distributed as dist
    assert dist.is_nccl_available()
    s, data, teacher = setup
    s = s.replace(device="cuda")
    os.environ.setdefault("LOCAL_RANK", "0")
    dist.init_process_group("nccl", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        t = torch.ones(3, device=cuda)
        dist.all_reduce(t)
        assert torch.equal(t.cpu(), torch.ones(3))
        summary = api.distill(s, data, copy.deepcopy(teacher), api.build_student(s, data), distributed=True,
                              log=lambda m: None)
        assert dist.get_backend() == "nccl" and summary["world_size"] == 1
        assert len(summary["history"]) == 1 and summary["device"].startswith("cuda")
    finally:
        dist.destroy_process_group()
