"""StyleGAN2 generator and discriminator (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN",
CVPR 2020), in the configuration of the official PyTorch release (stylegan2-ada-pytorch): config F with the skip
generator, the resnet discriminator, weight demodulation, lazy regularisation and an equalised learning rate.

Parameter and buffer names and shapes match NVIDIA's network pickles, so a converted checkpoint
(``talkinghead.stylegan2.convert``) loads with ``strict=True``; docs/STYLEGAN2.md lists the names.

Choices the paper left open, and ours (all as in the official release):
- Equalised learning rate: weights are stored N(0, 1) (divided by the layer's learning-rate multiplier) and scaled
  by ``weight_gain = lr_multiplier / sqrt(fan_in)`` at run time; the mapping network uses ``lr_multiplier=0.01``.
- Style affines start with bias 1, so that the modulation starts near identity.
- Noise: a learnt per-layer ``noise_strength`` (starts at 0) times fresh N(0, 1) noise (``noise_mode='random'``),
  a fixed buffer ``noise_const`` (``'const'``, reproducible images), or none.
- Resampling: zero insertion / strided convolution with the [1, 3, 3, 1] binomial filter; the upsampling layers
  convolve (flipped kernel) and all others correlate, which matters only to load official weights.
- Minibatch standard deviation: groups of ``mbstd_group_size`` (4 at 1024 px, 8 in the 256 px paper config).
- Mixed precision: the ``num_fp16_res`` highest resolutions run in float16 on CUDA (never on CPU), with every conv
  output clamped to ``conv_clamp`` (256 in the official configs) against overflow.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from talkinghead.config import PresetConfig
from talkinghead.io import InputError
from talkinghead.stylegan2.ops.bias_act import ACTIVATIONS, bias_act
from talkinghead.stylegan2.ops.conv2d_resample import conv2d_resample
from talkinghead.stylegan2.ops.upfirdn2d import setup_filter, upsample2d

__all__ = [
    "Config",
    "PRESETS",
    "FullyConnectedLayer",
    "Conv2dLayer",
    "MappingNetwork",
    "modulated_conv2d",
    "SynthesisLayer",
    "ToRGBLayer",
    "SynthesisBlock",
    "SynthesisNetwork",
    "Generator",
    "DiscriminatorBlock",
    "MinibatchStdLayer",
    "DiscriminatorEpilogue",
    "Discriminator",
]

RESAMPLE_TAPS = (1, 3, 3, 1)  # binomial low-pass of every up/downsampling


def _assert_shape(x: torch.Tensor, shape: tuple, name: str) -> None:
    """Check ``x.shape`` against ``shape`` (None matches any size) with a message that names the tensor."""
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {want}")


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class Config(PresetConfig):
    """Shape of a StyleGAN2 generator / discriminator pair. Presets: ``tiny`` (tests, 32 px, CPU seconds),
    ``synth128`` (128 px, reduced channels), ``ffhq256`` and ``ffhq1024`` (the official paper256 / paper1024 shapes,
    which load NVIDIA's FFHQ checkpoints)."""

    KIND = "StyleGAN2"
    z_dim: int = 512                 # size of the input latent z
    w_dim: int = 512                 # size of the intermediate latent w
    c_dim: int = 0                   # size of the conditioning label, 0 = unconditional
    img_resolution: int = 256        # output resolution, a power of 2 in 32..1024
    img_channels: int = 3            # 3 = RGB
    channel_base: int = 16384        # channels at resolution r: min(channel_base // r, channel_max)
    channel_max: int = 512
    mapping_layers: int = 8          # fully-connected layers of the mapping network
    mapping_lr_multiplier: float = 0.01  # equalised-lr multiplier of the mapping network (paper: 100x lower lr)
    w_avg_beta: float = 0.995        # decay of the running mean of w used by the truncation trick
    num_fp16_res: int = 0            # the highest resolutions that run in float16 on CUDA (official configs: 4)
    conv_clamp: float | None = None  # clamp conv outputs to +-conv_clamp (official configs: 256)
    mbstd_group_size: int = 4        # minibatch-stddev group (official: 4 at 1024 px, 8 for paper256)
    mbstd_num_channels: int = 1      # feature maps added by minibatch stddev
    d_mapping_layers: int = 8        # layers of the discriminator's label mapping (only when c_dim > 0)

    def __post_init__(self) -> None:
        r = self.img_resolution
        if r < 32 or r > 1024 or r & (r - 1):
            raise ValueError(f"img_resolution must be a power of 2 between 32 and 1024, not {r}")
        if min(self.z_dim, self.w_dim, self.img_channels, self.channel_max, self.mapping_layers) < 1 or self.c_dim < 0:
            raise ValueError(f"z_dim, w_dim, img_channels, channel_max and mapping_layers must be positive: {self}")
        if self.channel_base // r < 1:
            raise ValueError(f"channel_base {self.channel_base} leaves no channels at {r} px: use at least {r}")

    @property
    def resolutions(self) -> list[int]:
        """Block resolutions of the generator: 4, 8, ..., img_resolution."""
        return [2**i for i in range(2, int(math.log2(self.img_resolution)) + 1)]

    def channels(self, res: int) -> int:
        """Feature maps at resolution ``res``."""
        return min(self.channel_base // res, self.channel_max)

    @property
    def num_ws(self) -> int:
        """Number of w vectors the synthesis network takes: 2 per resolution minus 2 (18 at 1024 px)."""
        return 2 * len(self.resolutions)



PRESETS = {
    "tiny": Config(z_dim=32, w_dim=32, img_resolution=32, channel_base=512, channel_max=32, mapping_layers=2, mbstd_group_size=2),
    # the shipped SynthGRID face generator: 128 px with channels cut to 128 at 4-16 px, 64 / 32 / 16 at 32 / 64 / 128 px
    # (about 1 s per batch-16 step on a 2-core CPU; SynthGRID's 18 rendered identities need no more)
    "synth128": Config(z_dim=256, w_dim=256, img_resolution=128, channel_base=2048, channel_max=128, mapping_layers=4),
    # stylegan2-ada-pytorch --cfg=paper256 and --cfg=paper1024 (fmaps 0.5 and 1; mixed precision in the 4 top blocks)
    "ffhq256": Config(img_resolution=256, channel_base=16384, num_fp16_res=4, conv_clamp=256, mbstd_group_size=8),
    "ffhq1024": Config(img_resolution=1024, channel_base=32768, num_fp16_res=4, conv_clamp=256, mbstd_group_size=4),
}
Config.PRESETS = PRESETS


# --------------------------------------------------------------------------- layers


def normalize_2nd_moment(x: torch.Tensor, dim: int = 1, eps: float = 1e-8) -> torch.Tensor:
    """Scale ``x`` to unit mean square along ``dim`` (the pixel norm of the latent input)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


class FullyConnectedLayer(nn.Module):
    """Dense layer with equalised learning rate and a fused bias + activation."""

    def __init__(
        self,
        in_features: int,            # input size
        out_features: int,           # output size
        *,
        bias: bool = True,           # learn a bias
        activation: str = "linear",  # name in ops.ACTIVATIONS
        lr_multiplier: float = 1.0,  # learning-rate multiplier (equalised lr)
        bias_init: float = 0.0,      # initial bias value
    ):
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)  # (O, I)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None  # (O,)
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, I) -> (B, O)."""
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias.to(x.dtype) * self.bias_gain if self.bias is not None else None
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, act=self.activation)


class Conv2dLayer(nn.Module):
    """Convolution with equalised learning rate, optional filtered up/downsampling, fused bias + activation."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        *,
        bias: bool = True,
        activation: str = "linear",
        up: int = 1,                           # upsampling factor
        down: int = 1,                         # downsampling factor
        conv_clamp: float | None = None,       # clamp the output to +-conv_clamp
    ):
        super().__init__()
        self.activation = activation
        self.up, self.down = up, down
        self.conv_clamp = conv_clamp
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_TAPS))  # (4, 4)
        self.padding = kernel_size // 2
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)
        self.act_gain = ACTIVATIONS[activation].gain
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))  # (O, I, k, k)
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None  # (O,)

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        """(B, I, H, W) -> (B, O, H * up // down, W * up // down); ``gain`` scales the output (and the clamp)."""
        w = (self.weight * self.weight_gain).to(x.dtype)
        b = self.bias.to(x.dtype) if self.bias is not None else None
        x = conv2d_resample(x, w, self.resample_filter, up=self.up, down=self.down, padding=self.padding, flip_weight=self.up == 1)
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, b, act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class MappingNetwork(nn.Module):
    """z (and label c) -> w through an MLP; tracks the running mean ``w_avg`` for the truncation trick."""

    def __init__(
        self,
        *,
        z_dim: int,                          # input latent size (0: labels only, the discriminator's mapping)
        c_dim: int,                          # label size, 0 = none
        w_dim: int,                          # output size
        num_ws: int | None,                  # copies of w to output, None = return (B, w_dim)
        num_layers: int = 8,
        lr_multiplier: float = 0.01,
        w_avg_beta: float | None = 0.995,    # None: no running mean (and no w_avg buffer)
    ):
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.num_ws, self.num_layers, self.w_avg_beta = num_ws, num_layers, w_avg_beta
        embed_features = w_dim if c_dim > 0 else 0
        features = [z_dim + embed_features] + [w_dim] * num_layers
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed_features)
        for idx in range(num_layers):
            layer = FullyConnectedLayer(features[idx], features[idx + 1], activation="lrelu", lr_multiplier=lr_multiplier)
            setattr(self, f"fc{idx}", layer)
        if num_ws is not None and w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros(w_dim))  # (w_dim,)

    def forward(
        self,
        z: torch.Tensor | None,
        c: torch.Tensor | None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        update_w_avg: bool = True,
    ) -> torch.Tensor:
        """z (B, z_dim), c (B, c_dim) -> ws (B, num_ws, w_dim), or (B, w_dim) when num_ws is None.

        In training mode (and ``update_w_avg``) the batch mean of w moves ``w_avg`` by ``1 - w_avg_beta``.
        ``truncation_psi < 1`` pulls w towards ``w_avg`` (the truncation trick), for the first ``truncation_cutoff``
        ws only when given."""
        x = None
        if self.z_dim > 0:
            _assert_shape(z, (None, self.z_dim), "z")
            x = normalize_2nd_moment(z.to(torch.float32))  # (B, z_dim)
        if self.c_dim > 0:
            _assert_shape(c, (None, self.c_dim), "c")
            y = normalize_2nd_moment(self.embed(c.to(torch.float32)))  # (B, w_dim)
            x = torch.cat([x, y], dim=1) if x is not None else y
        for idx in range(self.num_layers):
            x = getattr(self, f"fc{idx}")(x)  # (B, w_dim)
        if self.w_avg_beta is not None and self.training and update_w_avg:
            self.w_avg.copy_(x.detach().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))
        if self.num_ws is not None:
            x = x.unsqueeze(1).repeat(1, self.num_ws, 1)  # (B, num_ws, w_dim)
        if truncation_psi != 1:
            if self.w_avg_beta is None:
                raise ValueError("truncation needs the running mean w_avg: build the mapping network with w_avg_beta")
            if self.num_ws is None or truncation_cutoff is None:
                x = self.w_avg.lerp(x, truncation_psi)
            else:
                x = torch.cat([self.w_avg.lerp(x[:, :truncation_cutoff], truncation_psi), x[:, truncation_cutoff:]], dim=1)
        return x


