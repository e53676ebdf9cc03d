"""Optimisation-based projection of images into a StyleGAN2's latent space (Karras et al., "Analyzing and Improving
the Image Quality of StyleGAN", CVPR 2020, section 5 and appendix D "Projection").

``project`` starts from the mean w and optimises w (``space="w"``: one w for all layers, the paper's setting) or one
w per layer (``space="w+"``) together with the generator's per-layer noise maps, minimising a perceptual distance
(LPIPS when its weights are available, see ``inversion.perceptual``) plus an optional pixel L2, with

- the noise regulariser of the paper: for every noise map, at every scale of a pyramid (the map, then 2×2-average
  pooled until 8×8), the squared autocorrelation at a one-pixel shift horizontally and vertically, summed, weighted
  by ``noise_regularize`` (1e5); after each step every map is renormalised to zero mean and unit variance;
- a learning-rate schedule ramped up over the first ``lr_rampup`` (5 %) of the steps and down with a cosine over the
  last ``lr_rampdown`` (25 %), peak ``lr`` (0.1);
- ramped noise on w: Gaussian with standard deviation ``σ_w · 0.05 · max(0, 1 - t / 0.75)²`` (σ_w the spread of W
  measured from 10,000 samples), which explores early and vanishes for the last quarter.

The paper runs 1,000 steps. Several images (a short video's frames) are projected at once, each with its own
latents and noise maps: the losses are summed over images, so each image's optimisation is independent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.inversion.common import Progress, as_batch, noise_buffers, report, synthesize, w_stats

__all__ = ["Projection", "project", "noise_regularization", "lr_schedule", "psnr_from_mse"]


@dataclass
class Projection:
    """What ``project`` returns.

    ws: (B, num_ws, w_dim) the projected latents (in W space every layer holds the same w).
    noise: the optimised noise maps by buffer name (``b8.conv0.noise_const`` …), each (B, 1, R, R).
    history: one row per step: step, lr, loss, distance (perceptual, mean over images), l2 (pixel MSE), psnr (dB,
        from the MSE on the [-1, 1] range, the same as on 0–255), noise_reg (the unweighted regulariser).
    """

    ws: torch.Tensor
    noise: dict[str, torch.Tensor]
    history: list[dict] = field(default_factory=list)

    def image(self, G: nn.Module) -> torch.Tensor:
        """G's image of the projection, (B, 3, R, R)."""
        with torch.no_grad():
            return synthesize(G, self.ws, noise=self.noise)


def psnr_from_mse(mse: float) -> float:
    """PSNR in dB of images in [-1, 1] (peak-to-peak 2) from their mean squared error."""
    return 10 * math.log10(4.0 / max(mse, 1e-10))


def lr_schedule(t: float, lr: float, *, rampup: float = 0.05, rampdown: float = 0.25) -> float:
    """Learning rate at progress ``t`` in [0, 1): linear ramp up over ``rampup``, cosine ramp down over ``rampdown``."""
    down = min(1.0, (1.0 - t) / rampdown)
    return lr * (0.5 - 0.5 * math.cos(down * math.pi)) * min(1.0, t / rampup)


def noise_regularization(noise: list[torch.Tensor]) -> torch.Tensor:
    """The paper's noise regulariser: for maps (B, 1, R, R), the sum over maps and pyramid levels (down to 8×8) of
    the squared one-pixel autocorrelations (horizontal and vertical), per image, averaged over images -> scalar."""
    total = noise[0].new_zeros(noise[0].shape[0])
    for v in noise:
        while True:
            total = total + (v * v.roll(1, dims=3)).mean(dim=(1, 2, 3)).square()
            total = total + (v * v.roll(1, dims=2)).mean(dim=(1, 2, 3)).square()
            if v.shape[-1] <= 8:
                break
            v = F.avg_pool2d(v, 2)
    return total.mean()


def _perceptual_input(img: torch.Tensor) -> torch.Tensor:
    """Images larger than 256 px are area-downsampled to 256 for the perceptual network, as in the paper's code."""
    if img.shape[-1] > 256:
        img = F.adaptive_avg_pool2d(img, 256)
    return img


