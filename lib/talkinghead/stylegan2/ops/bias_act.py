"""Fused bias + activation + gain + clamp: ``y = clamp(act(x + b) * gain, -clamp, clamp)``.

StyleGAN2 applies this after every convolution and fully-connected layer; fusing it into one kernel saves three
passes over the activations. The CUDA kernel covers the piecewise-linear activations the networks use
(``linear``, ``relu``, ``lrelu``), whose derivative depends only on the sign of the output; every other
activation runs the reference, which plain autograd differentiates to any order.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from talkinghead.stylegan2.ops._build import load_extension

__all__ = ["Activation", "ACTIVATIONS", "bias_act"]


@dataclass(frozen=True)
class Activation:
    """One activation: its function, default slope ``alpha``, default ``gain`` (keeps the signal's second moment
    near 1 for unit-variance inputs) and its index in the CUDA kernel (None: reference only)."""

    func: Callable[[torch.Tensor, float], torch.Tensor]
    alpha: float = 0.0
    gain: float = 1.0
    cuda_index: int | None = None


ACTIVATIONS: dict[str, Activation] = {
    "linear": Activation(lambda x, a: x, cuda_index=0),
    "relu": Activation(lambda x, a: F.relu(x), gain=math.sqrt(2), cuda_index=1),
    "lrelu": Activation(lambda x, a: F.leaky_relu(x, a), alpha=0.2, gain=math.sqrt(2), cuda_index=2),
    "tanh": Activation(lambda x, a: torch.tanh(x)),
    "sigmoid": Activation(lambda x, a: torch.sigmoid(x)),
    "elu": Activation(lambda x, a: F.elu(x)),
    "selu": Activation(lambda x, a: F.selu(x)),
    "softplus": Activation(lambda x, a: F.softplus(x)),
    "swish": Activation(lambda x, a: torch.sigmoid(x) * x, gain=math.sqrt(2)),
}


def bias_act(
    x: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    dim: int = 1,
    act: str = "linear",
    alpha: float | None = None,
    gain: float | None = None,
    clamp: float | None = None,
    impl: str = "cuda",
) -> torch.Tensor:
    """Add a bias, apply an activation, scale and clamp, in one pass.

    Args:
        x: input of any shape, e.g. (B, C, H, W) or (B, C).
        b: bias of shape (x.shape[dim],), or None.
        dim: the dimension of ``x`` the bias runs along.
        act: a name in ``ACTIVATIONS``.
        alpha: slope of ``lrelu`` for negative inputs (default 0.2).
        gain: output scale (default: the activation's, sqrt(2) for relu/lrelu/swish, else 1).
        clamp: clamp the output to [-clamp, clamp] (None: no clamping). StyleGAN2-ADA uses 256 against fp16 overflow.
        impl: ``'cuda'`` (fused kernel when ``x`` is on a GPU and the kernel builds) or ``'ref'`` (plain PyTorch).
    Returns:
        A tensor shaped like ``x``. Gradients reach ``x`` and ``b``, to second order.
    """
    if act not in ACTIVATIONS:
        raise ValueError(f"unknown activation {act!r}: use one of {', '.join(ACTIVATIONS)}")
    if impl not in ("cuda", "ref"):
        raise ValueError(f"impl must be 'cuda' or 'ref', not {impl!r}")
    spec = ACTIVATIONS[act]
    alpha = spec.alpha if alpha is None else float(alpha)
    gain = spec.gain if gain is None else float(gain)
    clamp = -1.0 if clamp is None else float(clamp)  # the kernel reads a negative clamp as "no clamp"
    dim = dim % x.ndim
    if b is not None and (b.ndim != 1 or b.shape[0] != x.shape[dim]):
        raise ValueError(f"bias_act: bias of shape {tuple(b.shape)} does not match x.shape[{dim}] = {x.shape[dim]}")
    if impl == "cuda" and spec.cuda_index is not None and load_extension("bias_act", x) is not None:
        return _BiasActCuda.apply(x, b, dim, spec.cuda_index, alpha, gain, clamp)
    return _bias_act_ref(x, b, dim, spec, alpha, gain, clamp)


def _bias_act_ref(x, b, dim: int, spec: Activation, alpha: float, gain: float, clamp: float) -> torch.Tensor:
    if b is not None:
        x = x + b.reshape([-1 if i == dim else 1 for i in range(x.ndim)])
    x = spec.func(x, alpha)
    if gain != 1:
        x = x * gain
    if clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


class _BiasActCuda(torch.autograd.Function):
    """Forward kernel; the backward is ``_BiasActGradCuda``, itself differentiable."""

    @staticmethod
    def forward(ctx, x, b, dim, act_index, alpha, gain, clamp):
        ext = load_extension("bias_act", x)
        x = x.contiguous()
        bias = b.contiguous().to(x.dtype) if b is not None else x.new_empty(0)
        y = ext.bias_act_forward(x, bias, dim, act_index, alpha, gain, clamp)
        needs_y = act_index != 0 or clamp >= 0  # linear without clamp: the gradient is just dy * gain
        ctx.save_for_backward(y if needs_y else x.new_empty(0))
        ctx.params = (act_index, alpha, gain, clamp)
        ctx.dim, ctx.has_bias = dim, b is not None
        return y

    @staticmethod
    def backward(ctx, dy):
        (y,) = ctx.saved_tensors
        dx = _BiasActGradCuda.apply(dy, y, *ctx.params)
        db = None
        if ctx.has_bias and ctx.needs_input_grad[1]:
            db = dx.sum([i for i in range(dx.ndim) if i != ctx.dim])
        return dx, db, None, None, None, None, None


class _BiasActGradCuda(torch.autograd.Function):
    """``dx = dy * gain * slope(y) * [|y| < clamp]``: linear in ``dy`` with a mask that is piecewise constant in
    ``y``, so its own gradient is the same op on the incoming gradient and zero with respect to ``y``."""

    @staticmethod
    def forward(ctx, dy, y, act_index, alpha, gain, clamp):
        ext = load_extension("bias_act", dy)
        ctx.save_for_backward(y)
        ctx.params = (act_index, alpha, gain, clamp)
        return ext.bias_act_grad(dy.contiguous(), y, act_index, alpha, gain, clamp)

    @staticmethod
    def backward(ctx, ddx):
        (y,) = ctx.saved_tensors
        return _BiasActGradCuda.apply(ddx, y, *ctx.params), None, None, None, None, None