def modulated_conv2d(
    x: torch.Tensor,
    weight: torch.Tensor,
    styles: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    up: int = 1,
    padding: int = 0,
    resample_filter: torch.Tensor | None = None,
    demodulate: bool = True,
    flip_weight: bool = True,
    fused_modconv: bool = True,
) -> torch.Tensor:
    """Modulated convolution (paper section 2.2, eqs. 1-3): scale the input channels of ``weight`` by each sample's
    style, then (``demodulate``) rescale each output channel to unit expected norm.

    Args:
        x: (B, I, H, W). weight: (O, I, k, k), already scaled. styles: (B, I).
        noise: added after the convolution and demodulation, broadcastable to (B, O, H * up, W * up).
        up, padding, resample_filter, flip_weight: as in ``ops.conv2d_resample``.
        fused_modconv: True = one grouped convolution with per-sample weights (fast for inference);
            False = scale activations before and after a shared convolution (fast for training). Same result.
    Returns:
        (B, O, H * up, W * up).
    """
    batch_size = x.shape[0]
    out_channels, in_channels, kh, kw = weight.shape
    _assert_shape(styles, (batch_size, in_channels), "styles")
    if x.dtype == torch.float16 and demodulate:
        # Pre-normalise so that the fp16 products cannot overflow; demodulation removes the scale again.
        weight = weight * (1 / math.sqrt(in_channels * kh * kw) / weight.norm(float("inf"), dim=[1, 2, 3], keepdim=True))
        styles = styles / styles.norm(float("inf"), dim=1, keepdim=True)

    w = None
    dcoefs = None
    if demodulate or fused_modconv:
        w = weight.unsqueeze(0) * styles.reshape(batch_size, 1, -1, 1, 1)  # (B, O, I, k, k)
    if demodulate:
        dcoefs = (w.square().sum(dim=[2, 3, 4]) + 1e-8).rsqrt()  # (B, O)  eq. 3
    if not fused_modconv:
        x = x * styles.to(x.dtype).reshape(batch_size, -1, 1, 1)  # (B, I, H, W)
        x = conv2d_resample(x, weight.to(x.dtype), resample_filter, up=up, padding=padding, flip_weight=flip_weight)
        if demodulate:
            x = x * dcoefs.to(x.dtype).reshape(batch_size, -1, 1, 1)  # (B, O, H', W')
        if noise is not None:
            x = x + noise.to(x.dtype)
        return x

    if demodulate:
        w = w * dcoefs.reshape(batch_size, -1, 1, 1, 1)  # (B, O, I, k, k)
    x = x.reshape(1, -1, *x.shape[2:])  # (1, B*I, H, W): one group per sample
    w = w.reshape(-1, in_channels, kh, kw)  # (B*O, I, k, k)
    x = conv2d_resample(x, w.to(x.dtype), resample_filter, up=up, padding=padding, groups=batch_size, flip_weight=flip_weight)
    x = x.reshape(batch_size, -1, *x.shape[2:])  # (B, O, H', W')
    if noise is not None:
        x = x + noise.to(x.dtype)
    return x


