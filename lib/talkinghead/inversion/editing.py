"""Latent editing along principal directions of W (Härkönen et al., "GANSpace: Discovering Interpretable GAN
Controls", NeurIPS 2020).

``principal_directions`` samples ``n`` latents z, maps them to w and takes the principal components of the w's
(PCA by a singular value decomposition of the centred samples): ``directions`` (k, w_dim) are orthonormal, ordered
by the variance they explain, and ``std`` (k,) is the standard deviation of the samples along each, so an edit
can be given in standard deviations. ``apply_direction`` moves a latent (1, num_ws, w_dim) or a whole trajectory
(T, num_ws, w_dim) along one direction, on all layers or on the chosen ones (GANSpace applies each edit to a range of
layers: coarse layers change pose and shape, fine ones colour and texture).

Choices GANSpace leaves open, and ours: 10,000 samples by default (GANSpace uses 10^6 for its figures), PCA on w
(not on the style vectors of one layer, which GANSpace also offers), the sign of each direction as the SVD gives
it (name the directions by looking at the edits).

``edit_strips`` renders what each direction does (one row per component, columns from −a to +a standard
deviations around one latent); the command line writes it as a picture:

    python -m talkinghead.inversion.editing --generator stylegan2_synthgrid.safetensors --out docs/edits.png
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

__all__ = ["Directions", "principal_directions", "apply_direction", "apply_directions", "edit_strips", "main"]


@dataclass
class Directions:
    """Principal directions of W: ``directions`` (k, w_dim) orthonormal rows, ``std`` (k,) the samples' standard
    deviation along each, ``mean`` (w_dim,) the sample mean, ``explained`` (k,) the share of the total variance."""

    directions: torch.Tensor
    std: torch.Tensor
    mean: torch.Tensor
    explained: torch.Tensor

    def __len__(self) -> int:
        return self.directions.shape[0]


@torch.no_grad()
def principal_directions(G: nn.Module, *, k: int = 10, n: int = 10_000, seed: int = 0, batch: int = 1000) -> Directions:
    """The first ``k`` principal directions of ``G``'s W, from ``n`` samples (``n`` ≥ ``k``)."""
    if not 1 <= k <= min(n, G.w_dim):
        raise ValueError(f"k must be between 1 and min(n, w_dim) = {min(n, G.w_dim)}, not {k}")
    device = next(G.parameters()).device
    gen = torch.Generator().manual_seed(seed)
    ws = torch.cat([G.mapping(torch.randn(min(batch, n - i), G.z_dim, generator=gen).to(device), None,
                              update_w_avg=False)[:, 0] for i in range(0, n, batch)])   # (n, w_dim)
    mean = ws.mean(dim=0)
    _, singular, vh = torch.linalg.svd(ws - mean, full_matrices=False)                 # vh (min(n, w_dim), w_dim)
    variance = singular.square() / (n - 1)
    return Directions(directions=vh[:k].contiguous(), std=variance[:k].sqrt(), mean=mean,
                      explained=variance[:k] / variance.sum())


def _layer_mask(num_ws: int, layers: Sequence[int] | slice | range | None, like: torch.Tensor) -> torch.Tensor:
    """(num_ws, 1) of 1 on the chosen layers, 0 elsewhere."""
    mask = torch.zeros(num_ws, 1, dtype=like.dtype, device=like.device)
    if layers is None:
        mask[:] = 1
    else:
        index = list(range(num_ws))[layers] if isinstance(layers, slice) else list(layers)
        if any(not -num_ws <= i < num_ws for i in index):
            raise ValueError(f"layers {index} out of range for {num_ws} ws")
        mask[index] = 1
    return mask


def apply_direction(
    ws: torch.Tensor,
    direction: torch.Tensor,
    amount: float,
    layers: Sequence[int] | slice | range | None = None,
) -> torch.Tensor:
    """``ws + amount · direction`` on ``layers`` (all when None).

    Args:
        ws: one latent (1, num_ws, w_dim), a batch or a trajectory (T, num_ws, w_dim).
        direction: (w_dim,), in W units (multiply by ``Directions.std`` for standard deviations).
        amount: how far to move; 0 returns ``ws`` unchanged.
        layers: indices, a range or a slice of the ws to move (e.g. ``range(0, 4)``: coarse layers).
    Returns:
        a new tensor of the shape of ``ws``.
    """
    if ws.ndim != 3 or direction.shape != (ws.shape[-1],):
        raise ValueError(f"ws must be (T, num_ws, w_dim) and direction (w_dim,); got {tuple(ws.shape)} and {tuple(direction.shape)}")
    mask = _layer_mask(ws.shape[1], layers, ws)                                         # (num_ws, 1)
    return ws + amount * mask * direction.to(ws)                                        # (T, num_ws, w_dim)


