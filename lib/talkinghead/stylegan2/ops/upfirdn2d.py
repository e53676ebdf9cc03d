"""Upsample, FIR-filter, downsample: the resampling primitive of StyleGAN2.

``upfirdn2d`` (1) inserts ``up - 1`` zeros after every pixel, (2) pads (negative padding crops), (3) convolves
with the FIR filter ``f`` (a true convolution: the filter is flipped unless ``flip_filter``), and (4) keeps every
``down``-th pixel. StyleGAN2 upsamples and downsamples by 2 with the binomial filter [1, 3, 3, 1] (outer product,
normalised to sum 1), which removes the aliasing of nearest and strided resampling (Karras et al. 2020, appendix B;
the filter follows Zhang, "Making convolutional networks shift-invariant again", 2019).

The op is linear in ``x``, so its gradient is the same op with ``up`` and ``down`` swapped, the filter flipped and
the padding moved; the CUDA path computes it that way, which makes every order of derivative available.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from talkinghead.stylegan2.ops._build import load_extension

__all__ = ["setup_filter", "upfirdn2d", "upsample2d", "downsample2d", "filter_size"]


def setup_filter(taps: Sequence[float] | torch.Tensor, *, normalize: bool = True, separable: bool | None = None) -> torch.Tensor:
    """A float32 FIR filter from its taps: a 1-D list becomes its outer product (2-D, (n, n)) unless ``separable``
    (default: separable from 8 taps on), normalised to sum 1. ``[1, 3, 3, 1]`` gives the (4, 4) ``resample_filter``
    buffer of the official checkpoints."""
    f = torch.as_tensor(taps, dtype=torch.float32)
    if f.ndim == 0:
        f = f[None]
    if f.ndim not in (1, 2) or f.numel() == 0:
        raise ValueError(f"a FIR filter needs 1 or 2 dimensions and at least one tap, not shape {tuple(f.shape)}")
    if separable is None:
        separable = f.ndim == 1 and f.numel() >= 8
    if f.ndim == 1 and not separable:
        f = torch.outer(f, f)
    if normalize:
        f = f / f.sum()
    return f


def filter_size(f: torch.Tensor | None) -> tuple[int, int]:
    """(width, height) of a filter: 1-D filters are separable, so square; None is the 1-tap identity."""
    if f is None:
        return 1, 1
    return (f.shape[-1], f.shape[0]) if f.ndim == 2 else (f.shape[0], f.shape[0])


def _pads(padding: int | Sequence[int]) -> tuple[int, int, int, int]:
    if isinstance(padding, int):
        return padding, padding, padding, padding
    if len(padding) == 2:  # (x, y)
        return padding[0], padding[0], padding[1], padding[1]
    left, right, top, bottom = padding
    return int(left), int(right), int(top), int(bottom)


def upfirdn2d(
    x: torch.Tensor,
    f: torch.Tensor | None,
    *,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    flip_filter: bool = False,
    gain: float = 1.0,
    impl: str = "cuda",
) -> torch.Tensor:
    """Upsample by zero insertion, pad, filter, downsample.

    Args:
        x: (N, C, H, W).
        f: FIR filter, (fh, fw), or (ft,) applied along both axes (separable), or None (identity). Not trained.
        up: upsampling factor (zeros inserted after each input pixel, in both axes).
        down: downsampling factor (every ``down``-th filtered pixel kept).
        padding: int, (x, y) or (left, right, top, bottom), applied after upsampling; negative values crop.
        flip_filter: False = convolution with ``f``, True = correlation.
        gain: overall gain; with ``up=2`` pass 4 to keep the mean (the zeros dilute it by up**2).
        impl: ``'cuda'`` (kernel on GPU tensors when it builds) or ``'ref'``.
    Returns:
        (N, C, (H * up + top + bottom - fh) // down + 1, (W * up + left + right - fw) // down + 1).
    """
    if x.ndim != 4:
        raise ValueError(f"upfirdn2d expects x of shape (N, C, H, W), not {tuple(x.shape)}")
    if impl not in ("cuda", "ref"):
        raise ValueError(f"impl must be 'cuda' or 'ref', not {impl!r}")
    if f is None:
        f = torch.ones(1, 1, dtype=torch.float32, device=x.device)
    pads = _pads(padding)
    if impl == "cuda" and not f.requires_grad and load_extension("upfirdn2d", x) is not None:
        f2 = torch.outer(f, f) if f.ndim == 1 else f  # the kernel takes 2-D filters
        return _UpFirDn2dCuda.apply(x, f2.to(device=x.device, dtype=torch.float32), int(up), int(down), pads, bool(flip_filter), float(gain))
    return _upfirdn2d_ref(x, f, int(up), int(down), pads, bool(flip_filter), float(gain))


def _upfirdn2d_ref(x, f, up: int, down: int, pads: tuple[int, int, int, int], flip_filter: bool, gain: float) -> torch.Tensor:
    n, c, h, w = x.shape  # (N, C, H, W)
    left, right, top, bottom = pads
    # 1. zeros after each pixel: (N, C, H, 1, W, 1) padded to (N, C, H, up, W, up)
    if up > 1:
        x = F.pad(x.reshape(n, c, h, 1, w, 1), [0, up - 1, 0, 0, 0, up - 1]).reshape(n, c, h * up, w * up)
    # 2. pad the positive sides, then crop the negative ones
    x = F.pad(x, [max(left, 0), max(right, 0), max(top, 0), max(bottom, 0)])
    x = x[:, :, max(-top, 0) : x.shape[2] - max(-bottom, 0), max(-left, 0) : x.shape[3] - max(-right, 0)]
    # 3. filter, one channel at a time (grouped conv2d correlates, so flip for a convolution)
    f = (f * gain ** (f.ndim / 2)).to(x.dtype)  # 1-D filters are applied twice, so each gets sqrt(gain)
    if not flip_filter:
        f = f.flip(list(range(f.ndim)))
    if f.ndim == 2:
        x = F.conv2d(x, f[None, None].expand(c, 1, *f.shape), groups=c)
    else:
        x = F.conv2d(x, f[None, None, None, :].expand(c, 1, 1, f.shape[0]), groups=c)
        x = F.conv2d(x, f[None, None, :, None].expand(c, 1, f.shape[0], 1), groups=c)
    # 4. keep every down-th pixel
    return x[:, :, ::down, ::down]


class _UpFirDn2dCuda(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, f, up, down, pads, flip_filter, gain):
        ext = load_extension("upfirdn2d", x)
        left, right, top, bottom = pads
        y = ext.upfirdn2d(x.contiguous(), f.contiguous(), up, down, left, right, top, bottom, flip_filter, gain)
        ctx.save_for_backward(f)
        ctx.params = (x.shape, y.shape, up, down, pads, flip_filter, gain)
        return y

    @staticmethod
    def backward(ctx, dy):
        (f,) = ctx.saved_tensors
        x_shape, y_shape, up, down, pads, flip_filter, gain = ctx.params
        dx = _UpFirDn2dCuda.apply(dy, f, *_adjoint(x_shape, y_shape, tuple(f.shape), up, down, pads, flip_filter), gain)
        return dx, None, None, None, None, None, None


def _adjoint(x_shape, y_shape, f_shape, up: int, down: int, pads, flip_filter: bool):
    """Arguments (up, down, pads, flip_filter) of the upfirdn2d that is the adjoint (the gradient) of the one with
    these: upsample by ``down``, filter with the flipped filter, keep every ``up``-th pixel; the padding puts
    gradient pixel k on output pixel k * up and gives back exactly the input size."""
    (_, _, h, w), (_, _, oh, ow), (fh, fw) = x_shape, y_shape, f_shape
    left, right, top, bottom = pads
    adj_pads = (fw - left - 1, w * up - ow * down + left - up + 1, fh - top - 1, h * up - oh * down + top - up + 1)
    return down, up, adj_pads, not flip_filter


def upsample2d(x: torch.Tensor, f: torch.Tensor | None, *, up: int = 2, padding: int | Sequence[int] = 0, gain: float = 1.0, impl: str = "cuda") -> torch.Tensor:
    """Upsample (N, C, H, W) -> (N, C, H * up, W * up) with filter ``f``, keeping the mean (gain up**2) and centring
    the filter so that the output is aligned with the input. ``padding`` adds to both sides."""
    fw, fh = filter_size(f)
    left, right, top, bottom = _pads(padding)
    pads = (left + (fw + up - 1) // 2, right + (fw - up) // 2, top + (fh + up - 1) // 2, bottom + (fh - up) // 2)
    return upfirdn2d(x, f, up=up, padding=pads, gain=gain * up * up, impl=impl)


def downsample2d(x: torch.Tensor, f: torch.Tensor | None, *, down: int = 2, padding: int | Sequence[int] = 0, gain: float = 1.0, impl: str = "cuda") -> torch.Tensor:
    """Low-pass filter with ``f`` and downsample (N, C, H, W) -> (N, C, H // down, W // down)."""
    fw, fh = filter_size(f)
    left, right, top, bottom = _pads(padding)
    pads = (left + (fw - down + 1) // 2, right + (fw - down) // 2, top + (fh - down + 1) // 2, bottom + (fh - down) // 2)
    return upfirdn2d(x, f, down=down, padding=pads, gain=gain, impl=impl)
