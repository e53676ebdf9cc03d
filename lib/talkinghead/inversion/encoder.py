"""An encoder from images to a StyleGAN2's W+ latents, in the manner of pSp (Richardson et al., "Encoding in Style: a
StyleGAN Encoder for Image-to-Image Translation", CVPR 2021) and e4e (Tov et al., "Designing an Encoder for
StyleGAN Image Manipulation", SIGGRAPH 2021).

Architecture (pSp's shape, e4e's output): a convolutional backbone makes a feature pyramid; the three smallest maps
are merged top-down (the coarser map upsampled and added through a 1×1 lateral convolution, as in pSp); one small
head per w (strided convolutions to 1×1, then a linear layer, pSp's "map2style") reads the coarse map for the first
``coarse_ws`` latents, the middle map for the next ``medium_ws`` and the finest map for the rest. As in e4e the first
head gives a base offset and every other head a delta from it:

    ws[:, 0] = w_avg + offset,     ws[:, i] = w_avg + offset + delta_i   (i ≥ 1)

so the encoder starts at the mean w (the final linear layers start at zero) and the delta regulariser
``Σ_i ||delta_i||₂`` keeps the layers close to one w, the region of W where edits behave (e4e section 3).

Training (``EncoderTask`` through ``talkinghead.training.fit``, the generator frozen):
``l2_weight · MSE(G(E(x)), x) + perceptual_weight · perceptual(G(E(x)), x) + delta_weight · Σ_i ||delta_i||₂``,
with pSp/e4e's weights 1, 0.8 and 2e-4 and Adam at 1e-4 (they use Ranger at the same rate).

Choices the papers left open or that we leave out:
- Backbone: plain 3×3 convolutions with leaky ReLU (two per stage, the first strided), not pSp's ResNet-IR-SE50,
  which is pretrained on face recognition; sized by ``Config.channels``.
- No identity loss (it needs ArcFace weights), no e4e latent discriminator, no progressive delta schedule: all
  deltas train from the first step.
- ``noise_mode='const'``: the generator's fixed noise maps, so a frame's reconstruction is deterministic.
- Frames are mirrored at random (``FrameDataset(flip=True)``).

    python -m talkinghead train encoder --generator stylegan2_synthgrid.safetensors --config synth128 \\
        --data data/prepared128 --out runs/encoder --steps 20000 --ship encoder_synthgrid.safetensors
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config import PresetConfig
from talkinghead.inversion.common import assert_shape
from talkinghead.io import InputError

__all__ = ["Config", "PRESETS", "Encoder", "EncoderTask", "load_encoder", "add_train_encoder_parser"]


@dataclass(frozen=True)
class Config(PresetConfig):
    """The encoder's shape and training weights. Presets ``tiny`` (for StyleGAN2 ``tiny``, 32 px) and ``synth128``
    (for StyleGAN2 ``synth128``)."""

    KIND = "encoder"
    img_resolution: int = 128                        # input size; the generator's output size
    w_dim: int = 256                                 # the generator's w size
    num_ws: int = 12                                 # the generator's number of ws (2·log2(R) - 2)
    channels: tuple[int, ...] = (32, 64, 128, 128)   # backbone stages, each halves the resolution (≥ 3 stages)
    coarse_ws: int = 3                               # ws read from the coarsest map (pSp: 3 of 18)
    medium_ws: int = 4                               # ws read from the middle map (pSp: 4); the rest read the finest
    generator: str = ""                              # weights of the frozen StyleGAN2 (path or weights/ name), training
    lr: float = 1e-4                                 # Adam learning rate
    l2_weight: float = 1.0                           # pixel MSE weight (pSp, e4e: 1)
    perceptual_weight: float = 0.8                   # perceptual distance weight (pSp, e4e: 0.8 for LPIPS)
    delta_weight: float = 2e-4                       # e4e's delta regulariser weight
    perceptual: str = "auto"                         # "auto", "lpips" or "structural" (inversion.perceptual)

    def __post_init__(self) -> None:
        r = self.img_resolution
        if r < 16 or r & (r - 1):
            raise ValueError(f"img_resolution must be a power of 2 ≥ 16, not {r}")
        if len(self.channels) < 3 or r >> len(self.channels) < 1:
            raise ValueError(f"channels {self.channels}: need at least 3 stages and at most log2({r}) of them")
        if self.num_ws < 2 or self.coarse_ws < 1 or self.medium_ws < 0 or self.coarse_ws + self.medium_ws > self.num_ws:
            raise ValueError(f"need num_ws ≥ 2 and 1 ≤ coarse_ws, coarse_ws + medium_ws ≤ num_ws: {self}")



PRESETS = {
    "tiny": Config(img_resolution=32, w_dim=32, num_ws=8, channels=(16, 32, 32)),
    "synth128": Config(img_resolution=128, w_dim=256, num_ws=12, channels=(32, 64, 128, 128)),
}
Config.PRESETS = PRESETS


class MapToStyle(nn.Module):
    """pSp's map2style: strided 3×3 convolutions from (C, S, S) down to (C, 1, 1), then a linear layer to w_dim.
    The linear layer starts at zero, so a new encoder outputs the mean w."""

    def __init__(self, channels: int, w_dim: int, size: int):
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(int(math.log2(size))):
            layers += [nn.Conv2d(channels, channels, 3, stride=2, padding=1), nn.LeakyReLU(0.2)]
        self.convs = nn.Sequential(*layers)
        self.linear = nn.Linear(channels, w_dim)
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) -> (B, w_dim)."""
        return self.linear(self.convs(x).flatten(1))


