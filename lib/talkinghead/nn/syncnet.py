"""SyncNet: does this mouth move with this sound? (Chung & Zisserman, "Out of time: automated lip sync in the wild", 2016)

Two towers map 0.2 s of video and 0.2 s of audio into one embedding space where synced pairs are close:

* the **video tower** sees 5 consecutive frames (centred on frame ``t``) of the lower half of the canonical face crop
  (rows S/2 … S; it keeps the central half of the width, mouth and jaw), in grey levels, stacked on the channel axis
  (the paper's early fusion), shrunk by area averaging to ``cfg.video_size`` and standardised per window;
* the **audio tower** sees the 13 × 20 MFCC window centred on frame ``t`` (``audio.features.mfcc_windows``, 100 Hz).

Both end in an L2-normalised embedding, so distances lie in [0, 2] (cosine similarity = 1 − d²/2).

Training (``train``): each step takes ``batch_size`` clips of SynthGRID *train* speakers and a span of
``span`` consecutive windows in each. For the video window at frame ``t``, the genuine audio is the window at ``t``;
the negatives are the same clip's audio at ``t + δ`` for 2 ≤ |δ| ≤ ``max_shift`` (±1 is left out: the mouth barely
moves in 40 ms, so those are neither clearly true nor false) and the other clips' audio at the same position. The
loss is the sum of

* the paper's **contrastive loss** ``mean_pos d² + mean_neg max(margin − d, 0)²`` (genuine and shifted pairs weighted
  equally, since there are ~30 times more negatives), and
* a **cross-entropy over the candidate offsets** (the multi-way matching of Chung et al., "Perfect match", ICASSP
  2019): a softmax over ``ce_scale · cos`` picks the genuine audio among the shifted ones — it trains the very
  decision the offset search makes. (The shipped weights use both, weight 1 each; the contrastive loss alone was
  not tried on our CPU budget, set ``ce_weight=0`` for the paper's objective.)

Augmentations (one draw per clip span, shared by its frames, as a generated clip is consistently soft or shifted):
a small similarity jitter, Gaussian blur and noise, so the network also judges generated frames, which are blurrier
than rendered ones (brightness and contrast need none: each window is standardised).

Choices the paper left open, and ours: grey levels at 48×48 (``synth128``: the central 64×64 of the lower half of a
128 crop) instead of 111×111, small enough to train on a CPU; per-window standardisation of the grey levels;
BatchNorm'd 3×3 convolutions with stride instead of the paper's VGG-M (5×5/7×7 kernels, max-pooling); 128-d
normalised embeddings instead of 256-d raw ones; the MFCC are divided by 100 and then normalised by a BatchNorm
without affine parameters (learnt per-coefficient mean and variance; the division keeps the running variance within
float16 range in the shipped weights).

    net = SyncNet.from_pretrained()                     # weights/syncnet_synthgrid.safetensors
    v_emb, a_emb = net(video, mfcc)                     # (B, 5, 3, S/2, S) in [-1, 1], (B, 13, 20) -> (B, D), (B, D)
    talkinghead.metrics.sync.sync_scores(net, frames, audio)    # AV offset, LSE-D, LSE-C of a clip
    python -m talkinghead train syncnet --data data/prepared128 --steps 700 --threads 2   # the shipped weights, ~12 min on 2 cores
"""
from __future__ import annotations

import argparse
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.audio.features import mfcc_windows
from talkinghead.config import PresetConfig
from talkinghead.metrics.sync import VIDEO_WINDOW, lower_half, shift_audio, sync_scores

__all__ = [
    "WEIGHTS_NAME", "SyncNetConfig", "TrainConfig", "SyncNet", "sync_loss", "augment", "train", "evaluate",
    "add_train_syncnet_parser", "main_train_syncnet",
]

WEIGHTS_NAME = "syncnet_synthgrid.safetensors"
N_MFCC, MFCC_STEPS = 13, 20  # 0.2 s of 13 MFCC at 100 Hz, the paper's audio input
MFCC_SCALE = 100.0  # MFCC values reach ±900 (digital silence): scaled so float16 running stats stay finite
_LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights of R, G, B


# --------------------------------------------------------------------------- configs


