"""The SDA / RSDGAN pipeline (Vougioukas et al., BMVC 2018 / IJCV 2019): ``load_pipeline("sda")``."""
from __future__ import annotations

import os
from collections.abc import Iterator

import numpy as np
import torch

from talkinghead.pipelines.base import Progress, TalkingHeadPipeline

__all__ = ["SDAPipeline"]


class SDAPipeline(TalkingHeadPipeline):
    """Photo + speech → video with the Temporal GAN; the generator runs in chunks of ``chunk`` frames with its
    recurrent state carried, so any length streams in bounded memory."""

    name = "sda"
    chunk = 75  # frames per generator call (3 s)

    def __init__(self, G, *, card: dict | None = None, **kw):
        super().__init__(**kw)
        self.G = G.to(self.device).eval()
        self.crop_size = G.cfg.height
        self.card = card or {}

    @classmethod
    def from_pretrained(cls, name_or_path: str | os.PathLike = "sda_synthgrid.safetensors", *, device: str = "cpu", **kw) -> "SDAPipeline":
        """Weights by name (``weights/`` first, then the Hub) or a path to a ``.safetensors`` file with its manifest."""
        from pathlib import Path

        from talkinghead.hub import read_manifest
        from talkinghead.models.sda import load_generator

        path = Path(name_or_path)
        root = path.parent if path.suffix == ".safetensors" and str(path.parent) not in ("", ".") else None
        G = load_generator(path.name, root=root, device=device)
        entry = read_manifest(root).get(path.name, {}) if root is not None else read_manifest().get(path.name, {})
        card = {
            "title": "Temporal GAN (SDA / RSDGAN)",
            "paper": "Vougioukas, Petridis, Pantic: Realistic Speech-Driven Facial Animation with GANs (IJCV 2019); BMVC 2018",
            "data": entry.get("data", "unknown"),
            "steps": entry.get("steps"),
            "metrics": entry.get("metrics", {}),
            "controls": ["seed"],
        }
        return cls(G, card=card, device=device, **kw)

    @torch.no_grad()
    def generate_crops(self, crop: np.ndarray, audio: np.ndarray, n_frames: int, *, seed: int,
                       progress: Progress | None = None, **controls) -> Iterator[np.ndarray]:
        from talkinghead.models.sda import stream

        if controls:
            raise TypeError(f"the sda pipeline has no control(s) {', '.join(sorted(controls))}: it takes seed only")
        done = 0
        for frames in stream(self.G, crop, audio, n_frames=n_frames, seed=seed, chunk=self.chunk):
            done += len(frames)
            if progress:
                progress("generating frames", done / n_frames)
            yield ((frames.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
