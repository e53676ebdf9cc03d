"""Torch datasets over a prepared corpus (``data.prepare``): windows of consecutive frames with their audio.

``WindowDataset`` serves every window of ``T`` consecutive frames of every clip of a split. A window is a slice
of the memory-mapped frame array, so reading one is a memcpy plus the uint8 → float conversion. The audio
features of each window are cut from features computed over the whole clip (so a window at the clip's start
or end sees exactly the zeros ``audio.features`` gives there, not a truncated analysis window): raw windows are
cut straight from the int16 audio; MFCC and log-mel spectrograms are computed once per clip at construction
(about 2 ms per 3 s clip) and kept as compact (C, steps) arrays, 4 steps per video frame, not as windows.

``dataset.loader(batch_size)`` is the fast way to iterate: it asks for whole batches and builds each in one
tensor, which on our 2-core machine is about twice as fast as ``DataLoader(dataset, batch_size)`` with its
per-window tensors and stacking copy (``python -m talkinghead bench dataset``; docs/DATA.md has the figures).
"""
from __future__ import annotations

import ctypes
import math
import os
import sys
import time
from collections.abc import Sequence

import numpy as np
import torch
from numpy.lib.stride_tricks import sliding_window_view

from talkinghead.audio.features import FEATURE_KINDS, FeatureConfig, log_mel, mfcc
from talkinghead.data.prepare import PreparedCorpus

__all__ = ["WindowDataset", "FrameDataset", "IDENTITY_MODES", "bench_dataset"]

IDENTITY_MODES = ("random", "first")


def _centred(x: np.ndarray, first: int, n: int, *, stride: int, size: int) -> np.ndarray:
    """Windows ``first … first+n-1`` of ``x`` (..., L): window i holds ``x[..., i*stride - size//2 :][:size]``,
    zeros outside [0, L) — the same windows as ``audio.features`` cuts from a whole clip. Returns (n, ..., size)."""
    start = first * stride - size // 2
    end = start + (n - 1) * stride + size
    length = x.shape[-1]
    part = np.asarray(x[..., max(start, 0) : min(end, length)], dtype=np.float32)
    lead = [(0, 0)] * (part.ndim - 1)
    part = np.pad(part, lead + [(max(0, -start), max(0, end - length))])            # (..., end - start)
    windows = sliding_window_view(part, size, axis=-1)[..., ::stride, :]               # (..., n, size)
    return np.ascontiguousarray(np.moveaxis(windows, -2, 0))                           # (n, ..., size)


_HUGE_PAGE = 1 << 21
_MADV_HUGEPAGE = 14  # Linux <sys/mman.h>
_LIBC = ctypes.CDLL(None) if sys.platform.startswith("linux") else None