# --------------------------------------------------------------------------- generator


class SynthesisLayer(nn.Module):
    """Modulated 3x3 convolution (optionally upsampling by 2), noise, bias and leaky ReLU."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        *,
        w_dim: int,                        # size of w
        resolution: int,                   # output resolution
        kernel_size: int = 3,
        up: int = 1,                       # 2 in the first layer of each block
        use_noise: bool = True,
        activation: str = "lrelu",
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.resolution, self.up, self.use_noise = resolution, up, use_noise
        self.activation, self.conv_clamp = activation, conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)  # w -> styles
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_TAPS))  # (4, 4)
        self.padding = kernel_size // 2
        self.act_gain = ACTIVATIONS[activation].gain
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))  # (O, I, k, k)
        if use_noise:
            self.register_buffer("noise_const", torch.randn(resolution, resolution))  # (R, R)
            self.noise_strength = nn.Parameter(torch.zeros([]))  # scalar, starts at 0
        self.bias = nn.Parameter(torch.zeros(out_channels))  # (O,)

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, noise_mode: str = "random", fused_modconv: bool = True, gain: float = 1.0) -> torch.Tensor:
        """x (B, I, R / up, R / up), w (B, w_dim) -> (B, O, R, R)."""
        if noise_mode not in ("random", "const", "none"):
            raise ValueError(f"noise_mode must be 'random', 'const' or 'none', not {noise_mode!r}")
        _assert_shape(x, (None, self.weight.shape[1], self.resolution // self.up, self.resolution // self.up), "x")
        styles = self.affine(w)  # (B, I)
        noise = None
        if self.use_noise and noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device) * self.noise_strength
        elif self.use_noise and noise_mode == "const":
            noise = self.noise_const * self.noise_strength  # (R, R), broadcast over batch and channels
        x = modulated_conv2d(
            x, self.weight, styles, noise=noise, up=self.up, padding=self.padding,
            resample_filter=self.resample_filter, flip_weight=self.up == 1, fused_modconv=fused_modconv,
        )
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        return bias_act(x, self.bias.to(x.dtype), act=self.activation, gain=self.act_gain * gain, clamp=clamp)


class ToRGBLayer(nn.Module):
    """Modulated 1x1 convolution to image channels, without demodulation."""

    def __init__(self, in_channels: int, out_channels: int, *, w_dim: int, kernel_size: int = 1, conv_clamp: float | None = None):
        super().__init__()
        self.conv_clamp = conv_clamp
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))  # (3, I, 1, 1)
        self.bias = nn.Parameter(torch.zeros(out_channels))  # (3,)
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size**2)

    def forward(self, x: torch.Tensor, w: torch.Tensor, *, fused_modconv: bool = True) -> torch.Tensor:
        """x (B, I, R, R), w (B, w_dim) -> (B, img_channels, R, R)."""
        styles = self.affine(w) * self.weight_gain  # equalised lr folded into the styles
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused_modconv=fused_modconv)
        return bias_act(x, self.bias.to(x.dtype), clamp=self.conv_clamp)


class SynthesisBlock(nn.Module):
    """One resolution of the skip generator: (upsampling conv0,) conv1, and a ToRGB output added to the upsampled
    image of the previous resolutions (paper figure 7b)."""

    def __init__(
        self,
        in_channels: int,                  # 0 for the first block, which starts from a learnt constant
        out_channels: int,
        *,
        w_dim: int,
        resolution: int,
        img_channels: int,
        use_fp16: bool = False,            # run in float16 on CUDA
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_TAPS))  # (4, 4)
        self.num_conv = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))  # (C, 4, 4)
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim=w_dim, resolution=resolution, up=2, conv_clamp=conv_clamp)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim=w_dim, resolution=resolution, conv_clamp=conv_clamp)
        self.num_conv += 1
        self.torgb = ToRGBLayer(out_channels, img_channels, w_dim=w_dim, conv_clamp=conv_clamp)
        self.num_torgb = 1

    def forward(
        self,
        x: torch.Tensor | None,
        img: torch.Tensor | None,
        ws: torch.Tensor,
        *,
        noise_mode: str = "random",
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """x (B, I, R/2, R/2) or None, img (B, 3, R/2, R/2) or None, ws (B, num_conv + num_torgb, w_dim)
        -> x (B, O, R, R), img (B, 3, R, R). ``fused_modconv`` None: fused in eval mode, unfused in training."""
        _assert_shape(ws, (None, self.num_conv + self.num_torgb, None), "ws")
        w_iter = iter(ws.unbind(dim=1))
        dtype = torch.float16 if self.use_fp16 and not force_fp32 and ws.device.type == "cuda" else torch.float32
        if fused_modconv is None:
            fused_modconv = not self.training and (dtype == torch.float32 or ws.shape[0] == 1)

        if self.in_channels == 0:
            x = self.const.to(dtype).unsqueeze(0).repeat(ws.shape[0], 1, 1, 1)  # (B, C, 4, 4)
        else:
            x = self.conv0(x.to(dtype), next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)  # (B, O, R, R)
        x = self.conv1(x, next(w_iter), noise_mode=noise_mode, fused_modconv=fused_modconv)  # (B, O, R, R)

        if img is not None:
            img = upsample2d(img, self.resample_filter)  # (B, 3, R, R)
        y = self.torgb(x, next(w_iter), fused_modconv=fused_modconv).to(torch.float32)  # (B, 3, R, R)
        img = img + y if img is not None else y
        return x, img


class SynthesisNetwork(nn.Module):
    """ws -> image through blocks ``b4``, ``b8``, ..., ``b{img_resolution}``."""

    def __init__(
        self,
        *,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 32768,
        channel_max: int = 512,
        num_fp16_res: int = 0,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        self.block_resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        channels = {res: min(channel_base // res, channel_max) for res in self.block_resolutions}
        fp16_resolution = max(2 ** (int(math.log2(img_resolution)) + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(
                channels[res // 2] if res > 4 else 0, channels[res], w_dim=w_dim, resolution=res,
                img_channels=img_channels, use_fp16=res >= fp16_resolution, conv_clamp=conv_clamp,
            )
            self.num_ws += block.num_conv
            setattr(self, f"b{res}", block)
        self.num_ws += block.num_torgb  # the last ToRGB has its own w; the others share the next block's first

    def forward(self, ws: torch.Tensor, *, noise_mode: str = "random", fused_modconv: bool | None = None, force_fp32: bool = False) -> torch.Tensor:
        """ws (B, num_ws, w_dim) -> img (B, img_channels, R, R), float32, roughly in [-1, 1]."""
        _assert_shape(ws, (None, self.num_ws, self.w_dim), "ws")
        x = img = None
        w_idx = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            block_ws = ws.narrow(1, w_idx, block.num_conv + block.num_torgb)  # (B, n, w_dim)
            x, img = block(x, img, block_ws, noise_mode=noise_mode, fused_modconv=fused_modconv, force_fp32=force_fp32)
            w_idx += block.num_conv
        return img


def _load_network(cls, path: str | Path, network: str) -> nn.Module:
    """Build ``cls`` from the config in a converted file's metadata and load the ``network`` tensors strictly."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path} does not exist: convert an official pickle first (python -m talkinghead convert-stylegan2 in.pkl {path.name})")
    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
        if "config" not in meta:
            raise InputError(f"{path} has no StyleGAN2 config in its metadata: write it with talkinghead.stylegan2.convert")
        prefix = network + "."
        state = {k[len(prefix):]: f.get_tensor(k) for k in f.keys() if k.startswith(prefix)}
        present = sorted({k.split(".", 1)[0] for k in f.keys()})
    if not state:
        raise InputError(f"{path} has no {network!r} network (it holds {', '.join(present)}): pass one of those")
    net = cls(Config.from_json(meta["config"]))
    net.load_state_dict(state, strict=True)
    return net


