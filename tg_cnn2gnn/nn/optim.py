r"""Optimisers that take dense and row-sparse gradients in one ``param_groups`` list.

The anchor form of :class:`~tg_cnn2gnn.nn.LearnedGraphHead` keeps one row of its
last layer per training sample (``num_train x hidden`` weights). A training step only
reads the rows of its batch, and with ``sparse_grad=True`` (opt-in; the default
``False`` gives a dense gradient that any stock optimiser takes) the gradient of
that weight is a ``torch.sparse_coo`` tensor holding those rows only. Stock
:class:`torch.optim.Adam` and :class:`torch.optim.AdamW` reject sparse gradients and
:class:`torch.optim.SparseAdam` rejects dense ones, so a model that has both would need
two optimisers (and two LR schedulers). :class:`LazyAdam` and :class:`LazySGD` take both
kinds in one optimiser, so LR schedulers, ``state_dict`` and ``zero_grad`` work as usual.

Dense gradients get the textbook update (identical to :class:`torch.optim.Adam`,
:class:`torch.optim.AdamW` or :class:`torch.optim.SGD`). A sparse gradient gets the
*lazy* update of :class:`torch.optim.SparseAdam` (TensorFlow's ``LazyAdam``): only the
rows present in the gradient are touched (moments, weight decay, the parameter), so a
step costs ``O(batch x hidden)`` whatever ``num_train`` is. After one step from a fresh
state the lazy and dense updates are equal when ``weight_decay == 0`` (the untouched rows
of dense Adam/SGD move by exactly 0 then); afterwards dense Adam keeps moving rows with
stale momentum while the lazy update leaves them until they are sampled again, and a
non-zero ``weight_decay`` only decays the rows a step touches.

Usage (the distiller does this)::

    from tg_cnn2gnn.nn import make_optimizer
    model = CNN2GNN(LearnedGraphHead(784, num_train, sparse_grad=True), GraphStudent(784, 256, 10))
    opt = make_optimizer(model, lr=0.01, kind="adam", weight_decay=5e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=epochs)
    for x, y, idx in loader:
        opt.zero_grad()
        loss = F.cross_entropy(model(x.flatten(1), idx), y)
        loss.backward()
        opt.step()
    sched.step()

Gradient clipping: ``torch.nn.utils.clip_grad_norm_`` does not take sparse gradients; use
:func:`clip_grad_norm` (same semantics) instead.
"""
from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn
from torch.optim import Optimizer

from tg_cnn2gnn.functional._checks import check_choice

#: Optimiser kinds understood by :func:`make_optimizer`.
OPTIMIZERS = ("adam", "adamw", "sgd")


def _check_float(name: str, value: object, *, low: float = 0.0, high: float | None = None,
                 low_inclusive: bool = True) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {value!r} ({type(value).__name__})")
    ok = value >= low if low_inclusive else value > low
    if high is not None:
        ok = ok and value < high
    if not ok:
        bound = f"{'>=' if low_inclusive else '>'} {low}" + (f" and < {high}" if high is not None else "")
        raise ValueError(f"{name} must be {bound}, got {value!r}")
    return float(value)


def _sparse_rows(grad: Tensor) -> tuple[Tensor, Tensor]:
    """Row indices ``[k]`` and values ``[k, ...]`` of a coalesced row-sparse gradient."""
    grad = grad.coalesce()
    index = grad.indices()
    if index.size(0) != 1:
        raise ValueError("sparse gradients must be row-sparse (sparse_dim=1, as produced by "
                         f"F.embedding(..., sparse=True)), got sparse_dim={index.size(0)}")
    return index[0], grad.values()