def _empty_batch(shape: tuple[int, ...], *, whole_batch: bool) -> torch.Tensor:
    """An uninitialised float32 tensor for a batch, placed where filling it is cheapest.

    A whole batch built inside a DataLoader worker is allocated in shared memory, as torch's default collate
    does, so sending it to the main process copies nothing (single windows are not: the collate copies them).
    Elsewhere, on Linux, its memory is advised to use 2 MiB pages: a fresh 100 MB batch otherwise costs ~25,000
    page faults when first written (48 ms of a ~70 ms batch on our 2-core machine; 17 ms with huge pages).
    PyTorch's own switch for this, for every large allocation, is the environment variable THP_MEM_ALLOC_ENABLE=1.
    """
    numel = math.prod(shape)
    if whole_batch and torch.utils.data.get_worker_info() is not None:
        storage = torch.UntypedStorage._new_shared(numel * 4)
        return torch.empty(0).set_(storage).view(shape)
    out = torch.empty(shape)
    start = -(-out.data_ptr() // _HUGE_PAGE) * _HUGE_PAGE
    end = (out.data_ptr() + numel * 4) // _HUGE_PAGE * _HUGE_PAGE
    if _LIBC is not None and end > start:
        _LIBC.madvise(ctypes.c_void_p(start), ctypes.c_size_t(end - start), _MADV_HUGEPAGE)
    return out


class WindowDataset(torch.utils.data.Dataset):
    """Windows of ``T`` consecutive frames of one clip, with frame-aligned audio, landmarks and an identity frame.

    Args:
        prepared: a prepared folder (``python -m talkinghead prepare``) or an open ``PreparedCorpus``.
        split: "train", "val" or "test" (speakers never shared between them).
        T: frames per window.
        features: audio per frame: "raw" (T, 3200) waveform, "mfcc" (T, 13, 20) or "mel" (T, 80, 20)
            (``audio.features``; frame i's window is centred on it).
        stride: frames between the starts of consecutive windows of a clip (1: every window).
        identity: "random": a random frame of the same speaker from another clip of the split (the clip itself
            when the speaker has only one); "first": the clip's first frame.
        seed: with ``set_epoch``, fixes the identity frames: the same (seed, epoch, index) gives the same item.
        cfg: audio feature settings; its sr and fps must be the prepared corpus's.

    Each item is a dict:
        video (T, 3, S, S) float32 in [-1, 1]; audio (T, …) float32; landmarks (T, 68, 2) float32 in crop pixels;
        identity (3, S, S) float32 in [-1, 1]; speaker (int, index in ``meta["speakers"]``);
        clip (int, index in ``meta["clips"]``); frame (int, first frame of the window within the clip).
    """

    def __init__(
        self,
        prepared: str | os.PathLike | PreparedCorpus,
        split: str = "train",
        *,
        T: int = 16,
        features: str = "raw",
        stride: int = 1,
        identity: str = "random",
        seed: int = 0,
        cfg: FeatureConfig = FeatureConfig(),
    ):
        from talkinghead.io import InputError

        self.data = prepared if isinstance(prepared, PreparedCorpus) else PreparedCorpus.open(prepared)
        meta = self.data.meta
        if features not in FEATURE_KINDS:
            raise ValueError(f"unknown audio features {features!r}: use one of {', '.join(FEATURE_KINDS)}")
        if identity not in IDENTITY_MODES:
            raise ValueError(f"unknown identity mode {identity!r}: use one of {', '.join(IDENTITY_MODES)}")
        if T < 1 or stride < 1:
            raise ValueError(f"T and stride must be at least 1, got T={T}, stride={stride}")
        if (cfg.sr, cfg.fps) != (meta["sr"], meta["fps"]):
            raise ValueError(f"feature config is {cfg.sr} Hz / {cfg.fps} fps but {self.data.root} was prepared at "
                             f"{meta['sr']} Hz / {meta['fps']} fps: pass a matching FeatureConfig")
        self.T, self.features, self.identity, self.seed, self.cfg = T, features, identity, seed, cfg
        self.epoch = 0
        self.clip_ids = [i for i, c in enumerate(meta["clips"]) if c["split"] == split]
        if not self.clip_ids:
            splits = sorted({c["split"] for c in meta["clips"]})
            raise InputError(f"{self.data.root} has no clip in split {split!r}: choose one of {', '.join(splits)}")
        clips = [meta["clips"][i] for i in self.clip_ids]
        # The flat index: window k is (clip_ids[owner[k]], start[k]).
        starts = [np.arange(0, c["n_frames"] - T + 1, stride) for c in clips]
        self._owner = np.concatenate([np.full(len(s), j) for j, s in enumerate(starts)]).astype(np.int64)
        self._start = np.concatenate(starts).astype(np.int64)
        if len(self._start) == 0:
            raise InputError(f"no clip of split {split!r} has {T} frames: lower T (the longest has "
                             f"{max(c['n_frames'] for c in clips)})")
        self._speaker = np.array([meta["speakers"][c["speaker"]]["index"] for c in clips])
        by_speaker: dict[int, list[int]] = {}
        for j, s in enumerate(self._speaker):
            by_speaker.setdefault(int(s), []).append(j)
        self._same_speaker = [np.array(by_speaker[int(s)]) for s in self._speaker]
        self._steps, self._step_start = None, None
        if features != "raw":
            # Whole-clip spectrograms, concatenated: (C, total steps) and each clip's first step.
            transform = mfcc if features == "mfcc" else log_mel
            specs = [transform(self.data.clip_audio(c), cfg=cfg) for c in clips]
            self._step_start = np.cumsum([0] + [s.shape[1] for s in specs])
            self._steps = np.concatenate(specs, axis=1)

    def set_epoch(self, epoch: int) -> None:
        """Draw other identity frames (identity="random") in this epoch, still deterministic for the seed."""
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self._start)

    def _identity_frame(self, index: int, j: int) -> int:
        """Global frame index of the identity frame of window ``index`` (of clip ``j`` of the split)."""
        clip = self.data.meta["clips"][self.clip_ids[j]]
        if self.identity == "first":
            return clip["frame_start"]
        rng = np.random.default_rng([self.seed, self.epoch, index])
        others = self._same_speaker[j]
        if len(others) > 1:
            others = others[others != j]
        other = self.data.meta["clips"][self.clip_ids[int(rng.choice(others))]]
        return other["frame_start"] + int(rng.integers(other["n_frames"]))

    def _audio(self, j: int, start: int) -> np.ndarray:
        """(T, …) float32 audio features of the window starting at frame ``start`` of clip ``j`` of the split."""
        cfg = self.cfg
        if self.features == "raw":
            clip = self.data.meta["clips"][self.clip_ids[j]]
            audio = self.data.audio[clip["audio_start"] : clip["audio_start"] + clip["n_samples"]]
            return _centred(audio, start, self.T, stride=cfg.hop, size=cfg.window) / np.float32(32768.0)
        steps = self._steps[:, self._step_start[j] : self._step_start[j + 1]]
        return _centred(steps, start, self.T, stride=cfg.steps_per_frame, size=cfg.steps_per_window)

    def _copy_frames(self, out: torch.Tensor, first: int) -> None:
        """Copy global frames first … first+len(out)-1 into ``out`` (n, 3, S, S) float32, still in 0 … 255."""
        # Transpose while still uint8 (a quarter of the bytes), then convert contiguous to contiguous: 2.4x
        # faster than converting through a permuted view.
        u8 = np.ascontiguousarray(self.data.frames[first : first + len(out)].transpose(0, 3, 1, 2))  # (n, 3, S, S)
        out.copy_(torch.from_numpy(u8))

    def __getitem__(self, index: int | Sequence[int]) -> dict:
        """One window (an int), or a whole batch at once (a sequence of ints: every array gets a leading batch
        axis B), built in place without the per-item tensors and the stacking copy of the default collate."""
        batched = np.ndim(index) > 0  # a list, array or tensor of indices (a 0-d tensor is one index)
        indices = [int(i) for i in index] if batched else [int(index)]
        size = self.data.meta["size"]
        video = _empty_batch((len(indices), self.T, 3, size, size), whole_batch=batched)    # (B, T, 3, S, S)
        identity = _empty_batch((len(indices), 3, size, size), whole_batch=batched)         # (B, 3, S, S)
        audio, lmk, speaker, clip_id, frame = [], [], [], [], []
        for b, i in enumerate(indices):
            j, start = int(self._owner[i]), int(self._start[i])
            first = self.data.meta["clips"][self.clip_ids[j]]["frame_start"] + start
            self._copy_frames(video[b], first)
            self._copy_frames(identity[b : b + 1], self._identity_frame(i, j))
            audio.append(self._audio(j, start))
            lmk.append(self.data.landmarks[first : first + self.T])
            speaker.append(int(self._speaker[j]))
            clip_id.append(self.clip_ids[j])
            frame.append(start)
        # uint8 0 … 255 -> [-1, 1], once over the whole batch.
        video.mul_(1.0 / 127.5).sub_(1.0)
        identity.mul_(1.0 / 127.5).sub_(1.0)
        item = {
            "video": video,
            "audio": torch.from_numpy(np.stack(audio)),                                # (B, T, …)
            "landmarks": torch.from_numpy(np.stack(lmk)),                              # (B, T, 68, 2)
            "identity": identity,
            "speaker": torch.tensor(speaker),
            "clip": torch.tensor(clip_id),
            "frame": torch.tensor(frame),
        }
        if batched:
            return item
        return {k: (v[0] if k in ("video", "audio", "landmarks", "identity") else int(v[0])) for k, v in item.items()}

    def loader(
        self,
        batch_size: int,
        *,
        shuffle: bool = True,
        drop_last: bool = False,
        num_workers: int = 0,
        seed: int | None = None,
        **kwargs,
    ) -> torch.utils.data.DataLoader:
        """A DataLoader that asks for whole batches (``self[list of indices]``): the fast way to iterate.

        Same batches as ``DataLoader(self, batch_size, shuffle=…)`` with the default collate, without building
        and stacking per-window tensors. ``seed`` fixes the shuffling order; ``kwargs`` go to the DataLoader
        (``pin_memory``, ``persistent_workers``, …).
        """
        from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

        generator = None if seed is None else torch.Generator().manual_seed(seed)
        order = RandomSampler(self, generator=generator) if shuffle else SequentialSampler(self)
        return DataLoader(self, batch_size=None, sampler=BatchSampler(order, batch_size, drop_last),
                          num_workers=num_workers, **kwargs)


