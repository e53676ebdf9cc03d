"""Perceptual distance for inversion losses: LPIPS (Zhang et al., "The Unreasonable Effectiveness of Deep Features
as a Perceptual Metric", CVPR 2018, the VGG16 variant) when its weights are available, else a documented fallback
that is NOT LPIPS.

LPIPS-VGG: the image (in [-1, 1]) is shifted and scaled channel-wise (the network's input normalisation), run
through VGG16's convolutional layers, and at the five ReLUs that end a stage (``relu1_2``, ``relu2_2``, ``relu3_3``,
``relu4_3``, ``relu5_3`` = ``features.3, 8, 15, 22, 29``) the feature maps of both images are normalised to unit
length along channels, their squared difference is weighted per channel by a learnt non-negative vector
(``lin0`` … ``lin4``), averaged over the pixels and summed over the stages.

Weights: ``vgg16_lpips.safetensors``, found by ``talkinghead.hub.load_weights`` (``weights/`` first, then the Hub).
Its keys are torchvision's VGG16 names for the convolutions (``features.{0,2,5,7,10,12,14,17,19,21,24,26,28}
.weight`` (O, I, 3, 3) and ``.bias`` (O,)) and ``lin{k}.weight`` (1, C_k, 1, 1) for the five linear heads (the LPIPS
release calls them ``lin{k}.model.1.weight``: ``lpips_state_dict`` renames). Loading is strict: a missing, extra or
mis-shaped key is an error that names it.

Fallback (weights missing): ``StructuralDistance``, a multi-scale structural distance: at 3 scales (the image,
then 2× and 4× average-pooled) the mean of ``1 - SSIM`` (Gaussian window σ = 1.5, 11 taps) plus the mean absolute
difference of horizontal and vertical image gradients. It is 0 for identical images, grows with blur and
misalignment, has no weights and is differentiable, but it is not a learnt perceptual metric and its values are not
comparable with LPIPS numbers. ``load_perceptual`` warns once per process when it falls back.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.hub import WeightsError

__all__ = [
    "LPIPS_WEIGHTS",
    "VGG16_CONVS",
    "LPIPS_LAYERS",
    "VGG16Features",
    "LPIPS",
    "StructuralDistance",
    "load_perceptual",
    "lpips_state_dict",
]

LPIPS_WEIGHTS = "vgg16_lpips.safetensors"
# (index in torchvision's vgg16().features, in channels, out channels) of the 13 convolutions; a ReLU follows each
# (index + 1) and max pooling ends each stage (indices 4, 9, 16, 23, 30).
VGG16_CONVS = (
    (0, 3, 64), (2, 64, 64),
    (5, 64, 128), (7, 128, 128),
    (10, 128, 256), (12, 256, 256), (14, 256, 256),
    (17, 256, 512), (19, 512, 512), (21, 512, 512),
    (24, 512, 512), (26, 512, 512), (28, 512, 512),
)
LPIPS_LAYERS = (3, 8, 15, 22, 29)         # relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
LPIPS_CHANNELS = (64, 128, 256, 512, 512)
_POOLS = (4, 9, 16, 23)                    # the pools before the last tapped layer (the 5th, index 30, is unused)
# LPIPS's input normalisation for images in [-1, 1] (its "ScalingLayer").
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)

_warned_fallback = False


class VGG16Features(nn.Module):
    """VGG16's convolutional part up to ``relu5_3``, laid out as torchvision's ``vgg16().features`` so that the
    names ``features.N.weight`` map one to one. Returns the feature maps after the ReLUs in ``taps``."""

    def __init__(self, taps: tuple[int, ...] = LPIPS_LAYERS):
        super().__init__()
        layers: list[nn.Module] = []
        convs = {idx: (cin, cout) for idx, cin, cout in VGG16_CONVS}
        for idx in range(max(taps) + 1):
            if idx in convs:
                layers.append(nn.Conv2d(*convs[idx], kernel_size=3, padding=1))
            elif idx in _POOLS:
                layers.append(nn.MaxPool2d(2, stride=2))
            else:
                layers.append(nn.ReLU(inplace=False))
        self.features = nn.Sequential(*layers)
        self.taps = tuple(taps)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        """x (B, 3, H, W), already normalised -> [(B, C_k, H_k, W_k) for each tap]."""
        out = []
        for idx, layer in enumerate(self.features):
            x = layer(x)
            if idx in self.taps:
                out.append(x)
        return out


class LPIPS(nn.Module):
    """LPIPS-VGG distance between images in [-1, 1]: ``forward(x, y)`` -> (B,). Build it with ``load_perceptual``
    (which loads the weights strictly); a fresh instance has random VGG weights and unit heads."""

    is_lpips = True

    def __init__(self):
        super().__init__()
        self.vgg = VGG16Features(LPIPS_LAYERS)
        for k, channels in enumerate(LPIPS_CHANNELS):
            self.register_parameter(f"lin{k}", nn.Parameter(torch.ones(1, channels, 1, 1)))  # (1, C, 1, 1)
        self.register_buffer("shift", torch.tensor(_SHIFT).reshape(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(_SCALE).reshape(1, 3, 1, 1))
        self.requires_grad_(False)

    def weight_names(self) -> dict[str, tuple[int, ...]]:
        """The keys (and shapes) a weights file must hold: the VGG convolutions and the five heads."""
        names = {f"features.{idx}.{kind}": ((cout, cin, 3, 3) if kind == "weight" else (cout,))
                 for idx, cin, cout in VGG16_CONVS if idx <= max(LPIPS_LAYERS) for kind in ("weight", "bias")}
        names.update({f"lin{k}.weight": (1, c, 1, 1) for k, c in enumerate(LPIPS_CHANNELS)})
        return names

    def load_weights_strict(self, state: dict[str, torch.Tensor], source: str = "the state dict") -> None:
        """Load ``state`` (keys of ``weight_names``), failing on any missing, unexpected or mis-shaped key."""
        expected = self.weight_names()
        missing = sorted(set(expected) - set(state))
        extra = sorted(set(state) - set(expected))
        wrong = sorted(k for k in set(expected) & set(state) if tuple(state[k].shape) != expected[k])
        if missing or extra or wrong:
            detail = "; ".join(part for part in (
                f"missing {missing[:4]}{'…' if len(missing) > 4 else ''}" if missing else "",
                f"unexpected {extra[:4]}{'…' if len(extra) > 4 else ''}" if extra else "",
                "wrong shape " + ", ".join(f"{k} {tuple(state[k].shape)} (want {expected[k]})" for k in wrong[:4]) if wrong else "",
            ) if part)
            raise WeightsError(f"{source} is not an LPIPS-VGG16 state dict: {detail}. Build it with "
                               "talkinghead.inversion.perceptual.lpips_state_dict(vgg16_features, lpips_heads)")
        with torch.no_grad():
            for k, v in state.items():
                if k.startswith("lin"):
                    getattr(self, k.split(".")[0]).copy_(v)
                else:
                    self.vgg.get_parameter(k).copy_(v)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y (B, 3, H, W) in [-1, 1] (H, W ≥ 16) -> distance (B,)."""
        if x.shape != y.shape:
            raise ValueError(f"LPIPS needs images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        feats_x = self.vgg((x - self.shift) / self.scale)
        feats_y = self.vgg((y - self.shift) / self.scale)
        total = x.new_zeros(x.shape[0])
        for k, (fx, fy) in enumerate(zip(feats_x, feats_y)):
            fx = fx / (fx.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)      # unit length along channels
            fy = fy / (fy.square().sum(dim=1, keepdim=True).sqrt() + 1e-10)
            diff = (fx - fy).square()                                             # (B, C, h, w)
            total = total + (diff * getattr(self, f"lin{k}")).sum(dim=1).mean(dim=(1, 2))
        return total


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-coords.square() / (2 * sigma**2))
    return g / g.sum()                                                            # (size,)


