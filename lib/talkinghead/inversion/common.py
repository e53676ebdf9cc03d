"""Pieces every inversion method shares: shape checks, the statistics of W, rendering with explicit noise maps,
loading a generator by name, and progress reporting."""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from talkinghead.io import InputError

__all__ = ["Progress", "assert_shape", "as_batch", "w_stats", "noise_buffers", "synthesize", "load_generator", "report"]

Progress = Callable[[str, float], None]  # (stage name, fraction done in [0, 1])


def assert_shape(x: torch.Tensor, shape: tuple, name: str) -> None:
    """Check ``x.shape`` against ``shape`` (None matches any size) with a message that names the tensor."""
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        want = "(" + ", ".join("*" if s is None else str(s) for s in shape) + ")"
        raise ValueError(f"{name} has shape {tuple(x.shape)}, expected {want}")


def as_batch(images: torch.Tensor, resolution: int, name: str = "target") -> torch.Tensor:
    """One image (3, R, R) or a batch (B, 3, R, R) in [-1, 1] -> (B, 3, R, R) float32."""
    if not torch.is_tensor(images) or not images.is_floating_point():
        raise InputError(f"{name} must be a float tensor (3, R, R) or (B, 3, R, R) in [-1, 1]: convert uint8 frames "
                         "with talkinghead.inversion.api.to_tensor")
    if images.ndim == 3:
        images = images.unsqueeze(0)
    if images.ndim != 4 or images.shape[1] != 3 or images.shape[-2:] != (resolution, resolution):
        raise InputError(f"{name} has shape {tuple(images.shape)}: the generator makes {resolution}×{resolution} "
                         f"images; crop and resize to (B, 3, {resolution}, {resolution}) first (face.align)")
    return images.to(torch.float32)


def report(progress: Progress | None, stage: str, fraction: float) -> None:
    if progress is not None:
        progress(stage, float(min(max(fraction, 0.0), 1.0)))


@torch.no_grad()
def w_stats(G: nn.Module, *, n: int = 10_000, seed: int = 0, batch: int = 1000) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean w (w_dim,) and its scalar spread ``sqrt(E ||w - mean||²)`` over ``n`` random z, as StyleGAN2's projector
    measures them (its ``w_std``). Computed from samples, not ``mapping.w_avg``, which an untrained net leaves at 0."""
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    ws = []
    for start in range(0, n, batch):
        z = torch.randn(min(batch, n - start), G.z_dim, generator=gen).to(device)   # (b, z_dim)
        ws.append(G.mapping(z, None, update_w_avg=False)[:, 0])                       # (b, w_dim)
    ws = torch.cat(ws)                                                                   # (n, w_dim)
    mean = ws.mean(dim=0)
    std = ((ws - mean).square().sum(dim=1).mean()).sqrt()
    return mean, std


def noise_buffers(G: nn.Module) -> dict[str, torch.Tensor]:
    """The fixed noise maps of the synthesis network by name (``b8.conv0.noise_const`` …), each (R, R)."""
    return {name: buf for name, buf in G.synthesis.named_buffers() if name.endswith("noise_const")}


def synthesize(
    G: nn.Module,
    ws: torch.Tensor,
    *,
    noise: dict[str, torch.Tensor] | None = None,
    params: dict[str, torch.Tensor] | None = None,
) -> torch.Tensor:
    """ws (B, num_ws, w_dim) -> img (B, 3, R, R) with ``noise_mode='const'``, the noise maps replaced by ``noise``
    (each (R, R) or per image (B, 1, R, R)) and synthesis tensors replaced by ``params``, without touching G."""
    replaced = {**(params or {}), **(noise or {})}
    if not replaced:
        return G.synthesis(ws, noise_mode="const")
    return torch.func.functional_call(G.synthesis, replaced, (ws,), {"noise_mode": "const"}, strict=False)


def load_generator(name: str | Path, *, root: str | Path | None = None) -> nn.Module:
    """A StyleGAN2 generator from a converted file (``convert-stylegan2``: config in the file's metadata, tensors
    under ``G_ema.``) or from weights written by ``train stylegan2 --ship`` (config in the manifest's
    ``config_dict``). ``name`` is a path or a name under ``weights/`` (see ``talkinghead.hub``)."""
    from safetensors import safe_open

    from talkinghead.hub import load_weights, read_manifest, weights_path
    from talkinghead.stylegan2 import Config, Generator

    path = weights_path(str(name), root=root)
    with safe_open(str(path), framework="pt", device="cpu") as f:
        meta = f.metadata() or {}
    if "config" in meta:
        return Generator.from_safetensors(path).eval().requires_grad_(False)
    entry = read_manifest(path.parent).get(path.name, {})
    if "config_dict" not in entry:
        raise InputError(f"{path} has no StyleGAN2 config (neither in its metadata nor as config_dict in "
                         f"{path.parent / 'manifest.json'}): ship it with `train stylegan2 --ship` or convert-stylegan2")
    G = Generator(Config.from_dict(json.loads(json.dumps(entry["config_dict"]))))
    G.load_state_dict(load_weights(str(path)), strict=True)
    return G.eval().requires_grad_(False)