class FrameDataset(torch.utils.data.Dataset):
    """Single frames of the clips of one split, for image GANs (``stylegan2.training``).

    Args:
        prepared: a prepared folder (``python -m talkinghead prepare``) or an open ``PreparedCorpus``.
        split: "train", "val" or "test".
        seed: with ``set_epoch``, fixes the flips: the same (seed, epoch, index) gives the same item.
        flip: mirror about half the frames left-right (a new draw every epoch), as StyleGAN2's ``--mirror``.

    Each item is a dict: image (3, S, S) float32 in [-1, 1]; frame (int, the row of ``data.frames`` it came from).
    ``ds[list of indices]`` returns the whole batch at once: image (B, 3, S, S), frame (B,).
    """

    def __init__(
        self,
        prepared: str | os.PathLike | PreparedCorpus,
        split: str = "train",
        *,
        seed: int = 0,
        flip: bool = True,
    ):
        from talkinghead.io import InputError

        self.data = prepared if isinstance(prepared, PreparedCorpus) else PreparedCorpus.open(prepared)
        clips = self.data.clips(split)
        if not clips:
            splits = sorted({c["split"] for c in self.data.meta["clips"]})
            raise InputError(f"{self.data.root} has no clip in split {split!r}: choose one of {', '.join(splits)}")
        self.frame_ids = np.concatenate([np.arange(c["frame_start"], c["frame_start"] + c["n_frames"]) for c in clips])
        self.seed, self.flip = seed, flip
        self.epoch = 0
        self._flips: np.ndarray | None = None  # (len,) bool of the current epoch, drawn on first use

    def set_epoch(self, epoch: int) -> None:
        """Draw other flips in this epoch, still deterministic for the seed."""
        if epoch != self.epoch:
            self.epoch, self._flips = epoch, None

    def __len__(self) -> int:
        return len(self.frame_ids)

    def flipped(self, indices: np.ndarray) -> np.ndarray:
        """Whether items ``indices`` are mirrored in the current epoch: (n,) bool."""
        if not self.flip:
            return np.zeros(len(indices), bool)
        if self._flips is None:
            # One draw per (seed, epoch) for the whole split: item i's flip depends on (seed, epoch, i) only.
            self._flips = np.random.default_rng([self.seed, self.epoch]).random(len(self)) < 0.5
        return self._flips[indices]

    def __getitem__(self, index: int | Sequence[int]) -> dict:
        """One frame (an int), or a whole batch at once (a sequence of ints: a leading batch axis B)."""
        batched = np.ndim(index) > 0
        indices = np.array([int(i) for i in index] if batched else [int(index)], dtype=np.int64)
        if len(indices) and (indices.min() < -len(self) or indices.max() >= len(self)):
            raise IndexError(f"index out of range for {len(self)} frames")
        frames = self.frame_ids[indices]
        u8 = self.data.frames[frames]                                                  # (B, S, S, 3) uint8, a copy
        mirror = self.flipped(indices % len(self))
        u8[mirror] = u8[mirror, :, ::-1]
        size = self.data.meta["size"]
        image = _empty_batch((len(indices), 3, size, size), whole_batch=batched)      # (B, 3, S, S)
        image.copy_(torch.from_numpy(np.ascontiguousarray(u8.transpose(0, 3, 1, 2))))
        image.mul_(1.0 / 127.5).sub_(1.0)                                              # uint8 0 … 255 -> [-1, 1]
        if batched:
            return {"image": image, "frame": torch.from_numpy(frames)}
        return {"image": image[0], "frame": int(frames[0])}


