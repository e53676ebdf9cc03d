"""The ``synthgrid`` landmark network: 68 iBUG points on canonical SynthGRID crops, to measure generated frames.

Every frame a model generates is a canonical crop (``face.align``), so the whole image is the face and no detector
is needed. A compact residual encoder (He et al., 2016) with a feature pyramid (Lin et al., 2017) predicts one
heatmap per point at stride 4; the soft-argmax of each heatmap (integral regression, Sun et al., 2018) gives
differentiable, sub-pixel coordinates, trained with an L1 loss on the pixels against SynthGRID's exact landmarks.

Augmentations make it fit for measuring *generated* frames of *unseen* speakers: generated frames are softer and a
little off the canonical framing (affine jitter, Gaussian blur, down- and up-sampling, noise), and a held-out
speaker has other proportions and colours than the training ones (mirror images, aspect and colour jitter).

SynthGRID's jaw points (0–16) lie on the 3-D jaw line, a little inside the drawn face outline, so no image edge
marks them: the net infers them from the face's shape and they carry most of its error on held-out speakers. The
mouth and eyes, which the metrics use (LMD, EAR), are located from what is drawn.

Pixel convention: pixel ``i`` covers ``[i, i + 1)``, so a point at ``x`` in an S-pixel crop is at ``x * S' / S``
in the same crop resized to S' (the renderer's and ``face.align.warp``'s convention).

    model = LandmarkNet.from_pretrained()              # weights/landmarks_synthgrid.safetensors
    lmk = model.predict(frames)                       # uint8 (N, S, S, 3) or [-1, 1] (N, 3, S, S) -> (N, 68, 2)
    python -m talkinghead train landmarks --data data/prepared128 --steps 2000 --threads 1 --out weights
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config import PresetConfig

__all__ = [
    "WEIGHTS_NAME", "PRESETS", "MIRROR", "LandmarkNetConfig", "AugmentConfig", "LandmarkNet", "soft_argmax", "gaussian_blur", "augment",
    "landmark_loss", "heatmap_loss", "train", "evaluate", "add_train_landmarks_parser", "main_train_landmarks",
]

WEIGHTS_NAME = "landmarks_synthgrid.safetensors"
MOUTH = slice(48, 68)  # outer and inner lips (iBUG)
EYES = slice(36, 48)
# iBUG index of each point's mirror image (jaw, brows, nostrils, eyes and lips swap sides; the midline stays).
MIRROR = np.array(
    [*range(16, -1, -1), *range(26, 16, -1), 27, 28, 29, 30, *range(35, 30, -1), 45, 44, 43, 42, 47, 46, 39, 38, 37, 36, 41, 40,
     54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55, 64, 63, 62, 61, 60, 67, 66, 65]
)


# --------------------------------------------------------------------------- config


@dataclass(frozen=True)
class LandmarkNetConfig(PresetConfig):
    """Network shape. Presets: ``tiny`` (tests, 64 px) and ``synth128`` (the shipped network)."""

    KIND = "landmark-net"
    size: int = 128  # input crop width and height in pixels; predict() resizes other sizes to it
    widths: tuple[int, ...] = (24, 32, 64, 128)  # channels of the stem (stride 2), then one stage each (strides 4, 8, 16, …)
    blocks: int = 2  # residual blocks per stage
    head_width: int = 48  # channels of the feature pyramid that draws the heatmaps (at stride 4)
    n_points: int = 68  # iBUG 68


PRESETS = {
    "tiny": LandmarkNetConfig(size=64, widths=(8, 16, 16, 32), blocks=1, head_width=16),
    "synth128": LandmarkNetConfig(),
}
LandmarkNetConfig.PRESETS = PRESETS


@dataclass(frozen=True)
class AugmentConfig:
    """Training augmentations: the ways a generated frame differs from a rendered one, and an unseen speaker from
    the training speakers."""

    flip_p: float = 0.5  # probability of a mirror image (points renumbered): twice the identities to learn from
    shift: float = 4 / 128  # ± translation as a fraction of the crop size (±4 px at 128)
    scale: float = 0.05  # ± relative scale
    aspect: float = 0.05  # ± relative width against height: faces of other proportions than the training speakers
    rotate: float = 5.0  # ± rotation in degrees
    brightness: float = 0.15  # ± offset in [-1, 1] units
    contrast: float = 0.25  # ± relative contrast about the image mean
    colour: float = 0.2  # ± relative gain per channel: other skin tones
    blur_p: float = 0.5  # probability of a Gaussian blur …
    blur_sigma: float = 2.0  # … with sigma uniform in (0, blur_sigma] pixels at 128 (scaled with the size)
    resample_p: float = 0.2  # probability of down- then up-sampling by 1.5–3× (the softness of compression, upsampling)
    noise_p: float = 0.3  # probability of Gaussian noise …
    noise: float = 0.05  # … with standard deviation up to this, in [-1, 1] units


# --------------------------------------------------------------------------- network


class ResidualBlock(nn.Module):
    """Two 3×3 convolutions with batch norm, plus the input (a strided 1×1 projection where the shape changes)."""

    def __init__(self, in_channels: int, out_channels: int, *, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip = (
            nn.Identity()
            if stride == 1 and in_channels == out_channels
            else nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, stride, bias=False), nn.BatchNorm2d(out_channels))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(h)) + self.skip(x))


def soft_argmax(heatmaps: torch.Tensor, *, stride: float) -> torch.Tensor:
    """Expected position under each heatmap's softmax (integral regression).

    Args:
        heatmaps: (B, K, H, W) logits; cell (i, j) covers pixels [j·stride, (j+1)·stride) × [i·stride, (i+1)·stride).
    Returns:
        (B, K, 2) x, y in pixels.
    """
    B, K, H, W = heatmaps.shape
    prob = heatmaps.flatten(2).softmax(-1).view(B, K, H, W)
    xs = (torch.arange(W, device=heatmaps.device, dtype=prob.dtype) + 0.5) * stride
    ys = (torch.arange(H, device=heatmaps.device, dtype=prob.dtype) + 0.5) * stride
    x = (prob.sum(2) * xs).sum(-1)  # (B, K)
    y = (prob.sum(3) * ys).sum(-1)
    return torch.stack([x, y], -1)


class LandmarkNet(nn.Module):
    """Crop (B, 3, S, S) in [-1, 1] → 68 landmarks (B, 68, 2) in pixels of that crop."""

    def __init__(self, cfg: LandmarkNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        w = cfg.widths
        self.stem = nn.Sequential(nn.Conv2d(3, w[0], 3, 2, 1, bias=False), nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        self.stages = nn.ModuleList(
            nn.Sequential(ResidualBlock(w[i], w[i + 1], stride=2), *[ResidualBlock(w[i + 1], w[i + 1]) for _ in range(cfg.blocks - 1)])
            for i in range(len(w) - 1)
        )
        # Feature pyramid: coarse stages see the whole face (where is the jaw?), the stride-4 stage the fine detail.
        self.lateral = nn.ModuleList(nn.Conv2d(c, cfg.head_width, 1) for c in w[1:])
        self.head = nn.Sequential(
            nn.Conv2d(cfg.head_width, cfg.head_width, 3, 1, 1, bias=False),
            nn.BatchNorm2d(cfg.head_width),
            nn.ReLU(inplace=True),
            nn.Conv2d(cfg.head_width, cfg.n_points, 1),
        )

    def heatmaps(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) → (B, 68, S/4, S/4) heatmap logits."""
        h = self.stem(x)  # (B, w0, S/2, S/2)
        features = []
        for stage in self.stages:
            h = stage(h)
            features.append(h)  # strides 4, 8, 16, …
        p = self.lateral[-1](features[-1])
        for lateral, f in zip(self.lateral[-2::-1], features[-2::-1]):
            p = lateral(f) + F.interpolate(p, size=f.shape[-2:], mode="bilinear", align_corners=False)
        return self.head(p)  # (B, 68, S/4, S/4)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, S, S) in [-1, 1], S = cfg.size → (B, 68, 2) pixels."""
        heatmaps = self.heatmaps(x)
        return soft_argmax(heatmaps, stride=x.shape[-1] / heatmaps.shape[-1])

    @torch.inference_mode()
    def predict(self, frames: np.ndarray | torch.Tensor, *, batch_size: int = 64) -> np.ndarray:
        """Landmarks of square crops of any size, in eval mode, on the module's device.

        Args:
            frames: uint8 (N, S, S, 3) array, or float (N, 3, S, S) tensor in [-1, 1]. Crops of another size than
                ``cfg.size`` are resized to it (bilinear, antialiased) and the points scaled back.
        Returns:
            (N, 68, 2) float32 landmarks in pixels of the given frames.
        """
        from talkinghead.io import InputError

        if isinstance(frames, np.ndarray):
            if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
                raise InputError(f"frames must be uint8 (N, S, S, 3), got {frames.dtype} {frames.shape}: stack RGB crops into one array")
            height, width = frames.shape[1:3]
        elif isinstance(frames, torch.Tensor):
            if not frames.is_floating_point() or frames.ndim != 4 or frames.shape[1] != 3:
                raise InputError(f"frames must be float (N, 3, S, S) in [-1, 1], got {frames.dtype} {tuple(frames.shape)}")
            height, width = frames.shape[2:]
        else:
            raise InputError(f"frames must be a numpy uint8 array or a float tensor, got {type(frames).__name__}")
        if height != width:
            raise InputError(f"frames must be square canonical crops (face.align.warp), got {height}×{width}")
        size = width
        param = next(self.parameters())
        was_training = self.training
        self.eval()
        out = []
        try:
            for start in range(0, len(frames), batch_size):
                batch = frames[start : start + batch_size]
                if isinstance(batch, np.ndarray):
                    x = torch.from_numpy(np.array(batch)).to(param.device)  # a copy: memmaps are read-only
                    x = x.permute(0, 3, 1, 2).to(param.dtype) / 127.5 - 1
                else:
                    x = batch.to(param.device, param.dtype)
                if size != self.cfg.size:
                    x = F.interpolate(x, size=(self.cfg.size, self.cfg.size), mode="bilinear", antialias=True, align_corners=False)
                out.append(self(x).float().cpu() * (size / self.cfg.size))
        finally:
            self.train(was_training)
        if not out:
            return np.zeros((0, self.cfg.n_points, 2), np.float32)
        return torch.cat(out).numpy()

    @classmethod
    def from_pretrained(
        cls,
        name: str = WEIGHTS_NAME,
        *,
        root: str | os.PathLike | None = None,
        device: str | torch.device | None = None,
    ) -> "LandmarkNet":
        """Load shipped weights (see ``talkinghead.hub``): the manifest entry's ``config`` names the preset; every
        tensor's shape is checked. Returns the network in eval mode on ``device`` (default CPU)."""
        from talkinghead.hub import WeightsError, load_state_strict, load_weights, read_manifest, weights_path

        path = weights_path(name, root=root)
        entry = read_manifest(path.parent).get(path.name)
        if not entry or "config" not in entry:
            raise WeightsError(f"{path} has no manifest entry with a 'config' preset: save it with talkinghead.hub.save_weights(..., config=...)")
        model = cls(LandmarkNetConfig.preset(entry["config"]))
        state = load_weights(str(path))
        load_state_strict(model, state, problem=f"{path} does not fit the {entry['config']!r} landmark net",
                          fix="the manifest's config and the file disagree; train or download them again")
        return model.to(device or "cpu").eval()


