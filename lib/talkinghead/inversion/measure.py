"""Measure inversion: reconstruction quality (PSNR, SSIM from ``talkinghead.metrics.image``, the perceptual distance)
and seconds per image for each method, image by image:

    mean-w              the mean face (G at the mean w), for every image: the baseline that inverts nothing
    encoder             one encoder pass
    projector           the projector from the mean w (``refine_steps`` steps)
    encoder+projector   the encoder's ws refined by the projector
    pti                 the pivot of encoder+projector (or of the projector alone), then pivotal tuning; its time
                        includes finding the pivot

Each row also holds the metrics per group of images (``groups``: one name per image, e.g. its speaker), so that a
claim such as "PTI improves on the encoder for every held-out identity" is checked identity by identity
(``improves_everywhere``).

Command line: ``--per-speaker`` frames of every speaker of the split, plus (``--astronaut``) the face of
scikit-image's astronaut photograph, cropped as the pipelines crop a photo (dlib landmarks, canonical alignment):

    python -m talkinghead.inversion.measure --generator stylegan2_synthgrid.safetensors \\
        --encoder encoder_synthgrid.safetensors --data data/prepared128 --split test --per-speaker 4 --astronaut \\
        --out docs/inversion_test.json
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

__all__ = ["METHODS", "measure_inversion", "format_table", "format_group_table", "improves_everywhere", "astronaut_crop", "main"]

METHODS = ("mean-w", "encoder", "projector", "encoder+projector", "pti")


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
    groups: Sequence[str] | None = None,
    pti_alpha: float | None = None,
    pti_rank: int | None = None,
    reconstructions: dict[str, torch.Tensor] | None = None,
) -> list[dict]:
    """One row per method: ``{"method", "images", "psnr", "ssim", "perceptual", "perceptual_kind",
    "seconds_per_image", "groups"}``, the metrics averaged over ``images``; ``groups`` maps each group name to
    ``{"images", "psnr", "ssim", "perceptual"}`` averaged over its images.

    Args:
        G: the StyleGAN2 generator. encoder: its encoder, or None (then no encoder rows).
        images: (B, 3, R, R) in [-1, 1] at G's resolution, measured one at a time.
        methods: a subset of ``METHODS`` (default: all that the arguments allow).
        refine_steps: projector steps. pti_steps: pivotal-tuning steps (paper: 350).
        perceptual: the distance used by the projector, PTI and the table (``perceptual.load_perceptual`` kinds).
        progress: ``progress(method, fraction of its images)``.
        groups: one name per image (default: all in group "all").
        pti_alpha: PTI's locality distance α in W; None: the spread σ_w of G's W (``common.w_stats``), the
            scale-free choice for a generator that is not FFHQ's (the paper's 30 is in FFHQ's W units).
        pti_rank: None tunes every synthesis weight (the paper); r tunes low-rank deltas of rank r.
        reconstructions: if a dict is given, it receives each method's images (B, 3, R, R) in [-1, 1].
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
    groups = ["all"] * images.shape[0] if groups is None else [str(g) for g in groups]
    if len(groups) != images.shape[0]:
        raise ValueError(f"groups names {len(groups)} images, but there are {images.shape[0]}")

    if ("pti" in methods and pti_alpha is None) or "mean-w" in methods:
        from talkinghead.inversion.common import w_stats

        w_mean, w_spread = w_stats(G)
        pti_alpha = float(w_spread) if pti_alpha is None else pti_alpha

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
            if method == "mean-w":
                with torch.no_grad():
                    img = synthesize(G, w_mean.to(device)[None, None].expand(1, G.num_ws, -1))
            elif method == "encoder":
                with torch.no_grad():
                    img = synthesize(G, encoder(target))
            elif method == "projector":
                img = project(G, target, space="w+", steps=refine_steps, perceptual=perceptual, seed=seed).image(G)
            elif method == "encoder+projector":
                with torch.no_grad():
                    ws = encoder(target)
                img = project(G, target, space="w+", steps=refine_steps, init_ws=ws, perceptual=perceptual, seed=seed).image(G)
            else:
                tuned = pivotal_tuning(G, target, pivot_of(target), steps=pti_steps, locality_alpha=pti_alpha, rank=pti_rank,
                                       perceptual=perceptual, cache=False, seed=seed)
                img = tuned.image()
            seconds += time.perf_counter() - start
            recon.append(img.detach())
            report(progress, method, (i + 1) / images.shape[0])
        recon = torch.cat(recon)                                                          # (B, 3, R, R)
        if reconstructions is not None:
            reconstructions[method] = recon.cpu()
        with torch.no_grad():
            dist = perceptual(recon, images).reshape(-1).cpu().numpy()                   # (B,)
        per_image = {"psnr": np.asarray(psnr(recon.cpu(), images.cpu())).reshape(-1),
                     "ssim": np.asarray(ssim(recon.cpu(), images.cpu())).reshape(-1), "perceptual": dist}
        by_group = {}
        for name in dict.fromkeys(groups):
            mask = np.array([g == name for g in groups])
            by_group[name] = {"images": int(mask.sum()), **{k: float(v[mask].mean()) for k, v in per_image.items()}}
        rows.append({
            "method": method, "images": int(images.shape[0]),
            **{k: float(v.mean()) for k, v in per_image.items()},
            "perceptual_kind": "LPIPS-VGG" if getattr(perceptual, "is_lpips", False) else type(perceptual).__name__,
            "seconds_per_image": seconds / images.shape[0], "groups": by_group,
            **({"pti_alpha": pti_alpha, "pti_rank": pti_rank} if method == "pti" else {}),
        })
    return rows


