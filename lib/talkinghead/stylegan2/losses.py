"""StyleGAN2 losses (Karras et al., CVPR 2020, section 3 and appendix B), as small functions of logits and images.

The training loop owns the schedule. Defaults of the official configs:
- non-saturating logistic loss for G and D (Goodfellow et al. 2014);
- R1 on real images (Mescheder et al. 2018) with gamma 10 at 1024 px in the paper (config F; stylegan2-ada-pytorch
  uses gamma 2 for paper1024 and 1 for paper256), applied lazily every 16 D steps;
- path-length regularisation with weight 2, decay 0.01, every 4 G steps, on half the batch.
Lazy regularisation computes a term every ``k`` steps and multiplies it by ``k`` (paper section 3.1); the functions
below return the unscaled, weighted term, so the caller multiplies by its interval.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["d_logistic_loss", "d_r1_loss", "g_nonsaturating_loss", "g_path_regularize"]


def d_logistic_loss(real_logits: torch.Tensor, fake_logits: torch.Tensor) -> torch.Tensor:
    """Discriminator logistic loss ``E[softplus(D(G(z)))] + E[softplus(-D(x))]`` (= -log(1 - sigmoid(D(G(z))))
    - log sigmoid(D(x))). Logits (B, 1) each; returns a scalar."""
    return F.softplus(fake_logits).mean() + F.softplus(-real_logits).mean()


def d_r1_loss(real_logits: torch.Tensor, real_img: torch.Tensor, *, gamma: float = 10.0) -> torch.Tensor:
    """R1 penalty ``gamma / 2 * E[||grad_x D(x)||^2]`` on real images (Mescheder et al. 2018, eq. 9).

    ``real_img`` (B, C, H, W) must have ``requires_grad`` set before ``real_logits = D(real_img)``; the gradient is
    taken with ``create_graph=True`` so that the penalty trains D (second-order gradients through every op).
    Multiply by the lazy interval (16) when it is applied every 16 steps."""
    (grad,) = torch.autograd.grad(real_logits.sum(), real_img, create_graph=True)  # (B, C, H, W)
    return gamma / 2 * grad.square().sum(dim=[1, 2, 3]).mean()


def g_nonsaturating_loss(fake_logits: torch.Tensor) -> torch.Tensor:
    """Generator non-saturating loss ``E[softplus(-D(G(z)))]`` (= -log sigmoid(D(G(z)))). Returns a scalar."""
    return F.softplus(-fake_logits).mean()


def g_path_regularize(
    fake_img: torch.Tensor,
    ws: torch.Tensor,
    mean_path_length: torch.Tensor,
    *,
    decay: float = 0.01,
    weight: float = 2.0,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Path-length penalty (paper eq. 4): ``weight * E_{w,y}[(||J_w^T y||_2 - a)^2]``, with ``y`` Gaussian images
    scaled by 1/sqrt(H W) (so the length does not grow with resolution) and ``a`` the running mean of the lengths.

    Args:
        fake_img: (B, C, H, W) generated from ``ws``.
        ws: (B, num_ws, w_dim) with ``requires_grad``; the length is taken over w_dim and averaged over the ws.
        mean_path_length: the running mean ``a`` (a scalar tensor, 0 at the start of training).
        decay: exponential decay of the running mean (0.01).
        weight: the penalty weight; the paper's choice ln 2 / (r^2 (ln r - ln 2)) is 2 for the official configs.
    Returns:
        (penalty scalar, new running mean (detached), path lengths (B,) detached).
    """
    noise = torch.randn_like(fake_img) / math.sqrt(fake_img.shape[2] * fake_img.shape[3])  # (B, C, H, W)
    (grad,) = torch.autograd.grad((fake_img * noise).sum(), ws, create_graph=True)  # (B, num_ws, w_dim)
    lengths = grad.square().sum(dim=2).mean(dim=1).sqrt()  # (B,)
    mean = mean_path_length.detach().to(lengths.dtype).lerp(lengths.mean(), decay)  # as in the official code, the
    penalty = (lengths - mean).square().mean() * weight  # penalty also sees this step's share of the mean
    return penalty, mean.detach(), lengths.detach()