class StructuralDistance(nn.Module):
    """The offline fallback (NOT LPIPS): mean over 3 scales of ``(1 - SSIM) + mean |∇x - ∇y|`` for images in
    [-1, 1]; ``forward(x, y)`` -> (B,). SSIM with a Gaussian window σ = 1.5 (11 taps, shrunk to fit small scales),
    K1 = 0.01, K2 = 0.03 on the [-1, 1] range (data range 2)."""

    is_lpips = False

    def __init__(self, scales: int = 3):
        super().__init__()
        self.scales = scales
        self.register_buffer("window", _gaussian_window())

    def _ssim(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) pair -> SSIM averaged over channels and pixels, (B,)."""
        channels, size = x.shape[1], min(self.window.numel(), x.shape[-1], x.shape[-2])
        size -= 1 - size % 2                                                      # odd
        g = _gaussian_window(size).to(x) if size != self.window.numel() else self.window.to(x)
        kernel_h = g.reshape(1, 1, 1, -1).repeat(channels, 1, 1, 1)
        kernel_v = g.reshape(1, 1, -1, 1).repeat(channels, 1, 1, 1)

        def blur(t: torch.Tensor) -> torch.Tensor:                                # separable, 'valid' borders
            return F.conv2d(F.conv2d(t, kernel_h, groups=channels), kernel_v, groups=channels)

        c1, c2 = (0.01 * 2) ** 2, (0.03 * 2) ** 2
        mx, my = blur(x), blur(y)
        vx, vy, cxy = blur(x * x) - mx * mx, blur(y * y) - my * my, blur(x * y) - mx * my
        ssim = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
        return ssim.mean(dim=(1, 2, 3))

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """x, y (B, 3, H, W) in [-1, 1] -> distance (B,), 0 for identical images."""
        if x.shape != y.shape:
            raise ValueError(f"perceptual distance needs images of one shape, got {tuple(x.shape)} and {tuple(y.shape)}")
        total = x.new_zeros(x.shape[0])
        for scale in range(self.scales):
            if scale:
                x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
            grad = ((x.diff(dim=-1) - y.diff(dim=-1)).abs().mean(dim=(1, 2, 3))
                    + (x.diff(dim=-2) - y.diff(dim=-2)).abs().mean(dim=(1, 2, 3)))
            total = total + (1 - self._ssim(x, y)) + grad
            if min(x.shape[-2:]) < 8:
                break
        return total / self.scales


def lpips_state_dict(vgg_features: dict[str, torch.Tensor], heads: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Our file layout from torchvision's VGG16 ``features.*`` tensors (extra layers past ``relu5_3`` and the
    classifier are dropped) and the LPIPS release's heads (``lin{k}.model.1.weight`` or ``lin{k}.weight``)."""
    last = max(LPIPS_LAYERS)
    state = {k: v for k, v in vgg_features.items() if k.startswith("features.") and int(k.split(".")[1]) <= last}
    for k, v in heads.items():
        head = k.split(".")[0]
        if head.startswith("lin") and k.endswith("weight"):
            state[f"{head}.weight"] = v
    return state


