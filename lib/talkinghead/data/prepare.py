"""Prepare a GRID-layout corpus for training: aligned face crops, audio and landmarks in a few flat arrays.

The prepared folder (fast to read: every array is memory-mapped, a window of frames is one slice)::

    out/meta.json       format, size, margin, fps, sr, source, which landmarks, speakers (split, index), clips
    out/frames.npy      (N, S, S, 3) uint8   aligned crops of every frame of every clip, clip after clip
    out/landmarks.npy   (N, 68, 2) float32   landmarks in crop pixels
    out/audio.npy       (M,) int16           16 kHz audio of every clip, clip after clip (÷ 32768 for floats)
    out/truth.npz       optional, SynthGRID only: per-frame mouth_open, eye_closure, blink, pose (N, …)

Each clip in ``meta["clips"]`` records ``speaker``, ``utt``, ``split``, ``frame_start``, ``n_frames``,
``audio_start``, ``n_samples`` (= n_frames × 640) and ``text``. Each clip has one alignment (from its mean
landmarks, ``face.align.estimate_alignment``), so the head's motion within the clip is kept.
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkinghead.face.align import estimate_alignment, warp

__all__ = ["FORMAT", "PreparedCorpus", "prepare_corpus"]

FORMAT = "talkinghead-prepared"
FPS, SR = 25, 16000
HOP = SR // FPS


@dataclass
class PreparedCorpus:
    """A prepared folder opened for reading (arrays memory-mapped)."""

    root: Path
    meta: dict
    frames: np.ndarray  # (N, S, S, 3) uint8
    landmarks: np.ndarray  # (N, 68, 2) float32
    audio: np.ndarray  # (M,) int16
    truth: dict | None

    @classmethod
    def open(cls, root: str | os.PathLike) -> "PreparedCorpus":
        from talkinghead.io import InputError

        root = Path(root)
        meta_path = root / "meta.json"
        if not meta_path.exists():
            raise InputError(f"{root} is not a prepared corpus (no meta.json): run `python -m talkinghead prepare --corpus DIR --out {root}`")
        meta = json.loads(meta_path.read_text())
        if meta.get("format") != FORMAT:
            raise InputError(f"{meta_path} is not a {FORMAT} file: prepare the corpus again")
        truth = dict(np.load(root / "truth.npz")) if (root / "truth.npz").exists() else None
        return cls(
            root,
            meta,
            np.load(root / "frames.npy", mmap_mode="r"),
            np.load(root / "landmarks.npy", mmap_mode="r"),
            np.load(root / "audio.npy", mmap_mode="r"),
            truth,
        )

    def clips(self, split: str | None = None) -> list[dict]:
        """The clips of one split ("train", "val", "test") or all."""
        return [c for c in self.meta["clips"] if split is None or c["split"] == split]

    def clip_audio(self, clip: dict) -> np.ndarray:
        """(n_samples,) float32 audio of a clip."""
        a = self.audio[clip["audio_start"] : clip["audio_start"] + clip["n_samples"]]
        return a.astype(np.float32) / 32768.0

    def clip_frames(self, clip: dict) -> np.ndarray:
        """(T, S, S, 3) uint8 frames of a clip (a memory-mapped view)."""
        return self.frames[clip["frame_start"] : clip["frame_start"] + clip["n_frames"]]

    def clip_landmarks(self, clip: dict) -> np.ndarray:
        """(T, 68, 2) landmarks of a clip in crop pixels."""
        return self.landmarks[clip["frame_start"] : clip["frame_start"] + clip["n_frames"]]


def _synthgrid_clip(root: Path, speaker: str, utt: str):
    """Frames, audio and exact landmarks of one SynthGRID utterance."""
    from talkinghead.io import load_audio, read_video

    frames, _, _ = read_video(root / speaker / "video" / f"{utt}.mp4")
    audio = load_audio(root / speaker / "audio" / f"{utt}.wav")
    lmk = np.load(root / speaker / "landmarks" / f"{utt}.npy")
    truth_path = root / speaker / "truth" / f"{utt}.npz"
    truth = dict(np.load(truth_path)) if truth_path.exists() else None
    return frames, audio, lmk, truth


def prepare_corpus(
    corpus: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int = 128,
    margin: float = 0.0,
    splits: tuple[str, ...] = ("train", "val", "test"),
    max_per_speaker: int | None = None,
    progress: bool = True,
) -> dict:
    """Prepare a SynthGRID corpus (ground-truth landmarks) into ``out``. Returns the meta dict with ``stats``.

    Args:
        corpus: a folder made by ``python -m talkinghead synth`` (has corpus.json).
        size, margin: the canonical crop (see ``face.align.estimate_alignment``).
        splits: which speaker splits to include.
        max_per_speaker: keep at most this many utterances per speaker (quick experiments).
    """
    from tqdm.auto import tqdm

    from talkinghead.io import InputError

    root = Path(corpus)
    desc_path = root / "corpus.json"
    if not desc_path.exists():
        raise InputError(f"{root} has no corpus.json: give a SynthGRID folder made by `python -m talkinghead synth`")
    desc = json.loads(desc_path.read_text())
    speakers = {s["id"]: s["split"] for s in desc["speakers"] if s["split"] in splits}
    jobs = [(spk, utt) for spk in speakers for utt in desc["utterances"][spk][:max_per_speaker]]
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_frames = sum(len(np.load(root / s / "landmarks" / f"{u}.npy", mmap_mode="r")) for s, u in jobs)
    # Write into temporary arrays and rename at the end: an interrupted run leaves no half-valid folder.
    tmp = {k: out / f".{k}.tmp.npy" for k in ("frames", "landmarks", "audio")}
    frames_mm = np.lib.format.open_memmap(tmp["frames"], mode="w+", dtype=np.uint8, shape=(n_frames, size, size, 3))
    lmk_all = np.zeros((n_frames, 68, 2), np.float32)
    audio_all = np.zeros(n_frames * HOP, np.int16)
    truth_all: dict[str, list] = {}
    clips, f0 = [], 0
    start = time.perf_counter()
    for speaker, utt in tqdm(jobs, desc="prepare", unit="clip", disable=not progress):
        frames, audio, lmk, truth = _synthgrid_clip(root, speaker, utt)
        t = min(len(frames), len(lmk))
        alignment = estimate_alignment(lmk[:t], size=size, margin=margin)
        for i in range(t):
            frames_mm[f0 + i] = warp(frames[i], alignment)
        lmk_all[f0 : f0 + t] = alignment.to_crop(lmk[:t])
        a = np.zeros(t * HOP, np.float32)
        a[: min(len(audio), t * HOP)] = audio[: t * HOP]
        audio_all[f0 * HOP : (f0 + t) * HOP] = np.round(a * 32767).astype(np.int16)
        if truth is not None:
            for k in ("mouth_open", "eye_closure", "blink", "brow", "pose"):
                truth_all.setdefault(k, []).append(truth[k][:t])
        clips.append({
            "speaker": speaker, "utt": utt, "split": speakers[speaker], "frame_start": f0, "n_frames": t,
            "audio_start": f0 * HOP, "n_samples": t * HOP, "text": desc.get("texts", {}).get(f"{speaker}/{utt}", ""),
        })
        f0 += t
    frames_mm.flush()
    del frames_mm
    np.save(tmp["landmarks"], lmk_all[:f0])
    np.save(tmp["audio"], audio_all[: f0 * HOP])
    for k, path in tmp.items():
        os.replace(path, out / f"{k}.npy")
    if truth_all:
        np.savez(out / "truth.npz", **{k: np.concatenate(v) for k, v in truth_all.items()})
    meta = {
        "format": FORMAT,
        "version": 1,
        "size": size,
        "margin": margin,
        "fps": FPS,
        "sr": SR,
        "source": str(root.resolve()),
        "landmarks": "ground truth",
        "speakers": {s: {"split": split, "index": i} for i, (s, split) in enumerate(speakers.items())},
        "clips": clips,
    }
    seconds = time.perf_counter() - start
    meta_tmp = out / ".meta.json.tmp"
    meta_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(meta_tmp, out / "meta.json")
    meta["stats"] = {"clips": len(clips), "frames": f0, "seconds": round(seconds, 1)}
    return meta