class Generator(nn.Module):
    """z, c -> image: mapping network then synthesis network."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.z_dim, self.c_dim, self.w_dim = cfg.z_dim, cfg.c_dim, cfg.w_dim
        self.img_resolution, self.img_channels = cfg.img_resolution, cfg.img_channels
        self.synthesis = SynthesisNetwork(
            w_dim=cfg.w_dim, img_resolution=cfg.img_resolution, img_channels=cfg.img_channels,
            channel_base=cfg.channel_base, channel_max=cfg.channel_max, num_fp16_res=cfg.num_fp16_res, conv_clamp=cfg.conv_clamp,
        )
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(
            z_dim=cfg.z_dim, c_dim=cfg.c_dim, w_dim=cfg.w_dim, num_ws=self.num_ws, num_layers=cfg.mapping_layers,
            lr_multiplier=cfg.mapping_lr_multiplier, w_avg_beta=cfg.w_avg_beta,
        )

    def forward(
        self,
        z: torch.Tensor,
        c: torch.Tensor | None = None,
        *,
        truncation_psi: float = 1.0,
        truncation_cutoff: int | None = None,
        noise_mode: str = "random",
        fused_modconv: bool | None = None,
        force_fp32: bool = False,
    ) -> torch.Tensor:
        """z (B, z_dim), c (B, c_dim) or None -> img (B, img_channels, R, R), roughly in [-1, 1].

        ``noise_mode``: ``'random'`` (training), ``'const'`` (the same image for the same z) or ``'none'``."""
        ws = self.mapping(z, self._labels(c, z), truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)  # (B, num_ws, w_dim)
        return self.synthesis(ws, noise_mode=noise_mode, fused_modconv=fused_modconv, force_fp32=force_fp32)

    def _labels(self, c: torch.Tensor | None, like: torch.Tensor) -> torch.Tensor:
        if c is None:
            if self.c_dim > 0:
                raise ValueError(f"this generator is conditional: pass labels c of shape (B, {self.c_dim})")
            return like.new_zeros(like.shape[0], 0)
        return c

    @classmethod
    def from_safetensors(cls, path: str | Path, *, network: str = "G_ema") -> "Generator":
        """Load a file written by ``talkinghead.stylegan2.convert`` (config from its metadata, strict load)."""
        return _load_network(cls, path, network)


# --------------------------------------------------------------------------- discriminator


class DiscriminatorBlock(nn.Module):
    """One resolution of the resnet discriminator (paper figure 7c): two 3x3 convolutions, the second downsampling,
    plus a 1x1 downsampling skip; both branches scaled by sqrt(1/2)."""

    def __init__(
        self,
        in_channels: int,                  # 0 for the first block, which reads the image through fromrgb
        tmp_channels: int,
        out_channels: int,
        *,
        resolution: int,
        img_channels: int,
        use_fp16: bool = False,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels, self.resolution, self.use_fp16 = in_channels, resolution, use_fp16
        self.register_buffer("resample_filter", setup_filter(RESAMPLE_TAPS))  # (4, 4), kept for the official names
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor | None, *, force_fp32: bool = False) -> torch.Tensor:
        """x (B, C, R, R) (or img (B, 3, R, R) for the first block) -> (B, O, R/2, R/2)."""
        device = (x if x is not None else img).device
        dtype = torch.float16 if self.use_fp16 and not force_fp32 and device.type == "cuda" else torch.float32
        if self.in_channels == 0:
            x = self.fromrgb(img.to(dtype))  # (B, C, R, R)
        else:
            x = x.to(dtype)
        y = self.skip(x, gain=math.sqrt(0.5))  # (B, O, R/2, R/2)
        x = self.conv0(x)
        x = self.conv1(x, gain=math.sqrt(0.5))
        return y + x


class MinibatchStdLayer(nn.Module):
    """Append the standard deviation across groups of samples as extra feature maps (Karras et al. 2018, sec. 3),
    which lets the discriminator see a lack of variety."""

    def __init__(self, group_size: int | None, num_channels: int = 1):
        super().__init__()
        self.group_size, self.num_channels = group_size, num_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C + num_channels, H, W). B must be a multiple of the group size (or smaller)."""
        n, c, h, w = x.shape
        g = min(self.group_size, n) if self.group_size is not None else n
        if n % g:
            raise ValueError(f"minibatch stddev: batch {n} is not a multiple of the group size {g}: use a batch divisible by {g}")
        f = self.num_channels
        y = x.reshape(g, -1, f, c // f, h, w)  # (G, n, F, c, H, W): sample i of group j is x[i * n + j]
        y = (y - y.mean(dim=0)).square().mean(dim=0)  # (n, F, c, H, W) variance over the group
        y = (y + 1e-8).sqrt().mean(dim=[2, 3, 4])  # (n, F) stddev averaged over channels and pixels
        y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)  # (B, F, H, W)
        return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    """The 4x4 end of the discriminator: minibatch stddev, 3x3 conv, dense, output logit (or a projection on the
    label embedding when conditional)."""

    def __init__(
        self,
        in_channels: int,
        *,
        cmap_dim: int,                     # label embedding size, 0 = unconditional
        resolution: int = 4,
        mbstd_group_size: int = 4,
        mbstd_num_channels: int = 1,
        conv_clamp: float | None = None,
    ):
        super().__init__()
        self.in_channels, self.cmap_dim, self.resolution = in_channels, cmap_dim, resolution
        self.mbstd = MinibatchStdLayer(mbstd_group_size, mbstd_num_channels) if mbstd_num_channels > 0 else None
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution**2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        """x (B, C, 4, 4), cmap (B, cmap_dim) or None -> logits (B, 1)."""
        _assert_shape(x, (None, self.in_channels, self.resolution, self.resolution), "x")
        x = x.to(torch.float32)
        if self.mbstd is not None:
            x = self.mbstd(x)  # (B, C + 1, 4, 4)
        x = self.conv(x)  # (B, C, 4, 4)
        x = self.fc(x.flatten(1))  # (B, C)
        x = self.out(x)  # (B, 1) or (B, cmap_dim)
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))  # (B, 1)
        return x


