"""The three calls a notebook or the demo makes: ``invert`` (image -> latents), ``tune`` (pivotal tuning on an image
or a clip's frames) and ``edit`` (move latents along principal directions). Each returns plain results and reports
progress as ``progress(stage, fraction)`` with stages "encode", "project" and "tune".

    from talkinghead.inversion import api
    from talkinghead.inversion.common import load_generator
    from talkinghead.inversion.encoder import load_encoder
    from talkinghead.inversion.editing import principal_directions

    G = load_generator("stylegan2_synthgrid.safetensors")
    E = load_encoder("encoder_synthgrid.safetensors")
    inv = api.invert(photo_crop, G, E, refine_steps=100)                   # photo_crop: (128, 128, 3) uint8
    tuned = api.tune(photo_crop, G, inv.ws, steps=350)                      # cached by image hash
    ws = api.edit(inv.ws, principal_directions(G), {0: 2.0})                # 2 standard deviations along PC 0
    frames = tuned.synthesis(ws)                                            # (1, 3, 128, 128) in [-1, 1]
"""
from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from talkinghead.inversion.common import Progress, as_batch, report, synthesize
from talkinghead.inversion.editing import Directions, apply_direction, apply_directions
from talkinghead.inversion.projector import project
from talkinghead.inversion.pti import TunedGenerator, pivotal_tuning
from talkinghead.io import InputError

__all__ = ["Inversion", "to_tensor", "invert", "tune", "edit"]


@dataclass
class Inversion:
    """What ``invert`` returns: ``ws`` (B, num_ws, w_dim), ``image`` (B, 3, R, R) G's rendering of them (with the
    projector's noise maps when it ran), ``noise`` those maps (or None), ``seconds`` per stage."""

    ws: torch.Tensor
    image: torch.Tensor
    noise: dict[str, torch.Tensor] | None = None
    seconds: dict[str, float] = field(default_factory=dict)


def to_tensor(images) -> torch.Tensor:
    """uint8 (H, W, 3) or (T, H, W, 3) arrays -> float (B, 3, H, W) in [-1, 1]; float tensors pass through."""
    if torch.is_tensor(images):
        return images
    array = np.asarray(images)
    if array.dtype != np.uint8 or array.ndim not in (3, 4) or array.shape[-1] != 3:
        raise InputError(f"images must be uint8 (H, W, 3) or (T, H, W, 3) arrays or float tensors in [-1, 1], got "
                         f"{array.dtype} {array.shape}: load photos with talkinghead.io.load_image and crop them with face.align")
    tensor = torch.from_numpy(np.ascontiguousarray(array)).float() / 127.5 - 1.0
    return tensor.movedim(-1, -3)


def invert(
    image,
    G: nn.Module,
    encoder: nn.Module | None = None,
    *,
    refine_steps: int = 100,
    space: str = "w+",
    perceptual: nn.Module | str = "auto",
    progress: Progress | None = None,
    seed: int = 0,
) -> Inversion:
    """Latents of ``image`` (one face crop or a clip's frames at G's resolution).

    1. ``encoder`` (if given) predicts ws in one pass;
    2. the projector (``refine_steps`` > 0) refines them, or starts from the mean w without an encoder.

    Args:
        image: uint8 (R, R, 3) / (T, R, R, 3) or float (3, R, R) / (B, 3, R, R) in [-1, 1].
        G: the StyleGAN2 generator. encoder: an ``inversion.encoder.Encoder`` for G, or None.
        refine_steps: projector steps after the encoder (0: encoder only).
        space: the projector's space, ``"w"`` or ``"w+"`` (an encoder gives W+).
        perceptual: the projector's distance (see ``inversion.perceptual.load_perceptual``).
        progress: ``progress(stage, fraction)``.
    """
    if encoder is None and refine_steps <= 0:
        raise ValueError("nothing to invert with: pass an encoder or refine_steps > 0")
    device = next(G.parameters()).device
    target = as_batch(to_tensor(image), G.img_resolution, "image").to(device)          # (B, 3, R, R)
    seconds: dict[str, float] = {}
    ws = None
    # 1. Encoder.
    if encoder is not None:
        start = time.perf_counter()
        report(progress, "encode", 0.0)
        with torch.no_grad():
            ws = encoder.to(device).eval()(target)                                      # (B, num_ws, w_dim)
        seconds["encode"] = time.perf_counter() - start
        report(progress, "encode", 1.0)
    # 2. Projector.
    noise = None
    if refine_steps > 0:
        start = time.perf_counter()
        projection = project(G, target, space=space, steps=refine_steps, init_ws=ws, perceptual=perceptual,
                             progress=progress, seed=seed)
        ws, noise = projection.ws, projection.noise
        seconds["project"] = time.perf_counter() - start
    with torch.no_grad():
        img = synthesize(G, ws, noise=noise)                                            # (B, 3, R, R)
    return Inversion(ws=ws, image=img, noise=noise, seconds=seconds)


def tune(
    image_or_frames,
    G: nn.Module,
    pivot: torch.Tensor | Inversion,
    *,
    steps: int = 350,
    lr: float = 3e-4,
    locality_weight: float = 0.1,
    locality_alpha: float = 30.0,
    rank: int | None = None,
    perceptual: nn.Module | str = "auto",
    cache: bool = True,
    progress: Progress | None = None,
    seed: int = 0,
) -> TunedGenerator:
    """Pivotal tuning of ``G`` on one image or a short clip's frames around ``pivot`` (``invert``'s result or its
    ws); see ``inversion.pti.pivotal_tuning`` for the settings. Cached by image hash + settings."""
    ws = pivot.ws if isinstance(pivot, Inversion) else pivot
    target = as_batch(to_tensor(image_or_frames), G.img_resolution, "image_or_frames")
    return pivotal_tuning(G, target, ws, steps=steps, lr=lr, locality_weight=locality_weight,
                          locality_alpha=locality_alpha, rank=rank, perceptual=perceptual, cache=cache,
                          progress=progress, seed=seed)


def edit(
    ws: torch.Tensor,
    directions: Directions | torch.Tensor,
    amounts: dict[int, float] | Sequence[float] | float,
    *,
    layers: Sequence[int] | slice | range | None = None,
) -> torch.Tensor:
    """Move ``ws`` (1, num_ws, w_dim) or a trajectory (T, num_ws, w_dim) along principal directions.

    ``directions`` from ``editing.principal_directions`` with ``amounts`` in standard deviations ({component: amount}
    or a list for components 0, 1, …); or one raw direction (w_dim,) with one ``amounts`` float in W units."""
    if isinstance(directions, Directions):
        return apply_directions(ws, directions, amounts, layers)
    if not isinstance(amounts, (int, float)):
        raise ValueError("with one raw direction (w_dim,) give one amount (a float in W units)")
    return apply_direction(ws, directions, float(amounts), layers)
