"""Measure inversion: reconstruction quality (PSNR, SSIM from ``talkinghead.metrics.image``, the perceptual distance)
and seconds per image for each method, image by image:

    encoder             one encoder pass
    projector           the projector from the mean w (``refine_steps`` steps)
    encoder+projector   the encoder's ws refined by the projector
    pti                 the pivot of encoder+projector (or of the projector alone), then pivotal tuning; its time
                        includes finding the pivot

Command line (once trained weights exist; nothing here is measured yet):

    python -m talkinghead.inversion.measure --generator stylegan2_synthgrid.safetensors \\
        --encoder encoder_synthgrid.safetensors --data data/prepared128 --split test --frames 16 --out inversion.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from talkinghead.inversion.common import Progress, as_batch, report, synthesize
from talkinghead.inversion.projector import project
from talkinghead.inversion.pti import pivotal_tuning

__all__ = ["METHODS", "measure_inversion", "format_table", "main"]

METHODS = ("encoder", "projector", "encoder+projector", "pti")


def measure_inversion(
    G: nn.Module,
    encoder: nn.Module | None,
    images: torch.Tensor,
    *,
    methods: Sequence[str] | None = None,
    refine_steps: int = 100,
    pti_steps: int = 350,
    perceptual: nn.Module | str = "auto",
    progress: Progress | None = None,
    seed: int = 0,
) -> list[dict]:
    """One row per method: ``{"method", "images", "psnr", "ssim", "perceptual", "perceptual_kind",
    "seconds_per_image"}``, the metrics averaged over ``images``.

    Args:
        G: the StyleGAN2 generator. encoder: its encoder, or None (then no encoder rows).
        images: (B, 3, R, R) in [-1, 1] at G's resolution, measured one at a time.
        methods: a subset of ``METHODS`` (default: all that the arguments allow).
        refine_steps: projector steps. pti_steps: pivotal-tuning steps (paper: 350).
        perceptual: the distance used by the projector, PTI and the table (``perceptual.load_perceptual`` kinds).
        progress: ``progress(method, fraction of its images)``.
    """
    from talkinghead.inversion.perceptual import load_perceptual
    from talkinghead.metrics.image import psnr, ssim

    device = next(G.parameters()).device
    images = as_batch(images, G.img_resolution, "images").to(device)
    if methods is None:
        methods = [m for m in METHODS if encoder is not None or "encoder" not in m]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or (encoder is None and any(m.startswith("encoder") for m in methods)):
        raise ValueError(f"methods {list(methods)}: choose from {METHODS}; the encoder methods need an encoder")
    if isinstance(perceptual, str):
        perceptual = load_perceptual(perceptual, device=device)
    if encoder is not None:
        encoder = encoder.to(device).eval()

    def pivot_of(target: torch.Tensor) -> torch.Tensor:
        ws = None
        if encoder is not None:
            with torch.no_grad():
                ws = encoder(target)
        if ws is None or refine_steps > 0:
            ws = project(G, target, space="w+", steps=refine_steps, init_ws=ws, perceptual=perceptual, seed=seed).ws
        return ws

    rows = []
    for method in methods:
        recon, seconds = [], 0.0
        for i in range(images.shape[0]):
            target = images[i : i + 1]                                                   # (1, 3, R, R)
            start = time.perf_counter()
            if method == "encoder":
                with torch.no_grad():
                    img = synthesize(G, encoder(target))
            elif method == "projector":
                img = project(G, target, space="w+", steps=refine_steps, perceptual=perceptual, seed=seed).image(G)
            elif method == "encoder+projector":
                with torch.no_grad():
                    ws = encoder(target)
                img = project(G, target, space="w+", steps=refine_steps, init_ws=ws, perceptual=perceptual, seed=seed).image(G)
            else:
                tuned = pivotal_tuning(G, target, pivot_of(target), steps=pti_steps, perceptual=perceptual, cache=False, seed=seed)
                img = tuned.image()
            seconds += time.perf_counter() - start
            recon.append(img.detach())
            report(progress, method, (i + 1) / images.shape[0])
        recon = torch.cat(recon)                                                          # (B, 3, R, R)
        with torch.no_grad():
            dist = perceptual(recon, images).mean().item()
        rows.append({
            "method": method, "images": int(images.shape[0]),
            "psnr": float(np.mean(psnr(recon.cpu(), images.cpu()))), "ssim": float(np.mean(ssim(recon.cpu(), images.cpu()))),
            "perceptual": dist, "perceptual_kind": "LPIPS-VGG" if getattr(perceptual, "is_lpips", False) else type(perceptual).__name__,
            "seconds_per_image": seconds / images.shape[0],
        })
    return rows


def format_table(rows: list[dict]) -> str:
    """A markdown table of ``measure_inversion``'s rows."""
    lines = ["| method | images | PSNR (dB) | SSIM | perceptual | s / image |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['images']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['perceptual']:.4f} ({r['perceptual_kind']}) | {r['seconds_per_image']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    """``python -m talkinghead.inversion.measure``: measure a trained generator (and encoder) on prepared frames."""
    from talkinghead.data.datasets import FrameDataset
    from talkinghead.inversion.common import load_generator
    from talkinghead.inversion.encoder import load_encoder

    p = argparse.ArgumentParser(prog="python -m talkinghead.inversion.measure", description=main.__doc__)
    p.add_argument("--generator", required=True, help="StyleGAN2 weights (path or weights/ name)")
    p.add_argument("--encoder", default=None, help="encoder weights (train encoder --ship); omit for the projector only")
    p.add_argument("--data", required=True, help="prepared corpus at the generator's resolution")
    p.add_argument("--split", default="test")
    p.add_argument("--frames", type=int, default=16, help="frames measured, spread evenly over the split")
    p.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--refine-steps", type=int, default=100)
    p.add_argument("--pti-steps", type=int, default=350)
    p.add_argument("--perceptual", default="auto", choices=["auto", "lpips", "structural"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    args = p.parse_args(argv)

    G = load_generator(args.generator).to(args.device)
    encoder = load_encoder(args.encoder) if args.encoder else None
    frames = FrameDataset(args.data, args.split, seed=0, flip=False)
    picks = np.linspace(0, len(frames) - 1, min(args.frames, len(frames))).round().astype(int).tolist()
    images = frames[picks]["image"]
    rows = measure_inversion(G, encoder, images, methods=args.methods.split(",") if args.methods else None,
                             refine_steps=args.refine_steps, pti_steps=args.pti_steps, perceptual=args.perceptual,
                             progress=lambda stage, f: print(f"\r{stage}: {f:.0%}", end="", file=sys.stderr))
    print(file=sys.stderr)
    print(format_table(rows))
    if args.out:
        with open(args.out, "w") as f:
            json.dump({"generator": args.generator, "encoder": args.encoder, "data": args.data, "split": args.split,
                       "frames": picks, "rows": rows}, f, indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