def project(
    G: nn.Module,
    target: torch.Tensor,
    *,
    space: str = "w",
    steps: int = 1000,
    lr: float = 0.1,
    noise_regularize: float = 1e5,
    perceptual: nn.Module | str | None = "auto",
    l2_weight: float = 0.0,
    init_ws: torch.Tensor | None = None,
    initial_w_noise: float = 0.05,
    w_noise_ramp: float = 0.75,
    lr_rampup: float = 0.05,
    lr_rampdown: float = 0.25,
    w_avg_samples: int = 10_000,
    progress: Progress | None = None,
    seed: int = 0,
) -> Projection:
    """Project ``target`` into ``G``'s latent space by optimisation.

    Args:
        G: a StyleGAN2 ``Generator`` (left unchanged: its noise maps are replaced only inside the calls).
        target: (3, R, R) or (B, 3, R, R) in [-1, 1], R = G.img_resolution.
        space: ``"w"`` (one w per image, repeated over layers) or ``"w+"`` (one w per layer).
        steps: optimisation steps (paper: 1000).
        lr: peak learning rate of Adam.
        noise_regularize: weight of ``noise_regularization`` (paper: 1e5; 0 leaves the noise free).
        perceptual: a distance module ``(x, y) -> (B,)``, ``"auto"`` / ``"lpips"`` / ``"structural"`` for
            ``inversion.perceptual.load_perceptual``, or None for pixel L2 only.
        l2_weight: weight of the pixel mean squared error (0 in the paper; must be > 0 when ``perceptual`` is None).
        init_ws: start here instead of the mean w: (B, num_ws, w_dim), e.g. an encoder's output (in W space the
            mean over layers is used).
        initial_w_noise, w_noise_ramp: the noise added to w, a fraction of σ_w that falls to 0 at ``w_noise_ramp``.
        lr_rampup, lr_rampdown: fractions of the steps for the learning-rate ramps.
        w_avg_samples: z samples for the mean and spread of W.
        progress: called with ("project", fraction) after every step.
        seed: initial noise maps and the w noise.
    Returns:
        ``Projection`` (ws (B, num_ws, w_dim), noise maps (B, 1, R, R), history).
    """
    if space not in ("w", "w+"):
        raise ValueError(f"space must be 'w' or 'w+', not {space!r}")
    if perceptual is None and l2_weight <= 0:
        raise ValueError("with perceptual=None give l2_weight > 0, or there is nothing to minimise")
    device = next(G.parameters()).device
    target = as_batch(target, G.img_resolution).to(device)                            # (B, 3, R, R)
    batch, num_ws = target.shape[0], G.num_ws
    if isinstance(perceptual, str):
        from talkinghead.inversion.perceptual import load_perceptual

        perceptual = load_perceptual(perceptual, device=device)
    gen = torch.Generator().manual_seed(seed)

    # 1. Statistics of W and the starting point.
    w_avg, w_std = w_stats(G, n=w_avg_samples, seed=seed)
    if init_ws is not None:
        start = init_ws.detach().to(device, torch.float32)                            # (B, num_ws, w_dim)
        if start.shape != (batch, num_ws, G.w_dim):
            raise ValueError(f"init_ws has shape {tuple(start.shape)}, expected {(batch, num_ws, G.w_dim)}")
    else:
        start = w_avg.reshape(1, 1, -1).repeat(batch, num_ws, 1)                      # (B, num_ws, w_dim)
    if space == "w":
        start = start.mean(dim=1, keepdim=True)                                       # (B, 1, w_dim)
    w_opt = start.clone().requires_grad_(True)

    # 2. Noise maps: one per layer and image, unit Gaussian, optimised.
    noise = {name: torch.randn(batch, 1, *buf.shape, generator=gen).to(device).requires_grad_(True)
             for name, buf in noise_buffers(G).items()}                               # each (B, 1, R, R)
    optimizer = torch.optim.Adam([w_opt, *noise.values()], betas=(0.9, 0.999), lr=lr)
    target_p = _perceptual_input(target) if perceptual is not None else None

    history: list[dict] = []
    for step in range(steps):
        # 3. Schedules: lr ramps, noise on w that fades out.
        t = step / steps
        w_noise_scale = float(w_std) * initial_w_noise * max(0.0, 1.0 - t / w_noise_ramp) ** 2
        step_lr = lr_schedule(t, lr, rampup=lr_rampup, rampdown=lr_rampdown)
        for group in optimizer.param_groups:
            group["lr"] = step_lr

        # 4. Render and measure.
        w_noise = torch.randn(w_opt.shape, generator=gen).to(device) * w_noise_scale
        ws = (w_opt + w_noise).expand(batch, num_ws, -1)                              # (B, num_ws, w_dim)
        img = synthesize(G, ws, noise=noise)                                          # (B, 3, R, R)
        mse = (img - target).square().mean(dim=(1, 2, 3))                             # (B,)
        loss = l2_weight * mse.sum()
        distance = torch.zeros(())
        if perceptual is not None:
            distance = perceptual(_perceptual_input(img), target_p)                   # (B,)
            loss = loss + distance.sum()
        reg = noise_regularization(list(noise.values()))
        loss = loss + noise_regularize * reg * batch

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

        # 5. Keep every noise map at zero mean and unit variance (per image).
        with torch.no_grad():
            for buf in noise.values():
                buf -= buf.mean(dim=(1, 2, 3), keepdim=True)
                buf *= buf.square().mean(dim=(1, 2, 3), keepdim=True).rsqrt()

        history.append({"step": step, "lr": step_lr, "loss": loss.item() / batch, "distance": distance.mean().item(),
                        "l2": mse.mean().item(), "psnr": psnr_from_mse(mse.mean().item()), "noise_reg": reg.item()})
        report(progress, "project", (step + 1) / steps)

    ws = w_opt.detach().expand(batch, num_ws, -1).clone()                             # (B, num_ws, w_dim)
    return Projection(ws=ws, noise={k: v.detach() for k, v in noise.items()}, history=history)