@dataclass(frozen=True)
class SyncNetConfig(PresetConfig):
    """Network shape. Presets: ``tiny`` (tests) and ``synth128`` (the shipped network, 128 px SynthGRID crops)."""

    KIND = "SyncNet"
    crop_width: float = 0.5  # central fraction of the lower half's width kept: mouth and jaw (the sides are cheek and background)
    video_size: tuple[int, int] = (48, 48)  # (height, width) that crop is area-resized to
    video_widths: tuple[int, ...] = (16, 32, 64, 96)  # conv channels: one at full size, then one per stride-2 stage
    audio_widths: tuple[int, int, int] = (16, 32, 64)  # conv channels at 13×20, at 6×10 and at 3×5
    hidden: int = 256  # width of each tower's fully connected layer
    embed_dim: int = 128  # embedding size (L2-normalised)

    def __post_init__(self) -> None:
        stride = 2 ** (len(self.video_widths) - 1)
        if any(s % stride for s in self.video_size):
            raise ValueError(f"video_size {self.video_size} must be divisible by {stride} (2 ** stride-2 stages)")



PRESETS = {
    "tiny": SyncNetConfig(video_size=(16, 16), video_widths=(8, 16, 16), audio_widths=(8, 16, 16), hidden=32, embed_dim=16),
    "synth128": SyncNetConfig(),
}
SyncNetConfig.PRESETS = PRESETS


@dataclass(frozen=True)
class TrainConfig:
    """How ``train`` samples pairs, weighs its losses and augments the video."""

    span: int = 24  # consecutive video windows taken from each clip of a batch
    max_shift: int = 15  # negatives: the same clip's audio shifted by 2 … max_shift frames either way
    margin: float = 1.0  # contrastive margin on the distance of negatives (distances lie in [0, 2])
    contrastive_weight: float = 1.0  # the paper's loss
    ce_weight: float = 1.0  # cross-entropy over the candidate offsets
    ce_scale: float = 10.0  # logits = ce_scale · cosine similarity
    weight_decay: float = 1e-4
    warmup: float = 0.05  # fraction of the steps with a linear learning-rate warm-up (then cosine decay)
    # Augmentations, in pixels of the shrunk grey input (synth128: 1 px = 4/3 px of a 128 crop):
    shift: float = 2.0  # ± translation in pixels
    scale: float = 0.05  # ± relative scale
    rotate: float = 3.0  # ± rotation in degrees
    blur_p: float = 0.5  # probability of a Gaussian blur …
    blur_sigma: float = 1.2  # … with sigma uniform in [0, blur_sigma] pixels
    noise: float = 0.03  # largest noise standard deviation


# --------------------------------------------------------------------------- network