def _windows_per_second(loader, batches: int) -> tuple[float, float]:
    """(windows per second of wall time, windows per CPU-second of this process) over ``batches`` batches."""
    iterator = iter(loader)
    next(iterator)  # warm-up: starts the workers, faults in the first pages
    wall, cpu = time.perf_counter(), time.process_time()
    n = sum(len(batch["video"]) for _, batch in zip(range(batches), iterator))
    return n / (time.perf_counter() - wall), n / max(time.process_time() - cpu, 1e-9)


def bench_dataset(args) -> int:
    """``python -m talkinghead bench dataset --data DIR``: windows/s of ``WindowDataset`` in batches of 32,
    shuffled, with 0 and 2 worker processes, through ``dataset.loader`` (whole batches) and through a plain
    ``DataLoader`` (per-window items + default collate). Reads ``args.data``, ``args.split``, ``args.T``,
    ``args.features``, ``args.batches``."""
    import platform

    from torch.utils.data import DataLoader

    from talkinghead.io import InputError

    if not args.data:
        raise InputError("bench dataset needs a prepared folder: --data DIR (made by `python -m talkinghead prepare`)")
    torch.set_num_threads(1)
    start = time.perf_counter()
    dataset = WindowDataset(args.data, args.split, T=args.T, features=args.features)
    size = dataset.data.meta["size"]
    print(f"{len(dataset)} windows of {args.T} frames at {size}x{size} ({args.split}, {args.features} audio); "
          f"dataset built in {time.perf_counter() - start:.2f} s")
    for workers in (0, 2):
        fast, fast_cpu = _windows_per_second(dataset.loader(32, num_workers=workers, seed=0), args.batches)
        plain, plain_cpu = _windows_per_second(
            DataLoader(dataset, batch_size=32, shuffle=True, num_workers=workers,
                       generator=torch.Generator().manual_seed(0)), args.batches)
        # With workers the work happens in other processes, so only the wall-clock figure means anything.
        per_cpu = f" (per CPU-second: {fast_cpu:.0f} and {plain_cpu:.0f})" if workers == 0 else ""
        print(f"num_workers={workers}: {fast:5.0f} windows/s with dataset.loader, {plain:5.0f} with "
              f"DataLoader(batch_size=32){per_cpu}")
    thp = os.environ.get("THP_MEM_ALLOC_ENABLE", "0")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"load {os.getloadavg()[0]:.1f}, torch {torch.__version__}, THP_MEM_ALLOC_ENABLE={thp}")
    return 0