class Encoder(nn.Module):
    """image (B, 3, R, R) in [-1, 1] -> ws (B, num_ws, w_dim) = w_avg + offsets. ``w_avg`` is a buffer set from the
    generator when training starts, so a saved encoder needs no generator to produce ws."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        ch = cfg.channels
        self.stem = nn.Sequential(nn.Conv2d(3, ch[0], 3, padding=1), nn.LeakyReLU(0.2))
        stages = []
        for c_in, c_out in zip((ch[0],) + ch[:-1], ch):
            stages.append(nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride=2, padding=1), nn.LeakyReLU(0.2),
                                        nn.Conv2d(c_out, c_out, 3, padding=1), nn.LeakyReLU(0.2)))
        self.stages = nn.ModuleList(stages)
        top = ch[-1]
        # Laterals bring the finer two of the three tapped maps to the top width, for the top-down merge.
        self.lateral_medium = nn.Conv2d(ch[-2], top, 1)
        self.lateral_fine = nn.Conv2d(ch[-3], top, 1)
        sizes = [cfg.img_resolution >> (len(ch) - k) for k in (0, 1, 2)]  # coarse, medium, fine map sizes
        self.level_of = [0 if i < cfg.coarse_ws else 1 if i < cfg.coarse_ws + cfg.medium_ws else 2 for i in range(cfg.num_ws)]
        self.heads = nn.ModuleList(MapToStyle(top, cfg.w_dim, sizes[level]) for level in self.level_of)
        self.register_buffer("w_avg", torch.zeros(cfg.w_dim))  # (w_dim,)

    def forward(self, img: torch.Tensor, *, return_deltas: bool = False):
        """img (B, 3, R, R) -> ws (B, num_ws, w_dim); with ``return_deltas`` also the deltas (B, num_ws - 1, w_dim)."""
        cfg = self.cfg
        assert_shape(img, (None, 3, cfg.img_resolution, cfg.img_resolution), "img")
        x = self.stem(img)                                                      # (B, c0, R, R)
        maps = []
        for stage in self.stages:
            x = stage(x)
            maps.append(x)
        coarse = maps[-1]                                                       # (B, top, R/2^n, ·)
        medium = self.lateral_medium(maps[-2]) + F.interpolate(coarse, scale_factor=2, mode="bilinear", align_corners=False)
        fine = self.lateral_fine(maps[-3]) + F.interpolate(medium, scale_factor=2, mode="bilinear", align_corners=False)
        levels = (coarse, medium, fine)
        codes = torch.stack([head(levels[lvl]) for head, lvl in zip(self.heads, self.level_of)], dim=1)  # (B, num_ws, w_dim)
        offset, deltas = codes[:, :1], codes[:, 1:]                             # (B, 1, w_dim), (B, num_ws - 1, w_dim)
        ws = self.w_avg + torch.cat([offset, offset + deltas], dim=1)           # (B, num_ws, w_dim)
        return (ws, deltas) if return_deltas else ws


def delta_regularization(deltas: torch.Tensor) -> torch.Tensor:
    """e4e's regulariser: Σ_i ||delta_i||₂ per image, averaged over the batch. deltas (B, n, w_dim) -> scalar."""
    return deltas.norm(dim=-1).sum(dim=1).mean()


