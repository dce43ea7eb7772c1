"""The distillation loss (paper Eq. 6, 7) against a NumPy hand computation."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from tg_cnn2gnn.distill import DistillationLoss, distillation_loss, kd_divergence

STUDENT = np.array([[2.0, -1.0, 0.5, 0.0],
                    [0.1, 0.2, 3.0, -2.0],
                    [-1.5, 4.0, 0.0, 1.0]])
TEACHER = np.array([[3.0, 0.0, -1.0, 1.0],
                    [0.0, 0.5, 2.0, 0.0],
                    [1.0, 2.0, -3.0, 0.5]])
LABELS = np.array([0, 2, 1])


def softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def reference(alpha: float, tau: float, kd_scale: str) -> tuple[float, float, float]:
    """Eq. 6/7 by hand: CE of softmax(student); KL(q_t || q_s) summed over classes,
    averaged over the batch, times tau^2 for kd_scale='tau2'."""
    p = softmax(STUDENT)
    ce = -np.mean(np.log(p[np.arange(3), LABELS]))
    qs, qt = softmax(STUDENT / tau), softmax(TEACHER / tau)
    kl = np.sum(qt * (np.log(qt) - np.log(qs))) / STUDENT.shape[0]
    kd = kl * (tau ** 2 if kd_scale == "tau2" else 1.0)
    return ce + alpha * kd, ce, kd


@pytest.mark.parametrize("kd_scale", ["tau2", "none"])
@pytest.mark.parametrize("alpha,tau", [(1.0, 4.0), (0.5, 2.0), (2.0, 16.0)])
def test_loss_matches_hand_computation(alpha, tau, kd_scale):
    s = torch.tensor(STUDENT, dtype=torch.float64)
    t = torch.tensor(TEACHER, dtype=torch.float64)
    loss, parts = distillation_loss(s, t, torch.tensor(LABELS), alpha, tau, kd_scale)
    ref_loss, ref_ce, ref_kd = reference(alpha, tau, kd_scale)
    assert loss.dtype == torch.float64
    np.testing.assert_allclose(loss.item(), ref_loss, rtol=1e-12)
    np.testing.assert_allclose(parts["ce"].item(), ref_ce, rtol=1e-12)
    np.testing.assert_allclose(parts["kd"].item(), ref_kd, rtol=1e-12)
    np.testing.assert_allclose(parts["loss"].item(), ref_loss, rtol=1e-12)
    assert kd_divergence(s, t, tau, kd_scale).item() == pytest.approx(ref_kd, rel=1e-12)


def test_tau2_scale_is_tau_squared_times_none():
    s = torch.tensor(STUDENT, dtype=torch.float64)
    t = torch.tensor(TEACHER, dtype=torch.float64)
    kd_none = kd_divergence(s, t, 8.0, "none")
    kd_tau2 = kd_divergence(s, t, 8.0, "tau2")
    assert kd_tau2.item() == pytest.approx(64.0 * kd_none.item(), rel=1e-12)
    assert kd_none.item() > 0


def test_alpha_zero_is_plain_cross_entropy():
    s = torch.tensor(STUDENT, dtype=torch.float32, requires_grad=True)
    t = torch.tensor(TEACHER, dtype=torch.float32)
    y = torch.tensor(LABELS)
    loss, parts = distillation_loss(s, t, y, alpha=0.0, tau=4.0)
    assert torch.equal(loss, F.cross_entropy(s, y))
    assert parts["kd"].item() > 0  # still reported
    (g,) = torch.autograd.grad(loss, s)
    (g_ce,) = torch.autograd.grad(F.cross_entropy(s, y), s)
    assert torch.equal(g, g_ce)
    # without a teacher at all
    loss2, parts2 = distillation_loss(s, None, y, alpha=0.0)
    assert torch.equal(loss2, loss) and torch.isnan(parts2["kd"])


def test_teacher_equal_to_student_gives_zero_kd():
    s = torch.tensor(STUDENT)
    loss, parts = distillation_loss(s, s.clone(), torch.tensor(LABELS), alpha=3.0, tau=4.0)
    assert parts["kd"].abs().item() < 1e-6
    assert loss.item() == pytest.approx(parts["ce"].item(), abs=1e-5)


def test_gradcheck_float64_and_no_teacher_gradient():
    s = torch.tensor(STUDENT, dtype=torch.float64, requires_grad=True)
    t = torch.tensor(TEACHER, dtype=torch.float64, requires_grad=True)
    y = torch.tensor(LABELS)
    assert torch.autograd.gradcheck(lambda z: distillation_loss(z, t, y, 1.0, 4.0, "tau2")[0], (s,))
    loss, _ = distillation_loss(s, t, y, 1.0, 4.0)
    loss.backward()
    assert t.grad is None  # the teacher is a constant target


def test_module_form_and_repr():
    m = DistillationLoss(alpha=0.5, tau=2.0, kd_scale="none")
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    assert torch.equal(m(s, t, y)[0], distillation_loss(s, t, y, 0.5, 2.0, "none")[0])
    assert "kd_scale='none'" in repr(m)


@pytest.mark.parametrize("kwargs,match", [
    (dict(alpha=-1.0), "alpha must be a finite number >= 0, got -1.0"),
    (dict(tau=0.0), "tau must be a finite number > 0, got 0.0"),
    (dict(kd_scale="tau"), "kd_scale='tau' is not supported; allowed values: 'tau2', 'none'"),
])
def test_bad_arguments(kwargs, match):
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    with pytest.raises(ValueError, match=match.replace("(", r"\(").replace(")", r"\)")):
        distillation_loss(s, t, y, **kwargs)


def test_bad_shapes():
    s, t, y = torch.tensor(STUDENT), torch.tensor(TEACHER), torch.tensor(LABELS)
    with pytest.raises(ValueError, match="teacher_logits must have the shape"):
        distillation_loss(s, t[:, :3], y)
    with pytest.raises(ValueError, match="labels must be a 1-D tensor with 3 entries"):
        distillation_loss(s, t, y[:2])
    with pytest.raises(TypeError, match="labels must be an integer tensor"):
        distillation_loss(s, t, y.float())
    with pytest.raises(ValueError, match="teacher_logits is None but alpha=1.0"):
        distillation_loss(s, None, y, alpha=1.0)