def _conv(in_channels: int, out_channels: int, *, stride: int = 1) -> nn.Sequential:
    """3×3 convolution, BatchNorm, ReLU."""
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class VideoTower(nn.Module):
    """(B, 5, h, w) grey lower half-faces in [-1, 1] -> (B, D) embeddings (not normalised)."""

    def __init__(self, cfg: SyncNetConfig) -> None:
        super().__init__()
        w = cfg.video_widths
        layers = [_conv(VIDEO_WINDOW, w[0])]  # the 5 frames fused at the first layer, as in the paper
        layers += [_conv(a, b, stride=2) for a, b in zip(w[:-1], w[1:])]
        self.convs = nn.Sequential(*layers)
        stride = 2 ** (len(w) - 1)
        flat = w[-1] * (cfg.video_size[0] // stride) * (cfg.video_size[1] // stride)
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(flat, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, cfg.embed_dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(x))


class AudioTower(nn.Module):
    """(B, 13, 20) MFCC windows -> (B, D) embeddings (not normalised)."""

    def __init__(self, cfg: SyncNetConfig) -> None:
        super().__init__()
        a, b, c = cfg.audio_widths
        self.norm = nn.BatchNorm1d(N_MFCC, affine=False)  # per-coefficient standardisation, learnt from the data
        self.convs = nn.Sequential(
            _conv(1, a), _conv(a, b), nn.MaxPool2d(2),  # 13×20 -> 6×10
            _conv(b, c), nn.MaxPool2d(2),  # -> 3×5
            _conv(c, c),
        )
        self.fc = nn.Sequential(nn.Flatten(), nn.Linear(c * 3 * 5, cfg.hidden), nn.ReLU(inplace=True), nn.Linear(cfg.hidden, cfg.embed_dim))

    def forward(self, mfcc: torch.Tensor) -> torch.Tensor:
        x = self.norm(mfcc / MFCC_SCALE)[:, None]  # (B, 1, 13, 20)
        return self.fc(self.convs(x))


class SyncNet(nn.Module):
    """The two towers. ``forward(video, mfcc) -> (v_emb, a_emb)``, both (B, D) with unit L2 norm."""

    def __init__(self, cfg: SyncNetConfig = SyncNetConfig()) -> None:
        super().__init__()
        self.cfg = cfg
        self.video = VideoTower(cfg)
        self.audio = AudioTower(cfg)

    def video_input(self, frames: torch.Tensor) -> torch.Tensor:
        """Lower half-faces -> what the video tower reads: grey levels of the central ``cfg.crop_width`` of the
        width, area-resized to ``cfg.video_size``.

        Args:
            frames: (..., 3, H, W) in [-1, 1], any size (S/2 × S of an S-pixel crop).
        Returns:
            (..., h, w) in [-1, 1].
        """
        *lead, C, H, W = frames.shape
        if C != 3:
            raise ValueError(f"expected RGB frames (..., 3, H, W), got shape {tuple(frames.shape)}")
        keep = round(W * self.cfg.crop_width)
        left = (W - keep) // 2
        grey = torch.einsum("...chw,c->...hw", frames[..., left : left + keep], frames.new_tensor(_LUMA))
        if (H, keep) != tuple(self.cfg.video_size):
            grey = F.interpolate(grey.reshape(-1, 1, H, keep), size=self.cfg.video_size, mode="area").reshape(*lead, *self.cfg.video_size)
        return grey

    def embed_video_input(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 5, h, w) from ``video_input`` -> (B, D) unit-norm video embeddings."""
        if x.shape[1:] != (VIDEO_WINDOW, *self.cfg.video_size):
            raise ValueError(f"expected (B, {VIDEO_WINDOW}, {self.cfg.video_size[0]}, {self.cfg.video_size[1]}), got {tuple(x.shape)}")
        # Each window standardised on its own: a dark face, a pale one and a washed-out generated one look alike.
        x = (x - x.mean((1, 2, 3), keepdim=True)) / (x.std((1, 2, 3), keepdim=True) + 0.05)
        return F.normalize(self.video(x), dim=-1)

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:
        """(B, 5, 3, S/2, S) lower half-faces in [-1, 1], 5 consecutive frames -> (B, D) unit-norm embeddings."""
        if video.ndim != 5 or video.shape[1] != VIDEO_WINDOW:
            raise ValueError(f"expected video windows (B, {VIDEO_WINDOW}, 3, S/2, S), got {tuple(video.shape)}")
        return self.embed_video_input(self.video_input(video))

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:
        """(B, 13, 20) MFCC windows (``mfcc_windows``) -> (B, D) unit-norm audio embeddings."""
        if mfcc.shape[1:] != (N_MFCC, MFCC_STEPS):
            raise ValueError(f"expected MFCC windows (B, {N_MFCC}, {MFCC_STEPS}), got {tuple(mfcc.shape)}: use audio.features.mfcc_windows")
        return F.normalize(self.audio(mfcc), dim=-1)

    def forward(self, video: torch.Tensor, mfcc: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, 5, 3, S/2, S) in [-1, 1] and (B, 13, 20) -> (v_emb, a_emb), each (B, D) with unit norm."""
        return self.embed_video(video), self.embed_audio(mfcc)

    @classmethod
    def from_pretrained(
        cls,
        name: str = WEIGHTS_NAME,
        *,
        root: str | os.PathLike | None = None,
        device: torch.device | str | None = None,
    ) -> "SyncNet":
        """Load shipped weights (``hub.load_weights``, sha256-checked) in eval mode.

        The preset comes from the weights' manifest entry (``config``); every tensor's name and shape must match.
        """
        from talkinghead.hub import WeightsError, load_state_strict, load_weights, read_manifest, weights_path

        path = weights_path(name, root=root)
        entry = read_manifest(path.parent).get(path.name)
        if entry is None or "config" not in entry:
            raise WeightsError(f"{path} has no manifest entry with its config preset: save it with hub.save_weights(..., config='synth128')")
        net = cls(SyncNetConfig.preset(entry["config"]))
        state = load_weights(str(path))
        load_state_strict(net, state, problem=f"{path} does not fit SyncNet preset {entry['config']!r}",
                          fix="retrain it or fix its manifest entry")
        return net.to(device).eval()


# --------------------------------------------------------------------------- loss


def sync_loss(
    v_emb: torch.Tensor,
    a_emb: torch.Tensor,
    *,
    positive: torch.Tensor,
    negative: torch.Tensor,
    cfg: TrainConfig,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Contrastive loss (paper) + cross-entropy over candidate offsets, on all pairs of a batch at once.

    Args:
        v_emb: (R, D) unit-norm video embeddings.
        a_emb: (C, D) unit-norm audio embeddings.
        positive: (R, C) bool, exactly one True per row: the genuine audio of each video window.
        negative: (R, C) bool, the shifted / other-clip audio each video window is contrasted with.
        cfg: margin, weights and scale.
    Returns:
        (loss, stats): the scalar to minimise and ``{contrastive, ce, accuracy, d_pos, d_neg}`` (accuracy: share of
        rows whose genuine audio is the closest candidate).
    """
    cos = v_emb @ a_emb.T  # (R, C)
    dist = (2 - 2 * cos).clamp_min(1e-8).sqrt()  # ‖v − a‖ for unit vectors
    d_pos = dist[positive]  # (R,)
    d_neg = dist[negative]
    contrastive = d_pos.pow(2).mean() + F.relu(cfg.margin - d_neg).pow(2).mean()
    logits = (cfg.ce_scale * cos).masked_fill(~(positive | negative), float("-inf"))
    target = positive.float().argmax(1)
    ce = F.cross_entropy(logits, target)
    loss = cfg.contrastive_weight * contrastive + cfg.ce_weight * ce
    with torch.no_grad():
        stats = {
            "contrastive": contrastive.item(), "ce": ce.item(), "accuracy": float((logits.argmax(1) == target).float().mean()),
            "d_pos": float(d_pos.mean()), "d_neg": float(d_neg.mean()),
        }
    return loss, stats


# --------------------------------------------------------------------------- augmentations


def _gaussian_blur(images: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) images, (B,) sigmas in pixels (0 = unchanged) -> each image blurred with its own separable Gaussian."""
    B, C, H, W = images.shape
    radius = max(1, math.ceil(3 * float(sigma.max())))
    x = torch.arange(-radius, radius + 1, dtype=images.dtype)
    kernel = torch.exp(-0.5 * (x[None] / sigma.clamp_min(1e-3)[:, None]) ** 2)  # (B, K)
    kernel = (kernel / kernel.sum(1, keepdim=True)).repeat_interleave(C, 0)  # (B·C, K)
    h = F.pad(images.reshape(1, B * C, H, W), (radius,) * 4, mode="replicate")
    h = F.conv2d(h, kernel[:, None, None, :], groups=B * C)  # along x
    h = F.conv2d(h, kernel[:, None, :, None], groups=B * C)  # along y
    return h.view(B, C, H, W)


def augment(frames: torch.Tensor, *, cfg: TrainConfig, generator: torch.Generator) -> torch.Tensor:
    """One random look per clip span, the same for all its frames.

    Args:
        frames: (B, F, h, w) grey frames in [-1, 1] (``SyncNet.video_input``), F consecutive frames per span.
    Returns:
        (B, F, h, w) in [-1, 1].
    """
    B, _, h, w = frames.shape

    def uniform(*shape: int) -> torch.Tensor:  # in [-1, 1)
        return torch.rand(*shape, generator=generator) * 2 - 1

    # 1. Similarity jitter (grid_sample's normalised coordinates: -1 … 1 across each axis).
    angle = uniform(B) * math.radians(cfg.rotate)
    scale = 1 + uniform(B) * cfg.scale
    theta = torch.zeros(B, 2, 3)
    theta[:, 0, 0], theta[:, 0, 1] = torch.cos(angle) / scale, -torch.sin(angle) * h / w / scale
    theta[:, 1, 0], theta[:, 1, 1] = torch.sin(angle) * w / h / scale, torch.cos(angle) / scale
    theta[:, 0, 2], theta[:, 1, 2] = uniform(B) * 2 * cfg.shift / w, uniform(B) * 2 * cfg.shift / h
    grid = F.affine_grid(theta, list(frames.shape), align_corners=False)
    frames = F.grid_sample(frames, grid, mode="bilinear", padding_mode="border", align_corners=False)
    # 2. Softness and noise, as in generated frames (brightness and contrast need no jitter: each window is
    # standardised in SyncNet.embed_video_input).
    sigma = (torch.rand(B, generator=generator) < cfg.blur_p).float() * torch.rand(B, generator=generator) * cfg.blur_sigma
    if sigma.max() > 0:
        frames = _gaussian_blur(frames, sigma)
    frames = frames + cfg.noise * torch.rand(B, 1, 1, 1, generator=generator) * torch.randn(frames.shape, generator=generator)
    return frames.clamp(-1, 1)


# --------------------------------------------------------------------------- training


@dataclass
class _TrainingClips:
    """The train split held in memory, ready for sampling: every frame shrunk once, every MFCC window computed once."""

    video: torch.Tensor  # (N, h, w) float16 grey video inputs of every frame of every clip
    mfcc: torch.Tensor  # (N, 13, 20) float32 MFCC windows, one per frame
    starts: np.ndarray  # (n_clips,) index of each clip's first frame in the arrays above
    lengths: np.ndarray  # (n_clips,) frames per clip

    @classmethod
    def load(cls, corpus, net: SyncNet, *, split: str = "train", min_frames: int = VIDEO_WINDOW) -> "_TrainingClips":
        from talkinghead.io import InputError

        clips = [c for c in corpus.clips(split) if c["n_frames"] >= min_frames]
        if not clips:
            raise InputError(f"{corpus.root} has no {split!r} clips of at least {min_frames} frames: prepare a corpus with {split} speakers")
        video, mfcc = [], []
        with torch.no_grad():
            for clip in clips:
                frames = corpus.clip_frames(clip)
                video.append(net.video_input(lower_half(np.asarray(frames))).half())
                mfcc.append(torch.from_numpy(mfcc_windows(corpus.clip_audio(clip), n_frames=len(frames))))
        lengths = np.array([c["n_frames"] for c in clips])
        return cls(torch.cat(video), torch.cat(mfcc), np.concatenate([[0], np.cumsum(lengths)[:-1]]), lengths)

    def sample(self, n_clips: int, *, span: int, max_shift: int, rng: np.random.Generator):
        """A batch of ``n_clips`` spans: grey frames (n_clips, span + 4, h, w), MFCC windows (C, 13, 20), and the
        (R, C) positive / negative masks of ``sync_loss`` (R = n_clips · span video windows; span is cut to the
        shortest picked clip's windows)."""
        half = VIDEO_WINDOW // 2
        picks = rng.integers(len(self.starts), size=n_clips)
        span = min(span, int(self.lengths[picks].min()) - 2 * half)
        frames, audio, row_clip, row_t, row_rel, col_clip, col_t, col_rel = [], [], [], [], [], [], [], []
        for b, k in enumerate(picks):
            T, f0 = int(self.lengths[k]), int(self.starts[k])
            s = int(rng.integers(half, T - half - span + 1))  # centre of the span's first video window
            frames.append(self.video[f0 + s - half : f0 + s + span + half])  # (span + 4, h, w)
            cols = np.arange(max(0, s - max_shift), min(T, s + span + max_shift))
            audio.append(self.mfcc[f0 + cols])
            row_clip += [b] * span
            row_t += list(range(s, s + span))
            row_rel += list(range(span))
            col_clip += [b] * len(cols)
            col_t += cols.tolist()
            col_rel += (cols - s).tolist()
        row_clip, row_t, row_rel = (torch.tensor(x)[:, None] for x in (row_clip, row_t, row_rel))
        col_clip, col_t, col_rel = (torch.tensor(x)[None, :] for x in (col_clip, col_t, col_rel))
        same = row_clip == col_clip
        shift = (col_t - row_t).abs()
        positive = same & (shift == 0)
        negative = (same & (shift >= 2) & (shift <= max_shift)) | (~same & (col_rel == row_rel))
        return torch.stack(frames).float(), torch.cat(audio), positive, negative


def train(
    prepared_dir: str | os.PathLike,
    *,
    cfg: SyncNetConfig,
    steps: int,
    batch_size: int = 6,
    lr: float = 2e-3,
    seed: int = 0,
    train_cfg: TrainConfig = TrainConfig(),
    log_every: int = 50,
    callback: Callable[[dict], None] | None = None,
    device: torch.device | str = "cpu",
) -> tuple[SyncNet, list[dict]]:
    """Train a SyncNet on the train speakers of a prepared corpus.

    Args:
        prepared_dir: a folder from ``python -m talkinghead prepare`` with ``train`` clips.
        cfg: the network preset.
        steps: optimiser steps (AdamW, linear warm-up then cosine decay).
        batch_size: clips per step; each gives ``train_cfg.span`` consecutive video windows.
        lr: peak learning rate.
        seed: seeds the weights, the sampling and the augmentations.
        train_cfg: sampling, loss and augmentation settings.
        log_every: a history row every this many steps (and at the last).
        callback: called with each history row ``{step, loss, contrastive, ce, accuracy, d_pos, d_neg, lr, seconds}``.
        device: where the network trains (the corpus stays in CPU memory; each batch is moved).
    Returns:
        (net in eval mode, on ``device``; history rows).
    """
    from talkinghead.data.prepare import PreparedCorpus

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    generator = torch.Generator().manual_seed(seed)
    net = SyncNet(cfg)
    # Clips of at least 9 frames, so that every span holds at least 5 video windows.
    data = _TrainingClips.load(PreparedCorpus.open(prepared_dir), net, min_frames=VIDEO_WINDOW + 4)
    net.to(device)
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=train_cfg.weight_decay)
    warmup = max(1, round(train_cfg.warmup * steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda i: min(1.0, (i + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(1.0, i / steps)))
    )
    net.train()
    history, running, start = [], [], time.perf_counter()
    for step in range(1, steps + 1):
        # 1. Sample spans, augment each span's frames, cut them into 5-frame windows.
        frames, mfcc, positive, negative = data.sample(batch_size, span=train_cfg.span, max_shift=train_cfg.max_shift, rng=rng)
        frames = augment(frames, cfg=train_cfg, generator=generator)  # (B, span + 4, h, w)
        windows = frames.unfold(1, VIDEO_WINDOW, 1).permute(0, 1, 4, 2, 3).flatten(0, 1)  # (B·span, 5, h, w)
        # 2. Embed, score all pairs, step.
        v_emb, a_emb = net.embed_video_input(windows.to(device)), net.embed_audio(mfcc.to(device))
        loss, stats = sync_loss(v_emb, a_emb, positive=positive.to(device), negative=negative.to(device), cfg=train_cfg)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        schedule.step()
        running.append({"loss": loss.item(), **stats})
        if step % log_every == 0 or step == steps:
            row = {"step": step, **{k: float(np.mean([r[k] for r in running])) for k in running[0]},
                   "lr": schedule.get_last_lr()[0], "seconds": time.perf_counter() - start}
            history.append(row)
            running = []
            if callback is not None:
                callback(row)
    return net.eval(), history


# --------------------------------------------------------------------------- evaluation


@torch.no_grad()
def evaluate(
    net: SyncNet,
    prepared_dir: str | os.PathLike,
    split: str,
    *,
    shift: int = 5,
    max_offset: int = 15,
    max_clips: int | None = None,
) -> dict:
    """The SyncNet requirements on the clips of one split (held-out speakers).

    For every clip: the real clip; the same clip with its audio delayed by ``shift`` frames (zeros in front), which
    must be found at offset ``+shift``; and ``static``: its first frame repeated, with the real audio.

    Returns:
        ``{clips, real_offset_ok (share with |offset| <= 1), shifted_offset_ok (share with |offset - shift| <= 1),
        real_lse_d, real_lse_c, static_lse_d, static_lse_c, shifted_offset_mean}`` (LSE means over clips).
    """
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.io import InputError

    corpus = PreparedCorpus.open(prepared_dir)
    clips = corpus.clips(split)[:max_clips]
    if not clips:
        raise InputError(f"{prepared_dir} has no {split!r} clips: prepare a corpus with {split} speakers")
    net.eval()
    real, shifted, static = [], [], []
    for clip in clips:
        frames, audio = np.asarray(corpus.clip_frames(clip)), corpus.clip_audio(clip)
        real.append(sync_scores(net, frames, audio, max_offset=max_offset))
        shifted.append(sync_scores(net, frames, shift_audio(audio, shift), max_offset=max_offset))
        static.append(sync_scores(net, np.repeat(frames[:1], len(frames), 0), audio, max_offset=max_offset))
    return {
        "clips": len(clips),
        "real_offset_ok": float(np.mean([abs(r.offset) <= 1 for r in real])),
        "shifted_offset_ok": float(np.mean([abs(r.offset - shift) <= 1 for r in shifted])),
        "real_lse_d": float(np.mean([r.lse_d for r in real])),
        "real_lse_c": float(np.mean([r.lse_c for r in real])),
        "static_lse_d": float(np.mean([r.lse_d for r in static])),
        "static_lse_c": float(np.mean([r.lse_c for r in static])),
        "shifted_offset_mean": float(np.mean([r.offset for r in shifted])),
    }


# --------------------------------------------------------------------------- command line


def add_train_syncnet_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Add ``syncnet`` to the subparsers of ``python -m talkinghead train``."""
    p = sub.add_parser("syncnet", help="train SyncNet on a prepared SynthGRID corpus, measure it on held-out speakers and ship it")
    p.add_argument("--data", required=True, help="prepared corpus (from `prepare`) with train, val and test speakers")
    p.add_argument("--out", default=None, help="weights folder (default: the project's weights/)")
    p.add_argument("--name", default=WEIGHTS_NAME, help="weights file name")
    p.add_argument("--config", default="synth128", choices=sorted(PRESETS), help="network preset")
    p.add_argument("--steps", type=int, default=700)
    p.add_argument("--batch-size", type=int, default=6, help="clips per step (each gives --span video windows)")
    p.add_argument("--span", type=int, default=TrainConfig.span, help="consecutive video windows per clip")
    p.add_argument("--lr", type=float, default=2e-3, help="peak learning rate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)")
    p.add_argument("--eval-clips", type=int, default=None, help="evaluate on this many clips per split (default: all)")
    p.add_argument("--log-every", type=int, default=50)
    p.set_defaults(func=main_train_syncnet)
    return p


def _data_description(corpus, prepared_dir: str | os.PathLike) -> str:
    """'SynthGRID seed 0, 128 px crops (prepared128): train s1–s18 (18 speakers, 44,000 frames); …' for the manifest."""
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


def main_train_syncnet(args: argparse.Namespace) -> int:
    """``python -m talkinghead train syncnet``: train, measure on the val and test speakers, write the weights and
    their manifest entry."""
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.hub import save_weights

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = SyncNetConfig.preset(args.config)
    train_cfg = TrainConfig(span=args.span)
    corpus = PreparedCorpus.open(args.data)

    def report(row: dict) -> None:
        print(f"step {row['step']:6d}  loss {row['loss']:.3f}  contrastive {row['contrastive']:.3f}  ce {row['ce']:.3f}  "
              f"acc {row['accuracy']:.3f}  d+ {row['d_pos']:.3f}  d- {row['d_neg']:.3f}  lr {row['lr']:.2e}  {row['seconds']:.0f} s", flush=True)

    net, history = train(args.data, cfg=cfg, steps=args.steps, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                         train_cfg=train_cfg, log_every=args.log_every, callback=report)
    seconds = history[-1]["seconds"]
    # Measure the network as shipped: float16 weights read back as float32.
    net.load_state_dict({k: v.half().to(v.dtype) if v.is_floating_point() else v for k, v in net.state_dict().items()})
    metrics: dict[str, object] = {}
    for split in ("val", "test"):
        if corpus.clips(split):
            start = time.perf_counter()
            result = evaluate(net, args.data, split, max_clips=args.eval_clips)
            metrics[split] = {k: round(v, 4) if isinstance(v, float) else v for k, v in result.items()}
            print(f"{split:5s} " + "  ".join(f"{k} {v}" for k, v in metrics[split].items()) + f"  ({time.perf_counter() - start:.0f} s)", flush=True)
    metrics["train_accuracy_last"] = round(history[-1]["accuracy"], 4)
    path = save_weights(
        net.state_dict(), args.name, root=args.out,
        config=args.config,
        data=_data_description(corpus, args.data),
        steps=args.steps,
        metrics=metrics,
        training={"batch_size": args.batch_size, "lr": args.lr, "seed": args.seed, "seconds": round(seconds, 1),
                  "threads": torch.get_num_threads(), "parameters": sum(p.numel() for p in net.parameters()),
                  "loss": "contrastive (margin) + cross-entropy over candidate offsets", **asdict(train_cfg)},
    )
    print(f"trained {args.steps} steps in {seconds:.0f} s -> {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0