class EncoderTask:
    """Encoder training for ``talkinghead.training.fit``: nets {"E", "G"} (G frozen, constant noise), one phase "E".

    Args:
        cfg: the encoder's ``Config``; its ``generator`` names the StyleGAN2 weights unless ``G`` is given.
        G: an already loaded generator (tests, notebooks); it is frozen.
    """

    generator = "E"

    def __init__(self, cfg: Config, *, G: nn.Module | None = None):
        if G is None:
            if not cfg.generator:
                raise InputError("the encoder trains against a StyleGAN2: pass --generator WEIGHTS (or set "
                                 "Config.generator) to a file from `train stylegan2 --ship` or convert-stylegan2")
            from talkinghead.inversion.common import load_generator

            G = load_generator(cfg.generator)
        if (G.img_resolution, G.w_dim, G.num_ws) != (cfg.img_resolution, cfg.w_dim, cfg.num_ws):
            raise InputError(f"the generator makes {G.img_resolution} px images from {G.num_ws}×{G.w_dim} ws but the "
                             f"encoder config {cfg.name!r} expects {cfg.img_resolution} px and {cfg.num_ws}×{cfg.w_dim}: "
                             "pick the encoder preset of the generator's size")
        self.cfg = cfg
        self.G = G.requires_grad_(False)
        self._perceptual: nn.Module | None = None

    @property
    def phases(self):
        from talkinghead.training import Phase

        return (Phase("E", optimizer="E", nets=("E",)),)

    def build_nets(self) -> dict[str, nn.Module]:
        from talkinghead.inversion.common import w_stats

        E = Encoder(self.cfg)
        E.w_avg.copy_(w_stats(self.G)[0].to(E.w_avg))
        return {"E": E, "G": self.G}

    def build_optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"E": torch.optim.Adam(nets["E"].parameters(), lr=self.cfg.lr)}

    def dataset(self, data, split: str, *, seed: int = 0):
        """Single frames of ``split``, mirrored at random."""
        from talkinghead.data.datasets import FrameDataset

        ds = FrameDataset(data, split, seed=seed, flip=True)
        size = ds.data.meta["size"]
        if size != self.cfg.img_resolution:
            raise InputError(f"{ds.data.root} has {size}×{size} crops but the encoder config makes {self.cfg.img_resolution} px "
                             f"latents: prepare with --size {self.cfg.img_resolution} or pick the matching preset")
        return ds

    def loss(self, phase: str, batch: dict, nets: dict[str, nn.Module], cache: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """L2 + perceptual between G(E(x)) and x, plus the delta regulariser."""
        if phase != "E":
            raise ValueError(f"unknown phase {phase!r}: the encoder has one phase, E")
        cfg = self.cfg
        real = batch["image"]                                                   # (B, 3, R, R)
        if self._perceptual is None:
            from talkinghead.inversion.perceptual import load_perceptual

            self._perceptual = load_perceptual(cfg.perceptual)
        perceptual = self._perceptual.to(real.device)
        ws, deltas = nets["E"](real, return_deltas=True)                        # (B, num_ws, w_dim), (B, num_ws - 1, w_dim)
        fake = nets["G"].synthesis(ws, noise_mode="const")                      # (B, 3, R, R)
        l2 = F.mse_loss(fake, real)
        dist = perceptual(fake, real).mean()
        delta = delta_regularization(deltas)
        loss = cfg.l2_weight * l2 + cfg.perceptual_weight * dist + cfg.delta_weight * delta
        return loss, {"E_loss": loss.item(), "l2": l2.item(), "perceptual": dist.item(), "delta": delta.item()}


def load_encoder(name: str, *, root: str | None = None) -> Encoder:
    """An encoder written by ``train encoder --ship`` (or ``hub.save_weights`` with ``config_dict``): config from the
    manifest, weights loaded strictly, in eval mode."""
    from talkinghead.hub import WeightsError, load_weights, read_manifest, weights_path

    path = weights_path(name, root=root)
    entry = read_manifest(path.parent).get(path.name, {})
    if "config_dict" not in entry:
        raise WeightsError(f"{path} has no encoder config_dict in {path.parent / 'manifest.json'}: write it with "
                           "hub.save_weights(..., config_dict=cfg.to_dict()) or `train encoder --ship`")
    E = Encoder(Config.from_dict(json.loads(json.dumps(entry["config_dict"]))))
    E.load_state_dict(load_weights(str(path)), strict=True)
    return E.eval()


# --------------------------------------------------------------------------- command line


def _ship(result, args, cfg: Config) -> None:
    """Measure the EMA encoder on up to 16 test frames and write it to weights/ (fp16)."""
    from talkinghead.data.datasets import FrameDataset
    from talkinghead.hub import save_weights
    from talkinghead.inversion.measure import measure_inversion
    from talkinghead.training.cli import total_steps

    E = result.nets["G_ema"].cpu().eval()  # fit keeps the EMA of the task's "generator" net, here E
    G = result.nets["G"].cpu().eval()
    test = FrameDataset(args.data, "test", seed=0, flip=False)
    images = test[list(range(0, len(test), max(1, len(test) // 16)))[:16]]["image"]
    rows = measure_inversion(G, E, images, methods=("encoder",), perceptual=cfg.perceptual)
    print("encoder on test frames:", json.dumps(rows))
    path = save_weights(E.state_dict(), args.ship, config=cfg.name, config_dict=cfg.to_dict(),
                        steps=total_steps(result.step, result.init_from),
                        data=f"{args.data}: single frames of the train split; measured on {len(images)} test frames",
                        metrics={"inversion": rows})
    print(f"shipped {path} ({path.stat().st_size / 1e6:.2f} MB)")


def add_train_encoder_parser(sub) -> None:
    """Add ``encoder`` to ``python -m talkinghead train`` (the shared fit options plus ``--generator``)."""
    from talkinghead.training.cli import add_fit_parser

    p = add_fit_parser(sub, "encoder", help="train an e4e-style encoder into a frozen StyleGAN2's W+",
                       config_type=Config, make_task=EncoderTask, ship=_ship)
    p.add_argument("--generator", default=None, help="StyleGAN2 weights (path or weights/ name); same as --set generator=…")
    run = p.get_default("func")

    def run_with_generator(args):
        if args.generator:
            args.set = [*args.set, f"generator={args.generator}"]
        return run(args)

    p.set_defaults(func=run_with_generator)
