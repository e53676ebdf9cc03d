"""Differentiable augmentation of everything the discriminator sees (Zhao et al., "Differentiable Augmentation for
Data-Efficient GAN Training", NeurIPS 2020 — DiffAugment).

Why: SynthGRID's training frames are 45,000 images of only 18 rendered identities, so the discriminator can
memorise them. Without augmentation our first `synth128` run did exactly that: D's logits on real frames climbed to
+6, its loss to 0.04, and by step 1,500 the generator had collapsed to one face (docs/STYLEGAN2.md). DiffAugment
applies the same random, differentiable transforms to real and generated images before D, in D's and G's phases
alike, so D cannot tell them apart by memorised detail and G still receives gradients through the transforms.

The three transforms of the paper's ``color,translation,cutout`` policy, each drawn per image:

    color        brightness + U(-0.5, 0.5); saturation × U(0, 2) around the pixel's mean over channels;
                 contrast × U(0.5, 1.5) around the image mean (on images in [-1, 1], as the paper's code)
    translation  an integer shift of up to 1/8 of the size in x and y, the uncovered border zero
    cutout       a zero square of half the size at a random position (it may extend past the border)

Translation and cutout are pure indexing and masking, so second derivatives (R1 through the augmentation) exist.
ADA (Karras et al. 2020), which tunes the augmentation strength on the fly, is the alternative we did not build.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["POLICIES", "diff_augment", "parse_policy"]

POLICIES = ("color", "translation", "cutout")


def parse_policy(policy: str) -> tuple[str, ...]:
    """``"color,translation,cutout"`` -> its transforms, checked; ``""`` -> none."""
    names = tuple(p.strip() for p in policy.split(",") if p.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown:
        raise ValueError(f"unknown augmentation {unknown}: the policy is a comma-separated subset of {', '.join(POLICIES)}")
    return names


def _color(x: torch.Tensor, gen: torch.Generator | None) -> torch.Tensor:
    b = x.shape[0]

    def draw() -> torch.Tensor:
        return torch.rand(b, 1, 1, 1, generator=gen, device=x.device, dtype=x.dtype)

    x = x + (draw() - 0.5)                                                    # brightness
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (draw() * 2) + mean                                      # saturation
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (draw() + 0.5) + mean                                 # contrast


def _translation(x: torch.Tensor, gen: torch.Generator | None, ratio: float = 0.125) -> torch.Tensor:
    b, _, h, w = x.shape
    sh, sw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    dy = torch.randint(-sh, sh + 1, (b, 1, 1), generator=gen, device=x.device)
    dx = torch.randint(-sw, sw + 1, (b, 1, 1), generator=gen, device=x.device)
    ys = torch.arange(h, device=x.device)[None, :, None] + dy + 1             # (B, H, 1) rows of the padded image
    xs = torch.arange(w, device=x.device)[None, None, :] + dx + 1             # (B, 1, W)
    ys, xs = ys.clamp(0, h + 1), xs.clamp(0, w + 1)                            # out of range -> the zero border
    padded = F.pad(x, [1, 1, 1, 1])                                            # (B, C, H + 2, W + 2)
    index = (ys * (w + 2) + xs).flatten(1)                                     # (B, H·W) flat indices
    flat = padded.flatten(2)                                                   # (B, C, (H + 2)(W + 2))
    return flat.gather(2, index[:, None].expand(-1, x.shape[1], -1)).view_as(x)


def _cutout(x: torch.Tensor, gen: torch.Generator | None, ratio: float = 0.5) -> torch.Tensor:
    b, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top = torch.randint(0, h + (1 - ch % 2), (b, 1, 1), generator=gen, device=x.device) - ch // 2
    left = torch.randint(0, w + (1 - cw % 2), (b, 1, 1), generator=gen, device=x.device) - cw // 2
    ys = torch.arange(h, device=x.device)[None, :, None]                       # (1, H, 1)
    xs = torch.arange(w, device=x.device)[None, None, :]                       # (1, 1, W)
    inside = (ys >= top) & (ys < top + ch) & (xs >= left) & (xs < left + cw)   # (B, H, W)
    return x * (~inside)[:, None].to(x.dtype)


_TRANSFORMS = {"color": _color, "translation": _translation, "cutout": _cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...] | str, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply ``policy``'s transforms, in the order color, translation, cutout, to images (B, C, H, W).

    Each image draws its own parameters from ``generator`` (default: torch's global RNG, which fit checkpoints, so a
    resumed run draws the same ones). Differentiable with respect to ``x`` to any order."""
    names = parse_policy(policy) if isinstance(policy, str) else policy
    for name in POLICIES:
        if name in names:
            x = _TRANSFORMS[name](x, generator)
    return x
