"""Audio-visual sync of a talking-face clip: AV offset, LSE-D and LSE-C with a SyncNet.

The measurement of Chung & Zisserman, "Out of time: automated lip sync in the wild" (ACCV workshops 2016), with the
conventions of their evaluation code (``syncnet_python``), which LSE-D / LSE-C in later talking-head papers report:

1. embed every 5-frame video window (centred on frame ``t``) and every 0.2 s audio window (centred on frame ``t``);
2. for each shift ``δ`` in ``[-max_offset, max_offset]``, the mean over ``t`` of ``‖v_t − a_{t+δ}‖`` (Euclidean);
3. AV offset = the ``δ`` of the smallest mean distance; **LSE-D** = that smallest mean distance;
   **LSE-C** = median over ``δ`` of the mean distances − the smallest one.

``syncnet_python`` also computes a per-frame confidence, ``median_δ(mean distance) − d_t(best δ)``; its mean over
frames is exactly LSE-C as defined above (the mean of ``d_t`` at the best shift is the smallest mean distance), so
the clip-level and per-frame definitions agree. (The 9-frame median filter it applies to the per-frame series is
for its visualisation only and does not enter the reported confidence.)

Sign of the offset — **positive offset: the audio lags the video** by ``offset`` frames, i.e. the sound that belongs
to what frame ``t`` shows is heard at frame ``t + offset``; delaying the audio of a synced clip by ``n`` frames
(zeros in front) gives ``+n``. ``syncnet_python`` prints the opposite sign (its ``vshift − argmin``).

Two departures from ``syncnet_python``, both documented where they happen: a shift whose audio window falls
outside the clip is left out of that frame's average (syncnet_python compares it with a zero embedding), and the
distances come from our SyncNet (``talkinghead.nn.syncnet``) whose embeddings are L2-normalised, so LSE-D lies in
[0, 2] and is not on the scale of numbers measured with the original VoxCeleb network (about 6–8).
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import torch

from talkinghead.audio.features import mfcc_windows

__all__ = ["SyncResult", "VIDEO_WINDOW", "lower_half", "shift_audio", "offset_distances", "sync_scores", "sync_scores_many"]

VIDEO_WINDOW = 5  # frames per video window, centred: frames t-2 … t+2 (0.2 s at 25 fps, like the audio window)
HOP = 640  # audio samples per video frame (16 kHz, 25 fps)


@dataclass(frozen=True)
class SyncResult:
    """Sync of one clip (see the module docstring for the definitions)."""

    offset: int  # AV offset in frames; positive = the audio lags the video
    lse_d: float  # smallest mean distance (lower = better synced)
    lse_c: float  # median − smallest mean distance (higher = more confident sync), >= 0
    distances: np.ndarray  # (2 * max_offset + 1,) mean distance for δ = -max_offset … max_offset


def lower_half(frames: np.ndarray) -> torch.Tensor:
    """The lower half of aligned face crops, as SyncNet's video tower sees them.

    Args:
        frames: (T, S, S, 3) uint8 canonical crops (``face.align``); the mouth sits at about 0.66·S.
    Returns:
        (T, 3, S/2, S) float32 in [-1, 1]: rows S/2 … S of every crop.
    """
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8:
        raise ValueError(f"expected frames of shape (T, S, S, 3) uint8, got {frames.shape} {frames.dtype}: "
                         "pass aligned crops from talkinghead.face.align.warp")
    size = frames.shape[1]
    half = torch.from_numpy(np.ascontiguousarray(frames[:, size // 2 :]))  # (T, S/2, S, 3)
    return half.permute(0, 3, 1, 2).float() / 127.5 - 1


def shift_audio(audio: np.ndarray, frames: int, *, hop: int = HOP) -> np.ndarray:
    """The same clip's audio moved in time, same length, zeros where nothing is left.

    ``frames > 0`` delays the audio (zeros in front: the audio then lags the video, offset ``+frames``);
    ``frames < 0`` advances it (zeros at the end).
    """
    audio = np.asarray(audio, dtype=np.float32)
    n = abs(frames) * hop
    out = np.zeros_like(audio)
    if n >= len(audio):
        return out
    if frames >= 0:
        out[n:] = audio[: len(audio) - n]
    else:
        out[: len(audio) - n] = audio[n:]
    return out


def offset_distances(v_emb: torch.Tensor, a_emb: torch.Tensor, centres: torch.Tensor, *, max_offset: int) -> torch.Tensor:
    """Mean distance between video and audio embeddings for every shift, in one batched op.

    Args:
        v_emb: (Tv, D) video embeddings, window ``i`` centred on frame ``centres[i]``.
        a_emb: (T, D) audio embeddings, one per frame of the clip.
        centres: (Tv,) int64 frame index of each video window.
        max_offset: largest shift ``K`` searched, in frames.
    Returns:
        (2K+1,) mean over windows of ``‖v_i − a_{centres[i] + δ}‖`` for δ = -K … K; a pair whose audio frame is
        outside the clip is left out of its mean (NaN where no pair is left).
    """
    T = a_emb.shape[0]
    deltas = torch.arange(-max_offset, max_offset + 1, device=a_emb.device)
    idx = centres.to(a_emb.device)[:, None] + deltas[None, :]  # (Tv, 2K+1) audio frame of each pair
    valid = (idx >= 0) & (idx < T)
    pairs = a_emb[idx.clamp(0, T - 1)]  # (Tv, 2K+1, D)
    dist = torch.linalg.vector_norm(v_emb[:, None, :] - pairs, dim=-1)  # (Tv, 2K+1)
    count = valid.sum(0)  # (2K+1,)
    mean = torch.where(valid, dist, 0).sum(0) / count.clamp_min(1)
    return torch.where(count > 0, mean, torch.nan)


def _device_of(net) -> torch.device:
    param = next(net.parameters(), None) if hasattr(net, "parameters") else None
    return param.device if param is not None else torch.device("cpu")


@torch.no_grad()
def sync_scores(
    net,
    frames: np.ndarray,
    audio: np.ndarray,
    *,
    max_offset: int = 15,
    batch_size: int = 128,
) -> SyncResult:
    """AV offset, LSE-D and LSE-C of one clip (definitions and sign in the module docstring).

    Args:
        net: a SyncNet in eval mode (``talkinghead.nn.syncnet.SyncNet.from_pretrained()``), or anything with
            ``embed_video((B, 5, 3, S/2, S) in [-1, 1]) -> (B, D)`` and ``embed_audio((B, 13, 20)) -> (B, D)``;
            tensors go to the device of its parameters.
        frames: (T, S, S, 3) uint8 aligned face crops at 25 fps, T >= 5.
        audio: (N,) float32 mono 16 kHz audio of the same clip (cut or zero-padded to T frames).
        max_offset: shifts searched, ±frames (15 = ±0.6 s).
        batch_size: windows per forward pass (bounds memory on long clips).
    Returns:
        SyncResult with ``distances`` of shape (2 * max_offset + 1,).
    """
    from talkinghead.io import InputError

    T = len(frames)
    if T < VIDEO_WINDOW:
        raise InputError(f"a clip of {T} frames is too short for sync scores: give at least {VIDEO_WINDOW} frames (0.2 s)")
    device = _device_of(net)
    # 1. Every video window (centred on frames 2 … T-3) and every audio window, embedded once.
    video = lower_half(frames)  # (T, 3, S/2, S)
    centres = torch.arange(VIDEO_WINDOW // 2, T - VIDEO_WINDOW // 2)  # (Tv,)
    window = centres[:, None] + torch.arange(VIDEO_WINDOW)[None, :] - VIDEO_WINDOW // 2  # (Tv, 5) frame indices
    v_emb = torch.cat([net.embed_video(video[window[i : i + batch_size]].to(device)) for i in range(0, len(centres), batch_size)])
    mfcc = torch.from_numpy(mfcc_windows(np.asarray(audio, dtype=np.float32), n_frames=T))  # (T, 13, 20)
    a_emb = torch.cat([net.embed_audio(mfcc[i : i + batch_size].to(device)) for i in range(0, T, batch_size)])
    # 2. Mean distance per shift, then offset, LSE-D and LSE-C.
    distances = offset_distances(v_emb.float(), a_emb.float(), centres, max_offset=max_offset).cpu().numpy()
    best = int(np.nanargmin(distances))
    lse_d = float(distances[best])
    return SyncResult(offset=best - max_offset, lse_d=lse_d, lse_c=float(np.nanmedian(distances)) - lse_d, distances=distances)


def sync_scores_many(
    net,
    clips: Iterable[tuple[np.ndarray, np.ndarray]],
    *,
    max_offset: int = 15,
    batch_size: int = 128,
) -> list[SyncResult]:
    """``sync_scores`` of every ``(frames, audio)`` pair of ``clips`` (an iterable, so clips can stream from disk)."""
    return [sync_scores(net, frames, audio, max_offset=max_offset, batch_size=batch_size) for frames, audio in clips]