def apply_directions(
    ws: torch.Tensor,
    directions: Directions,
    amounts: dict[int, float] | Sequence[float],
    layers: Sequence[int] | slice | range | None = None,
) -> torch.Tensor:
    """Several GANSpace edits at once, each ``amount`` in standard deviations of its component: ``amounts`` maps a
    component index to its amount, or lists amounts for components 0, 1, … ."""
    items = amounts.items() if isinstance(amounts, dict) else enumerate(amounts)
    for index, amount in items:
        if not 0 <= index < len(directions):
            raise ValueError(f"component {index} does not exist: there are {len(directions)} directions")
        ws = apply_direction(ws, directions.directions[index], float(amount) * float(directions.std[index]), layers)
    return ws


@torch.no_grad()
def edit_strips(
    G: nn.Module,
    directions: Directions,
    ws: torch.Tensor,
    *,
    components: Sequence[int] = (0, 1, 2, 3, 4),
    amounts: Sequence[float] = (-3.0, -1.5, 0.0, 1.5, 3.0),
    layers: Sequence[int] | slice | range | None = None,
) -> torch.Tensor:
    """Images (len(components), len(amounts), 3, R, R) in [-1, 1]: row i moves ``ws`` (1, num_ws, w_dim) along
    component ``components[i]`` by each of ``amounts`` (standard deviations), rendered with constant noise."""
    from talkinghead.inversion.common import synthesize

    if ws.ndim != 3 or ws.shape[0] != 1:
        raise ValueError(f"ws must be one latent (1, num_ws, w_dim), got {tuple(ws.shape)}")
    rows = []
    for c in components:
        edited = torch.cat([apply_directions(ws, directions, {c: a}, layers) for a in amounts])  # (A, num_ws, w_dim)
        rows.append(synthesize(G, edited))                                                    # (A, 3, R, R)
    return torch.stack(rows)


def main(argv: list[str] | None = None) -> int:
    """``python -m talkinghead.inversion.editing``: a picture of the first principal directions of a generator's W,
    applied to a few random latents (one block of rows per latent)."""
    import argparse

    import numpy as np

    from talkinghead.inversion.common import load_generator
    from talkinghead.stylegan2.quality import to_uint8, write_grid

    p = argparse.ArgumentParser(prog="python -m talkinghead.inversion.editing", description=main.__doc__)
    p.add_argument("--generator", required=True, help="StyleGAN2 weights (path or weights/ name)")
    p.add_argument("--out", required=True, help="picture to write (.png)")
    p.add_argument("--components", type=int, default=5, help="principal directions shown")
    p.add_argument("--latents", type=int, default=2, help="random latents the directions are applied to")
    p.add_argument("--amount", type=float, default=3.0, help="largest move, in standard deviations")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    G = load_generator(args.generator)
    directions = principal_directions(G, k=args.components, seed=args.seed)
    amounts = np.linspace(-args.amount, args.amount, 5).tolist()
    z = torch.randn(args.latents, G.z_dim, generator=torch.Generator().manual_seed(args.seed))
    blocks = [edit_strips(G, directions, G.mapping(z[i : i + 1], None), components=range(args.components), amounts=amounts)
              for i in range(args.latents)]
    images = torch.cat(blocks).flatten(0, 1)                                     # (latents · k · 5, 3, R, R)
    write_grid(args.out, to_uint8(images), columns=len(amounts))
    explained = ", ".join(f"PC{i} {e:.1%}" for i, e in enumerate(directions.explained.tolist()))
    print(f"wrote {args.out}: rows PC0..PC{args.components - 1} for each of {args.latents} latents, columns "
          f"{', '.join(f'{a:+.1f}' for a in amounts)} standard deviations; variance explained: {explained}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