class Discriminator(nn.Module):
    """image (and label) -> realness logit, through blocks ``b{R}`` ... ``b8`` and the epilogue ``b4``."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.c_dim, self.img_resolution, self.img_channels = cfg.c_dim, cfg.img_resolution, cfg.img_channels
        log2 = int(math.log2(cfg.img_resolution))
        self.block_resolutions = [2**i for i in range(log2, 2, -1)]
        fp16_resolution = max(2 ** (log2 + 1 - cfg.num_fp16_res), 8)
        for res in self.block_resolutions:
            block = DiscriminatorBlock(
                cfg.channels(res) if res < cfg.img_resolution else 0, cfg.channels(res), cfg.channels(res // 2),
                resolution=res, img_channels=cfg.img_channels, use_fp16=res >= fp16_resolution, conv_clamp=cfg.conv_clamp,
            )
            setattr(self, f"b{res}", block)
        cmap_dim = cfg.channels(4) if cfg.c_dim > 0 else 0
        if cfg.c_dim > 0:
            self.mapping = MappingNetwork(
                z_dim=0, c_dim=cfg.c_dim, w_dim=cmap_dim, num_ws=None, num_layers=cfg.d_mapping_layers,
                lr_multiplier=cfg.mapping_lr_multiplier, w_avg_beta=None,
            )
        self.b4 = DiscriminatorEpilogue(
            cfg.channels(4), cmap_dim=cmap_dim, mbstd_group_size=cfg.mbstd_group_size,
            mbstd_num_channels=cfg.mbstd_num_channels, conv_clamp=cfg.conv_clamp,
        )

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None, *, force_fp32: bool = False) -> torch.Tensor:
        """img (B, img_channels, R, R), c (B, c_dim) or None -> logits (B, 1)."""
        _assert_shape(img, (None, self.img_channels, self.img_resolution, self.img_resolution), "img")
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img, force_fp32=force_fp32)  # (B, C, res/2, res/2)
        cmap = None
        if self.c_dim > 0:
            if c is None:
                raise ValueError(f"this discriminator is conditional: pass labels c of shape (B, {self.c_dim})")
            cmap = self.mapping(None, c)  # (B, cmap_dim)
        return self.b4(x, cmap)

    @classmethod
    def from_safetensors(cls, path: str | Path, *, network: str = "D") -> "Discriminator":
        """Load the discriminator of a file converted with ``--all`` (config from its metadata, strict load)."""
        return _load_network(cls, path, network)