class LazyAdam(Optimizer):
    r"""Adam (or AdamW) for dense and row-sparse gradients in one optimiser.

    Dense parameters follow :class:`torch.optim.Adam` (``decoupled=False``, L2 penalty
    added to the gradient) or :class:`torch.optim.AdamW` (``decoupled=True``). Parameters
    whose ``.grad`` is a row-sparse ``torch.sparse_coo`` tensor get the lazy update of
    :class:`torch.optim.SparseAdam` on the present rows only, with the same weight-decay
    rule applied to those rows. Bias correction uses the number of steps in which the
    parameter had a gradient, as in both stock optimisers; ``eps`` is added after the bias
    correction as in :class:`torch.optim.Adam` (``SparseAdam`` adds it before), so a sparse
    row's update equals the dense Adam update of that row.

    Args:
        params: parameters or parameter groups.
        lr (float): learning rate. (default: :obj:`1e-3`)
        betas (tuple[float, float]): moment decay rates. (default: :obj:`(0.9, 0.999)`)
        eps (float): denominator term. (default: :obj:`1e-8`)
        weight_decay (float): L2 (or decoupled) weight decay. (default: :obj:`0.0`)
        decoupled (bool): AdamW-style decoupled decay. (default: :obj:`False`)
        fused (bool, optional): update the dense parameters with PyTorch's fused Adam
            kernel (as ``torch.optim.Adam(fused=True)``; about 2x faster on CPU); falls back
            to the plain loop where the kernel is unavailable. (default: auto)
    """

    def __init__(self, params: Iterable, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8, weight_decay: float = 0.0, decoupled: bool = False,
                 fused: bool | None = None) -> None:
        _check_float("lr", lr)
        _check_float("eps", eps)
        _check_float("weight_decay", weight_decay)
        if not (isinstance(betas, (tuple, list)) and len(betas) == 2):
            raise ValueError(f"betas must be a pair of floats in [0, 1), got {betas!r}")
        _check_float("betas[0]", betas[0], high=1.0)
        _check_float("betas[1]", betas[1], high=1.0)
        defaults = dict(lr=lr, betas=tuple(betas), eps=eps, weight_decay=weight_decay,
                        decoupled=decoupled)
        super().__init__(params, defaults)
        self.fused = hasattr(torch, "_fused_adam_") if fused is None else bool(fused)

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Performs one optimisation step. ``closure`` re-evaluates the loss (optional)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, (b1, b2), eps = group["lr"], group["betas"], group["eps"]
            wd, decoupled = group["weight_decay"], group["decoupled"]
            dense: list[Tensor] = []
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if not state:
                    state["step"] = torch.zeros((), dtype=torch.float32)
                    state["exp_avg"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                    state["exp_avg_sq"] = torch.zeros_like(p, memory_format=torch.preserve_format)
                if p.grad.is_sparse:
                    self._sparse_update(p, state, lr, b1, b2, eps, wd, decoupled)
                else:
                    dense.append(p)
            if dense:
                self._dense_update(dense, lr, b1, b2, eps, wd, decoupled)
        return loss

    def _sparse_update(self, p: Tensor, state: dict, lr: float, b1: float, b2: float,
                       eps: float, wd: float, decoupled: bool) -> None:
        state["step"] += 1
        t = float(state["step"])
        bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
        m, v = state["exp_avg"], state["exp_avg_sq"]
        rows, g = _sparse_rows(p.grad)
        prow = p.index_select(0, rows)
        if wd != 0:
            if decoupled:
                prow = prow * (1.0 - lr * wd)
            else:
                g = g + wd * prow
        mrow = m.index_select(0, rows).mul_(b1).add_(g, alpha=1.0 - b1)
        vrow = v.index_select(0, rows).mul_(b2).addcmul_(g, g, value=1.0 - b2)
        m.index_copy_(0, rows, mrow)
        v.index_copy_(0, rows, vrow)
        denom = (vrow.sqrt() / (bc2 ** 0.5)).add_(eps)
        p.index_copy_(0, rows, prow.addcdiv(mrow, denom, value=-lr / bc1))

    def _dense_update(self, params: list[Tensor], lr: float, b1: float, b2: float, eps: float,
                      wd: float, decoupled: bool) -> None:
        states = [self.state[p] for p in params]
        steps = [st["step"] for st in states]
        if self.fused and all(p.device.type == "cpu" or p.is_cuda for p in params):
            # PyTorch's fused Adam kernel (one pass per tensor), as torch.optim.Adam(fused=True).
            try:
                torch._foreach_add_(steps, 1)
                fn = torch._fused_adamw_ if decoupled else torch._fused_adam_
                fn(params, [p.grad for p in params], [st["exp_avg"] for st in states],
                   [st["exp_avg_sq"] for st in states], [], steps, amsgrad=False, lr=lr,
                   beta1=b1, beta2=b2, weight_decay=wd, eps=eps, maximize=False,
                   grad_scale=None, found_inf=None)
                return
            except (RuntimeError, TypeError, AttributeError):   # unsupported dtype/device
                torch._foreach_sub_(steps, 1)
                self.fused = False
        for p, st in zip(params, states):
            st["step"] += 1
            t = float(st["step"])
            bc1, bc2 = 1.0 - b1 ** t, 1.0 - b2 ** t
            m, v, g = st["exp_avg"], st["exp_avg_sq"], p.grad
            if wd != 0:
                if decoupled:
                    p.mul_(1.0 - lr * wd)
                else:
                    g = g.add(p, alpha=wd)
            m.mul_(b1).add_(g, alpha=1.0 - b1)
            v.mul_(b2).addcmul_(g, g, value=1.0 - b2)
            denom = (v.sqrt() / (bc2 ** 0.5)).add_(eps)
            p.addcdiv_(m, denom, value=-lr / bc1)


class LazySGD(Optimizer):
    r"""SGD with momentum for dense and row-sparse gradients in one optimiser.

    Dense parameters follow :class:`torch.optim.SGD` (``dampening=0``). For a row-sparse
    gradient only the present rows are updated: ``g += weight_decay * p[rows]``,
    ``buf[rows] = momentum * buf[rows] + g`` (``buf[rows] = g`` on a row's first step, as in
    SGD's first step), ``p[rows] -= lr * (g + momentum * buf[rows] if nesterov else buf[rows])``.

    Args:
        params: parameters or parameter groups.
        lr (float): learning rate. (default: :obj:`0.01`)
        momentum (float): momentum factor. (default: :obj:`0.0`)
        weight_decay (float): L2 penalty. (default: :obj:`0.0`)
        nesterov (bool): Nesterov momentum. (default: :obj:`False`)
    """

    def __init__(self, params: Iterable, lr: float = 0.01, momentum: float = 0.0,
                 weight_decay: float = 0.0, nesterov: bool = False) -> None:
        _check_float("lr", lr)
        _check_float("momentum", momentum)
        _check_float("weight_decay", weight_decay)
        if nesterov and momentum <= 0:
            raise ValueError(f"nesterov=True needs momentum > 0, got momentum={momentum!r}")
        super().__init__(params, dict(lr=lr, momentum=momentum, weight_decay=weight_decay,
                                      nesterov=nesterov))

    @torch.no_grad()
    def step(self, closure=None):  # type: ignore[override]
        """Performs one optimisation step. ``closure`` re-evaluates the loss (optional)."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            lr, mom, wd, nesterov = (group["lr"], group["momentum"], group["weight_decay"],
                                     group["nesterov"])
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                if p.grad.is_sparse:
                    rows, g = _sparse_rows(p.grad)
                    if wd != 0:
                        g = g + wd * p.index_select(0, rows)
                    if mom != 0:
                        if "momentum_buffer" not in state:
                            state["momentum_buffer"] = torch.zeros_like(p)
                            state["seen"] = torch.zeros(p.size(0), dtype=torch.bool, device=p.device)
                        buf, seen = state["momentum_buffer"], state["seen"]
                        first = ~seen.index_select(0, rows)
                        brow = buf.index_select(0, rows).mul_(mom).add_(g)
                        # A row's first update starts its buffer at g, like SGD's first step.
                        brow = torch.where(first.view(-1, *([1] * (g.dim() - 1))), g, brow)
                        buf.index_copy_(0, rows, brow)
                        seen.index_fill_(0, rows, True)
                        g = g + mom * brow if nesterov else brow
                    p.index_add_(0, rows, g, alpha=-lr)
                else:
                    g = p.grad
                    if wd != 0:
                        g = g.add(p, alpha=wd)
                    if mom != 0:
                        buf = state.get("momentum_buffer")
                        if buf is None:
                            buf = state["momentum_buffer"] = g.clone()
                        else:
                            buf.mul_(mom).add_(g)
                        g = g.add(buf, alpha=mom) if nesterov else buf
                    p.add_(g, alpha=-lr)
        return loss


@torch.no_grad()
def clip_grad_norm(parameters: Iterable[Tensor] | nn.Module, max_norm: float) -> Tensor:
    r"""``torch.nn.utils.clip_grad_norm_`` that also accepts row-sparse gradients.

    The total 2-norm is taken over all gradients (a sparse one contributes the norm of its
    coalesced values); if it exceeds ``max_norm`` every gradient is scaled by
    ``max_norm / (norm + 1e-6)`` in place. Returns the total norm (before clipping).
    """
    _check_float("max_norm", max_norm, low=0.0, low_inclusive=False)
    params = parameters.parameters() if isinstance(parameters, nn.Module) else parameters
    params = [p for p in params if p.grad is not None]
    if not params:
        return torch.zeros(())
    norms = []
    for p in params:
        if p.grad.is_sparse:
            p.grad = p.grad.coalesce()
            norms.append(torch.linalg.vector_norm(p.grad.values()))
        else:
            norms.append(torch.linalg.vector_norm(p.grad))
    total = torch.linalg.vector_norm(torch.stack(norms))
    coef = max_norm / (float(total) + 1e-6)
    if coef < 1:
        for p in params:
            if p.grad.is_sparse:
                p.grad = p.grad * coef
            else:
                p.grad.mul_(coef)
    return total


def make_optimizer(model: nn.Module | Iterable, lr: float = 0.01, kind: str = "adam",
                   weight_decay: float = 0.0, **kwargs) -> Optimizer:
    r"""The optimiser for a :class:`~tg_cnn2gnn.nn.CNN2GNN` (or any) model, sparse-gradient aware.

    Returns one :class:`torch.optim.Optimizer` over all trainable parameters of ``model``
    (those with ``requires_grad``; a frozen teacher is skipped) that accepts both dense
    gradients and the row-sparse gradient of the anchor head's last layer, so a training
    step's cost does not grow with ``num_train``. Works with LR schedulers and
    ``state_dict``/``load_state_dict`` like any optimiser.

    Args:
        model: an ``nn.Module``, or an iterable of parameters / parameter-group dicts.
        lr (float): learning rate (the paper uses :obj:`0.01`).
        kind (str): ``"adam"`` (:class:`LazyAdam`, L2 decay), ``"adamw"`` (:class:`LazyAdam`
            with decoupled decay) or ``"sgd"`` (:class:`LazySGD`).
        weight_decay (float): weight decay (see the module docstring for sparse rows).
        **kwargs: passed on: ``betas``, ``eps`` (adam/adamw); ``momentum``, ``nesterov`` (sgd).

    Example::

        opt = make_optimizer(model, lr=0.01, kind="sgd", momentum=0.9, weight_decay=5e-4)
    """
    check_choice("kind", kind, OPTIMIZERS)
    if isinstance(model, nn.Module):
        params: list = [p for p in model.parameters() if p.requires_grad]
    else:
        params = list(model)
        if params and not isinstance(params[0], dict):
            params = [p for p in params if p.requires_grad]
    if not params:
        raise ValueError("make_optimizer found no trainable parameters (requires_grad=True) in model")
    if kind == "sgd":
        allowed = {"momentum", "nesterov"}
    else:
        allowed = {"betas", "eps"}
    bad = sorted(set(kwargs) - allowed)
    if bad:
        raise TypeError(f"make_optimizer(kind={kind!r}) got unexpected keyword argument(s) {bad}; "
                        f"allowed: {sorted(allowed)}")
    if kind == "sgd":
        return LazySGD(params, lr=lr, weight_decay=weight_decay, **kwargs)
    return LazyAdam(params, lr=lr, weight_decay=weight_decay, decoupled=(kind == "adamw"), **kwargs)
