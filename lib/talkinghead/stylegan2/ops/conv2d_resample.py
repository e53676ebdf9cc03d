"""2-D convolution with FIR-filtered upsampling or downsampling by an integer factor.

The result equals ``conv2d(upsample2d(x, f), w, padding)`` for ``up > 1`` and
``downsample2d(conv2d(x, w, padding), f)`` for ``down > 1`` (all these steps are linear and shift-invariant, so they
commute), computed the cheap way round: a strided transposed convolution at the low resolution followed by the
filter, or the filter followed by a strided convolution. Built from ``upfirdn2d`` and ``torch.nn.functional`` only, so ``impl`` merely selects the
``upfirdn2d`` implementation.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from talkinghead.stylegan2.ops.upfirdn2d import _pads, filter_size, upfirdn2d

__all__ = ["conv2d_resample"]


def conv2d_resample(
    x: torch.Tensor,
    w: torch.Tensor,
    f: torch.Tensor | None = None,
    *,
    up: int = 1,
    down: int = 1,
    padding: int | Sequence[int] = 0,
    groups: int = 1,
    flip_weight: bool = True,
    impl: str = "cuda",
) -> torch.Tensor:
    """Convolve ``x`` with ``w``, upsampling or downsampling by a factor with the FIR filter ``f``.

    Args:
        x: (N, C_in, H, W).
        w: (C_out, C_in // groups, kh, kw).
        f: low-pass filter of the resampling (see ``upfirdn2d.setup_filter``); None is nearest.
        up: upsampling factor (1 or more). ``up`` and ``down`` cannot both exceed 1.
        down: downsampling factor.
        padding: padding of the convolution at the output resolution: int or (left, right, top, bottom).
        groups: grouped convolution, as in ``torch.nn.functional.conv2d``.
        flip_weight: True = correlation like ``conv2d``; False = true convolution (flipped kernel). The official
            StyleGAN2 code convolves (False) in its upsampling layers and correlates elsewhere; loading its
            weights needs the same choice.
        impl: implementation of the ``upfirdn2d`` steps, ``'cuda'`` or ``'ref'``.
    Returns:
        (N, C_out, H * up, W * up) or (N, C_out, H // down, W // down) for "same" padding (kh // 2).
    """
    if up > 1 and down > 1:
        raise ValueError("conv2d_resample: upsampling and downsampling at once is not supported")
    c_out, c_in_group, kh, kw = w.shape
    fw, fh = filter_size(f)
    left, right, top, bottom = _pads(padding)
    if up == 1 and down == 1:
        if not (left == right and top == bottom and left >= 0 and top >= 0):
            x = upfirdn2d(x, None, padding=(left, right, top, bottom), impl=impl)
            left = top = 0
        return F.conv2d(x, w if flip_weight else w.flip([2, 3]), padding=(top, left), groups=groups)

    if down > 1:
        # Low-pass first, then a strided convolution (a 1x1 kernel commutes with the filter, so downsample first).
        pads = (left + (fw - down + 1) // 2, right + (fw - down) // 2, top + (fh - down + 1) // 2, bottom + (fh - down) // 2)
        w = w if flip_weight else w.flip([2, 3])
        if kh == 1 and kw == 1:
            x = upfirdn2d(x, f, down=down, padding=pads, impl=impl)
            return F.conv2d(x, w, groups=groups)
        x = upfirdn2d(x, f, padding=pads, impl=impl)
        return F.conv2d(x, w, stride=down, groups=groups)

    # Upsampling: the transposed convolution inserts the zeros and convolves (true convolution) in one step at the
    # low resolution; the filter then smooths and the padding centres the result.
    pads = [
        left + (fw + up - 1) // 2 - (kw - 1),
        right + (fw - up) // 2 - (kw - up),
        top + (fh + up - 1) // 2 - (kh - 1),
        bottom + (fh - up) // 2 - (kh - up),
    ]
    crop_x = max(min(-pads[0], -pads[1]), 0)  # let the transposed conv crop what both sides would cut
    crop_y = max(min(-pads[2], -pads[3]), 0)
    w = w.flip([2, 3]) if flip_weight else w
    # conv_transpose2d wants (C_in, C_out // groups, kh, kw)
    w = w.reshape(groups, c_out // groups, c_in_group, kh, kw).transpose(1, 2).reshape(groups * c_in_group, c_out // groups, kh, kw)
    x = F.conv_transpose2d(x, w, stride=up, padding=(crop_y, crop_x), groups=groups)
    pads = (pads[0] + crop_x, pads[1] + crop_x, pads[2] + crop_y, pads[3] + crop_y)
    return upfirdn2d(x, f, padding=pads, gain=up * up, impl=impl)