# --------------------------------------------------------------------------- augmentations


def gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """Blur each image with its own Gaussian.

    Args:
        images: (B, C, H, W).
        sigma: (B,) standard deviations in pixels; 0 leaves an image as it is.
    """
    B, C, H, W = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype, device=images.device)
    s = sigma.to(images).clamp_min(1e-3)[:, None]
    kernel = torch.exp(-0.5 * (x[None] / s) ** 2)  # (B, K)
    kernel = kernel / kernel.sum(1, keepdim=True)
    kernel = kernel.repeat_interleave(C, 0)  # (B·C, K): one separable kernel per image and channel
    h = F.pad(images.reshape(1, B * C, H, W), (radius, radius, radius, radius), mode="replicate")
    h = F.conv2d(h, kernel[:, None, None, :], groups=B * C)  # along x
    h = F.conv2d(h, kernel[:, None, :, None], groups=B * C)  # along y
    return h.view(B, C, H, W)


def augment(images: torch.Tensor, lmk: torch.Tensor, *, aug: AugmentConfig, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Random geometric and photometric changes, applied to the images and (geometry) to their landmarks alike.

    Args:
        images: (B, 3, S, S) in [-1, 1].
        lmk: (B, 68, 2) pixels.
    Returns:
        (images, lmk) augmented, same shapes.
    """
    B, _, S, _ = images.shape

    def uniform(*shape: int) -> torch.Tensor:  # in [-1, 1)
        return torch.rand(*shape, generator=generator) * 2 - 1

    def chance(p: float) -> torch.Tensor:  # (B,) 0/1
        return (torch.rand(B, generator=generator) < p).float()

    # 1. Mirror images: x -> S - x, and each point takes its mirror's number.
    flip = chance(aug.flip_p).bool()
    if flip.any():
        images = torch.where(flip[:, None, None, None], images.flip(-1), images)
        mirrored = lmk[:, MIRROR] * torch.tensor([-1.0, 1.0]) + torch.tensor([float(S), 0.0])
        lmk = torch.where(flip[:, None, None], mirrored, lmk)

    # 2. Small affine jitter, in grid_sample's normalised coordinates (-1 … 1 across the crop): p_out = A p_in + t,
    #    A = diag(scale_x, scale_y) · rotation.
    angle = uniform(B) * math.radians(aug.rotate)
    scale = (1 + uniform(B, 1) * aug.scale) * (1 + uniform(B, 2) * torch.tensor([aug.aspect, 0.0]))  # (B, 2)
    rotation = torch.stack([torch.cos(angle), -torch.sin(angle), torch.sin(angle), torch.cos(angle)], -1).view(B, 2, 2)
    A = scale[:, :, None] * rotation
    t = uniform(B, 2) * 2 * aug.shift
    A_inv = rotation.transpose(1, 2) / scale[:, None, :]
    theta = torch.cat([A_inv, -(A_inv @ t[:, :, None])], 2)  # (B, 2, 3): output → input, what affine_grid wants
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    images = F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)
    lmk = ((lmk * (2 / S) - 1) @ A.transpose(1, 2) + t[:, None, :] + 1) * (S / 2)

    # 3. Colour: contrast about the mean, brightness, per-channel gain.
    mean = images.mean((1, 2, 3), keepdim=True)
    images = (images - mean) * (1 + aug.contrast * uniform(B, 1, 1, 1)) + mean + aug.brightness * uniform(B, 1, 1, 1)
    images = (images + 1) * (1 + aug.colour * uniform(B, 3, 1, 1)) - 1

    # 4. Softness: Gaussian blur, and down- then up-sampling for some.
    sigma = chance(aug.blur_p) * torch.rand(B, generator=generator) * aug.blur_sigma * S / 128
    if sigma.max() > 0:
        images = gaussian_blur(images, sigma)
    soft = chance(aug.resample_p).bool()
    if soft.any():
        factor = 1.5 + 1.5 * float(torch.rand(1, generator=generator))
        small = F.interpolate(images[soft], size=max(8, round(S / factor)), mode="bilinear", antialias=True, align_corners=False)
        images[soft] = F.interpolate(small, size=S, mode="bilinear", align_corners=False)

    # 5. Sensor-like noise.
    images = images + chance(aug.noise_p)[:, None, None, None] * aug.noise * torch.rand(B, 1, 1, 1, generator=generator) * torch.randn(images.shape, generator=generator)
    return images.clamp(-1, 1), lmk


# --------------------------------------------------------------------------- training and evaluation


def landmark_loss(pred: torch.Tensor, lmk: torch.Tensor) -> torch.Tensor:
    """L1 distance in pixels between (B, 68, 2) predictions and targets (robust, and sharp near zero)."""
    return (pred - lmk).abs().mean()


def heatmap_loss(heatmaps: torch.Tensor, lmk: torch.Tensor, *, stride: float, sigma: float = 1.0) -> torch.Tensor:
    """KL divergence from a Gaussian around each true point to the heatmap's softmax (Nibali et al., 2018).

    Soft-argmax alone lets a heatmap spread over the whole face and act as a global regressor, which learns the
    average eye and misses a blink; this term keeps each heatmap a local peak, decided by what is drawn there.

    Args:
        heatmaps: (B, K, H, W) logits; cell (i, j) covers pixels [j·stride, (j+1)·stride) × [i·stride, (i+1)·stride).
        lmk: (B, K, 2) true points in pixels.
        sigma: the Gaussian's standard deviation in heatmap cells.
    """
    B, K, H, W = heatmaps.shape
    xs = torch.arange(W, device=heatmaps.device, dtype=heatmaps.dtype) + 0.5  # cell centres, in cells
    ys = torch.arange(H, device=heatmaps.device, dtype=heatmaps.dtype) + 0.5
    gx = -((xs - lmk[..., 0:1] / stride) ** 2) / (2 * sigma**2)  # (B, K, W)
    gy = -((ys - lmk[..., 1:2] / stride) ** 2) / (2 * sigma**2)  # (B, K, H)
    log_target = (gy[..., :, None] + gx[..., None, :]).flatten(2).log_softmax(-1)  # (B, K, H·W)
    log_prob = heatmaps.flatten(2).log_softmax(-1)
    return (log_target.exp() * (log_target - log_prob)).sum(-1).mean()


def _split_indices(corpus, split: str) -> np.ndarray:
    """Frame indices of every clip of ``split`` in a PreparedCorpus."""
    from talkinghead.io import InputError

    clips = corpus.clips(split)
    if not clips:
        raise InputError(f"{corpus.root} has no {split!r} clips: prepare a corpus with {split} speakers")
    return np.concatenate([np.arange(c["frame_start"], c["frame_start"] + c["n_frames"]) for c in clips])


def _sampling_probabilities(corpus, split: str, *, blink_share: float) -> np.ndarray:
    """Per-frame draw probabilities over ``_split_indices(corpus, split)``: ``blink_share`` of the mass on frames
    whose eyes are closing (EAR < 0.75 × the clip's median), the rest on the others (uniform within each)."""
    from talkinghead.face.landmarks import eye_aspect_ratio

    closing = []
    for clip in corpus.clips(split):
        ear = eye_aspect_ratio(corpus.clip_landmarks(clip))
        closing.append(ear < 0.75 * np.median(ear))
    closing = np.concatenate(closing)
    if not closing.any() or closing.all():
        return np.full(len(closing), 1.0 / len(closing))
    return np.where(closing, blink_share / closing.sum(), (1 - blink_share) / (~closing).sum())


def _to_images(frames: np.ndarray) -> torch.Tensor:
    """uint8 (B, S, S, 3) → float (B, 3, S, S) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1


def train(
    prepared_dir: str | os.PathLike,
    *,
    cfg: LandmarkNetConfig,
    steps: int,
    batch_size: int = 32,
    lr: float = 3e-3,
    seed: int = 0,
    log_every: int = 50,
    blink_share: float = 0.25,
    heatmap_weight: float = 1.0,
    aug: AugmentConfig = AugmentConfig(),
    device: str | torch.device = "cpu",
    init: LandmarkNet | None = None,
    callback: Callable[[dict], None] | None = None,
) -> tuple[LandmarkNet, list[dict]]:
    """Train a landmark net on the train split of a prepared SynthGRID corpus (``talkinghead.data.prepare``).

    Random batches of frames with their exact landmarks, augmented (``augment``); loss: L1 on the points plus
    ``heatmap_loss``; AdamW with a one-cycle schedule.
    Closed and closing eyes are rare (blinks fill ~5 % of frames) and move only a few points by a few pixels, so
    drawn uniformly they barely count in the loss and the net learns open eyes only: ``blink_share`` of the draws
    go to frames whose eye aspect ratio is below 0.75 × its clip's median.

    Args:
        prepared_dir: a prepared folder whose crop size equals ``cfg.size``.
        steps, batch_size, lr, seed: the optimisation (same seed, same run on the same machine).
        log_every: steps between history rows.
        blink_share: fraction of the frames drawn from those with closing or closed eyes.
        heatmap_weight: weight of ``heatmap_loss`` beside the L1 loss on the points.
        init: fine-tune this net (its config must equal ``cfg``) instead of starting from random weights.
        callback: called with each history row ``{step, loss, px, lr, seconds}`` (loss: the total; px: mean point
            distance on the augmented training batches since the last row).
    Returns:
        (model in eval mode, history rows).
    """
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.io import InputError

    corpus = PreparedCorpus.open(prepared_dir)
    if corpus.meta["size"] != cfg.size:
        raise InputError(f"{prepared_dir} has {corpus.meta['size']} px crops but the net takes {cfg.size} px: prepare with --size {cfg.size} or pick another preset")
    indices = _split_indices(corpus, "train")
    probs = _sampling_probabilities(corpus, "train", blink_share=blink_share)
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    if init is not None and init.cfg != cfg:
        raise ValueError(f"init net has config {init.cfg}, not {cfg}")
    model = (init if init is not None else LandmarkNet(cfg)).to(device).train()
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    history, losses, errors = [], [], []
    start = time.perf_counter()
    for step in range(1, steps + 1):
        batch = np.sort(rng.choice(indices, size=min(batch_size, len(indices)), replace=False, p=probs))  # sorted: sequential memmap reads
        images, lmk = augment(_to_images(corpus.frames[batch]), torch.from_numpy(corpus.landmarks[batch].copy()), aug=aug, generator=generator)
        images, lmk = images.to(device), lmk.to(device)
        heatmaps = model.heatmaps(images)  # (B, 68, S/4, S/4)
        stride = cfg.size / heatmaps.shape[-1]
        pred = soft_argmax(heatmaps, stride=stride)
        loss = landmark_loss(pred, lmk) + heatmap_weight * heatmap_loss(heatmaps, lmk, stride=stride)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        errors.append((pred.detach() - lmk).norm(dim=-1).mean().item())
        if step % log_every == 0 or step == steps:
            row = {"step": step, "loss": float(np.mean(losses)), "px": float(np.mean(errors)), "lr": sched.get_last_lr()[0],
                   "seconds": time.perf_counter() - start}
            history.append(row)
            losses, errors = [], []
            if callback is not None:
                callback(row)
    return model.eval(), history


def evaluate(
    model: LandmarkNet,
    prepared_dir: str | os.PathLike,
    split: str,
    *,
    blur_sigma: float = 0.0,
    max_frames: int | None = None,
    batch_size: int = 64,
) -> dict[str, float]:
    """Landmark error on one split of a prepared corpus, in pixels of its crops.

    Args:
        blur_sigma: Gaussian blur (pixels) applied to the frames first, as a stand-in for softer generated frames.
        max_frames: evaluate on this many frames evenly spread over the split (all when None).
    Returns:
        ``mean_px`` (mean point distance), ``median_px`` and ``p95_px`` (of the per-frame mean distances),
        ``mouth_px`` (points 48–67), ``eyes_px`` (36–47), ``ear_r`` and ``mouth_open_r`` (Pearson correlation of
        the predicted and true eye aspect ratio and mouth opening over the frames: what blink and LMD metrics see),
        ``frames``.
    """
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.face.landmarks import eye_aspect_ratio, mouth_opening

    corpus = PreparedCorpus.open(prepared_dir)
    indices = _split_indices(corpus, split)
    if max_frames is not None and max_frames < len(indices):
        indices = indices[np.linspace(0, len(indices) - 1, max_frames).round().astype(int)]
    dist, preds = [], []
    for start in range(0, len(indices), batch_size):
        batch = indices[start : start + batch_size]
        images = _to_images(corpus.frames[batch])
        if blur_sigma > 0:
            images = gaussian_blur(images, torch.full((len(batch),), float(blur_sigma)))
        pred = model.predict(images, batch_size=batch_size)
        preds.append(pred)
        dist.append(np.linalg.norm(pred - corpus.landmarks[batch], axis=-1))  # (b, 68)
    dist, pred, truth = np.concatenate(dist), np.concatenate(preds), corpus.landmarks[indices]
    per_frame = dist.mean(1)
    return {
        "mean_px": float(dist.mean()),
        "median_px": float(np.median(per_frame)),
        "p95_px": float(np.percentile(per_frame, 95)),
        "mouth_px": float(dist[:, MOUTH].mean()),
        "eyes_px": float(dist[:, EYES].mean()),
        "ear_r": float(np.corrcoef(eye_aspect_ratio(pred), eye_aspect_ratio(truth))[0, 1]),
        "mouth_open_r": float(np.corrcoef(mouth_opening(pred), mouth_opening(truth))[0, 1]),
        "frames": int(len(dist)),
    }


# --------------------------------------------------------------------------- command line


def add_train_landmarks_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``landmarks`` to the subparsers of ``python -m talkinghead train``."""
    p = sub.add_parser("landmarks", help="train the synthgrid landmark net on a prepared SynthGRID corpus and ship it")
    p.add_argument("--data", required=True, help="prepared corpus (from `prepare`) with train, val and test speakers")
    p.add_argument("--out", default=None, help="weights folder (default: the project's weights/)")
    p.add_argument("--name", default=WEIGHTS_NAME, help="weights file name")
    p.add_argument("--config", default="synth128", choices=sorted(PRESETS), help="network preset")
    p.add_argument("--steps", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=3e-3, help="peak learning rate (one-cycle)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--blink-share", type=float, default=0.25, help="fraction of training frames drawn from blinks")
    p.add_argument("--heatmap-weight", type=float, default=1.0, help="weight of the heatmap (KL) term beside the L1 loss")
    p.add_argument("--init", default=None, help="fine-tune from these weights (a .safetensors path) instead of random ones")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--eval-frames", type=int, default=None, help="evaluate on this many frames per split (default: all)")
    p.add_argument("--log-every", type=int, default=100)
    p.set_defaults(func=main_train_landmarks)
    return p


def _data_description(corpus, prepared_dir: str | os.PathLike) -> str:
    """'SynthGRID seed 0, 128 px crops: train s1–s18 (43,921 frames), val …, test …' for the manifest."""
    import json

    source = Path(corpus.meta["source"]) / "corpus.json"
    seed = json.loads(source.read_text()).get("seed", "?") if source.exists() else "?"
    parts = []
    for split in ("train", "val", "test"):
        clips = corpus.clips(split)
        speakers = sorted({c["speaker"] for c in clips}, key=lambda s: (len(s), s))
        if speakers:
            parts.append(f"{split} {speakers[0]}–{speakers[-1]} ({len(speakers)} speakers, {sum(c['n_frames'] for c in clips):,} frames)")
    return f"SynthGRID seed {seed}, {corpus.meta['size']} px crops ({Path(prepared_dir).name}): " + "; ".join(parts)


def main_train_landmarks(args: argparse.Namespace) -> int:
    """``python -m talkinghead train landmarks``: train, measure on val and test speakers (clean and blurred),
    and write the weights with their manifest entry."""
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.hub import save_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = LandmarkNetConfig.preset(args.config)
    corpus = PreparedCorpus.open(args.data)

    def report(row: dict) -> None:
        print(f"step {row['step']:6d}  loss {row['loss']:.3f}  train px {row['px']:.3f}  lr {row['lr']:.2e}  {row['seconds']:.0f} s", flush=True)

    init, init_steps = None, 0
    if args.init:
        from talkinghead.hub import read_manifest

        init_path = Path(args.init)
        init = LandmarkNet.from_pretrained(init_path.name, root=init_path.parent)
        if init.cfg != cfg:
            raise SystemExit(f"--init {args.init} is a {init.cfg} net, not --config {args.config}")
        init_steps = int(read_manifest(init_path.parent).get(init_path.name, {}).get("steps", 0))
    model, history = train(args.data, cfg=cfg, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                           log_every=args.log_every, blink_share=args.blink_share, heatmap_weight=args.heatmap_weight,
                           init=init, callback=report)
    seconds = history[-1]["seconds"]
    metrics: dict[str, object] = {}
    for split in ("val", "test"):
        if not corpus.clips(split):
            continue
        for label, sigma in ((split, 0.0), (f"{split}_blur1.5", 1.5)):
            metrics[label] = {k: round(v, 3) if isinstance(v, float) else v
                              for k, v in evaluate(model, args.data, split, blur_sigma=sigma, max_frames=args.eval_frames).items()}
            print(f"{label:14s} " + "  ".join(f"{k} {v}" for k, v in metrics[label].items()), flush=True)
    # The floor any net must beat: every frame given the mean training shape.
    train_mean = corpus.landmarks[_split_indices(corpus, "train")].mean(0)
    held = corpus.landmarks[_split_indices(corpus, "test" if corpus.clips("test") else "val")]
    metrics["mean_shape_baseline_px"] = round(float(np.linalg.norm(held - train_mean, axis=-1).mean()), 3)
    metrics["train_px_last"] = round(history[-1]["px"], 3)
    path = save_weights(
        model.state_dict(), args.name, root=args.out,
        config=args.config,
        data=_data_description(corpus, args.data),
        steps=init_steps + args.steps,
        metrics=metrics,
        training={"init": f"{Path(args.init).name} ({init_steps} steps), fine-tuned {args.steps} steps" if args.init else None,
                  "batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "blink_share": args.blink_share,
                  "heatmap_weight": args.heatmap_weight, "seconds": round(seconds, 1),
                  "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in model.parameters())},
    )
    print(f"trained {args.steps} steps in {seconds:.0f} s -> {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0