def load_perceptual(
    kind: str = "auto",
    *,
    name: str = LPIPS_WEIGHTS,
    root: str | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """The perceptual distance inversion uses: ``forward(x, y)`` on images in [-1, 1] -> (B,).

    Args:
        kind: ``"lpips"`` (weights required: raises ``WeightsError`` without them), ``"structural"`` (the fallback,
            no weights) or ``"auto"`` (LPIPS when its weights load, else the fallback with one warning per process).
        name, root: the weights file and the folder to look in first (see ``talkinghead.hub.load_weights``).
        device: where to put it (default CPU).
    """
    global _warned_fallback
    if kind not in ("auto", "lpips", "structural"):
        raise ValueError(f"perceptual kind must be 'auto', 'lpips' or 'structural', not {kind!r}")
    net: nn.Module
    if kind == "structural":
        net = StructuralDistance()
    else:
        from talkinghead.hub import load_weights

        try:
            state = load_weights(name, root=root)
            net = LPIPS()
            net.load_weights_strict(state, source=name)
        except WeightsError as err:
            if kind == "lpips" or "not an LPIPS" in str(err):
                raise
            if not _warned_fallback:
                warnings.warn(f"LPIPS weights unavailable ({err}); inversion uses StructuralDistance (multi-scale "
                              "1 - SSIM + gradient L1), which is NOT LPIPS: its numbers are not comparable with "
                              "LPIPS figures. See docs/INVERSION.md", RuntimeWarning, stacklevel=2)
                _warned_fallback = True
            net = StructuralDistance()
    return net.to(device or "cpu").eval().requires_grad_(False)