def improves_everywhere(rows: list[dict], better: str = "pti", than: str = "encoder") -> dict[str, bool]:
    """For each group: does method ``better`` beat ``than`` on PSNR, SSIM and the perceptual distance at once?"""
    a = next(r for r in rows if r["method"] == better)["groups"]
    b = next(r for r in rows if r["method"] == than)["groups"]
    return {g: a[g]["psnr"] > b[g]["psnr"] and a[g]["ssim"] > b[g]["ssim"] and a[g]["perceptual"] < b[g]["perceptual"]
            for g in a}


def astronaut_crop(size: int = 128) -> np.ndarray:
    """The face of scikit-image's astronaut photograph as a (size, size, 3) uint8 crop, aligned as the pipelines
    align a photo (dlib's 68 landmarks, ``face.align.estimate_alignment`` with no margin)."""
    import skimage.data

    from talkinghead.face.align import estimate_alignment, warp
    from talkinghead.face.detect import detect_landmarks

    photo = skimage.data.astronaut()
    return warp(photo, estimate_alignment(detect_landmarks(photo).lmk, size=size))


def format_table(rows: list[dict]) -> str:
    """A markdown table of ``measure_inversion``'s rows."""
    lines = ["| method | images | PSNR (dB) | SSIM | perceptual | s / image |", "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['method']} | {r['images']} | {r['psnr']:.2f} | {r['ssim']:.4f} | "
                     f"{r['perceptual']:.4f} ({r['perceptual_kind']}) | {r['seconds_per_image']:.3f} |")
    return "\n".join(lines)


def format_group_table(rows: list[dict]) -> str:
    """A markdown table of PSNR / SSIM / perceptual distance by group (rows) and method (columns)."""
    names = list(rows[0]["groups"])
    lines = ["| group | images | " + " | ".join(r["method"] for r in rows) + " |", "|---|---|" + "---|" * len(rows)]
    for g in names:
        cells = [f"{r['groups'][g]['psnr']:.2f} / {r['groups'][g]['ssim']:.3f} / {r['groups'][g]['perceptual']:.3f}" for r in rows]
        lines.append(f"| {g} | {rows[0]['groups'][g]['images']} | " + " | ".join(cells) + " |")
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
    p.add_argument("--per-speaker", type=int, default=0, metavar="K",
                   help="instead of --frames: K frames of every speaker of the split, spread over its clips")
    p.add_argument("--astronaut", action="store_true", help="add the face of scikit-image's astronaut photograph")
    p.add_argument("--methods", default=None, help=f"comma-separated subset of {','.join(METHODS)}")
    p.add_argument("--refine-steps", type=int, default=100)
    p.add_argument("--pti-steps", type=int, default=350)
    p.add_argument("--pti-rank", type=int, default=None, help="low-rank PTI deltas of this rank (default: full tuning)")
    p.add_argument("--perceptual", default="auto", choices=["auto", "lpips", "structural"])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None, help="write the rows as JSON here")
    p.add_argument("--picture", default=None, help="write a .png here: one row per image, the target then each method")
    args = p.parse_args(argv)

    G = load_generator(args.generator).to(args.device)
    encoder = load_encoder(args.encoder) if args.encoder else None
    frames = FrameDataset(args.data, args.split, seed=0, flip=False)
    speakers = np.concatenate([[c["speaker"]] * c["n_frames"] for c in frames.data.clips(args.split)])  # (N,)
    if args.per_speaker > 0:
        picks = [int(i) for s in dict.fromkeys(speakers.tolist()) for i in
                 np.flatnonzero(speakers == s)[np.linspace(0, (speakers == s).sum() - 1, args.per_speaker).round().astype(int)]]
    else:
        picks = np.linspace(0, len(frames) - 1, min(args.frames, len(frames))).round().astype(int).tolist()
    images, groups = frames[picks]["image"], [str(speakers[i]) for i in picks]
    if args.astronaut:
        from talkinghead.inversion.api import to_tensor

        images = torch.cat([images, to_tensor(astronaut_crop(G.img_resolution))[None]])
        groups.append("astronaut")
    recon: dict[str, torch.Tensor] = {}
    rows = measure_inversion(G, encoder, images, methods=args.methods.split(",") if args.methods else None,
                             reconstructions=recon,
                             refine_steps=args.refine_steps, pti_steps=args.pti_steps, pti_rank=args.pti_rank,
                             perceptual=args.perceptual,
                             progress=lambda stage, f: print(f"\r{stage}: {f:.0%}", end="", file=sys.stderr),
                             groups=groups)
    print(file=sys.stderr)
    print(format_table(rows))
    print()
    print("PSNR (dB) / SSIM / perceptual by group:")
    print(format_group_table(rows))
    verdict = improves_everywhere(rows) if {"pti", "encoder"} <= {r["method"] for r in rows} else None
    if verdict is not None:
        print(f"PTI better than the encoder on PSNR, SSIM and perceptual in every group: {all(verdict.values())} {verdict}")
    if args.picture:
        from talkinghead.stylegan2.quality import to_uint8, write_grid

        columns = [images.cpu()] + [recon[r["method"]] for r in rows]
        tiles = torch.stack(columns, dim=1).flatten(0, 1)                            # (B · (1 + methods), 3, R, R)
        write_grid(args.picture, to_uint8(tiles), columns=len(columns))
        print(f"wrote {args.picture}: columns target, {', '.join(r['method'] for r in rows)}")
    if args.out:
        from talkinghead.io import write_text_atomic

        write_text_atomic(args.out, json.dumps({
            "generator": args.generator, "encoder": args.encoder, "data": args.data, "split": args.split,
            "frames": picks, "groups": groups, "refine_steps": args.refine_steps, "pti_steps": args.pti_steps,
            "device": args.device, "torch_threads": torch.get_num_threads(), "rows": rows,
            "pti_improves_everywhere": verdict}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
