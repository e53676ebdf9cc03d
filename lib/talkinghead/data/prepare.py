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

Landmarks: SynthGRID brings exact ones (``meta["landmarks"] == "ground truth"``). Any other GRID-layout corpus
(the real GRID) gets them from a detector (``face.detect``; ``meta["landmarks"] == "detected"`` and
``meta["detector"]``), run on every ``detect_every``-th frame and interpolated linearly in between; a clip whose
face is missing in more than ``max_missing`` of the detected frames is skipped and counted in ``meta["skipped"]``.
Clips are decoded, detected and warped in parallel processes; the arrays are written in corpus order, so the
output does not depend on the number of workers.
"""
from __future__ import annotations

import functools
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkinghead.face.align import estimate_alignment, warp

__all__ = [
    "FORMAT", "BACKENDS", "PreparedCorpus", "prepare_corpus", "detect_clip_landmarks", "add_prepare_parser",
    "main_prepare",
]

log = logging.getLogger(__name__)

FORMAT = "talkinghead-prepared"
FPS, SR = 25, 16000
HOP = SR // FPS
BACKENDS = ("auto", "dlib", "fan", "synthgrid")
_TRUTH_KEYS = ("mouth_open", "eye_closure", "blink", "brow", "pose")


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


class _NpyAppender:
    """Write a .npy file row block by row block when the number of rows is only known at the end.

    A fixed-size header is reserved first and rewritten with the final shape by ``close``: readers (``np.load``,
    memory maps) see an ordinary .npy file, and nothing is held in memory or copied afterwards.
    """

    _HEADER_BYTES = 256  # magic (8) + length (2) + the header dict padded with spaces; a multiple of 64

    def __init__(self, path: Path, dtype: np.dtype, row_shape: tuple[int, ...]):
        self.path, self.dtype, self.row_shape, self.rows = path, np.dtype(dtype), tuple(row_shape), 0
        self._file = open(path, "wb")
        self._file.write(b"\0" * self._HEADER_BYTES)

    def append(self, block: np.ndarray) -> None:
        """Append rows of shape (n, *row_shape)."""
        block = np.ascontiguousarray(block, dtype=self.dtype)
        assert block.shape[1:] == self.row_shape, (block.shape, self.row_shape)
        self._file.write(block.data)
        self.rows += len(block)

    def close(self) -> None:
        header = repr({"descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
                       "shape": (self.rows, *self.row_shape)})
        body = header.ljust(self._HEADER_BYTES - 10 - 1).encode("latin1") + b"\n"
        self._file.seek(0)
        self._file.write(np.lib.format.magic(1, 0) + len(body).to_bytes(2, "little") + body)
        self._file.close()


@dataclass(frozen=True)
class _Settings:
    """What every clip job needs to know (sent to the worker processes with each job)."""

    size: int
    margin: float
    detect: Callable[[np.ndarray], np.ndarray] | None  # None: the corpus has exact landmarks
    detect_every: int
    max_missing: float


def _detect_with(image: np.ndarray, *, backend: str, device) -> np.ndarray:
    """(68, 2) landmarks of the largest face in ``image`` with a ``face.detect`` backend."""
    from talkinghead.face.detect import detect_landmarks

    return detect_landmarks(image, backend=backend, device=device).lmk


def detect_clip_landmarks(
    frames: np.ndarray,
    detect: Callable[[np.ndarray], np.ndarray],
    *,
    every: int = 1,
) -> tuple[np.ndarray, int, int]:
    """Landmarks of every frame of a clip from detections on every ``every``-th frame (and the last).

    Frames where detection fails (``InputError``: no face) are left out; between the frames that were detected,
    each coordinate is interpolated linearly in time, and held constant before the first and after the last.

    Args:
        frames: (T, H, W, 3) uint8.
        detect: image (H, W, 3) uint8 -> (68, 2) landmarks in pixels; raises InputError when there is no face.
        every: detect on frames 0, every, 2·every, …, and T-1.
    Returns:
        lmk (T, 68, 2) float32 (NaN everywhere when no frame had a face), n_tried, n_missing.
    """
    from talkinghead.io import InputError

    t = len(frames)
    tried = sorted(set(range(0, t, every)) | {t - 1})
    found, points = [], []
    for i in tried:
        try:
            points.append(np.asarray(detect(frames[i]), dtype=np.float64).reshape(68, 2))
            found.append(i)
        except InputError:
            continue
    n_missing = len(tried) - len(found)
    if not found:
        return np.full((t, 68, 2), np.nan, np.float32), len(tried), n_missing
    points = np.stack(points).reshape(len(found), -1)                            # (K, 136)
    lmk = np.stack([np.interp(np.arange(t), found, points[:, j]) for j in range(points.shape[1])], axis=1)
    return lmk.reshape(t, 68, 2).astype(np.float32), len(tried), n_missing


def _prepare_clip(job: tuple) -> dict:
    """Decode, (detect,) align and warp one utterance. Returns arrays for the prepared folder, or why it was skipped."""
    from talkinghead.io import InputError, load_audio, read_video

    utt, settings = job
    try:
        frames, fps, video_audio = read_video(utt.video)
        audio = load_audio(utt.audio) if utt.audio is not None else video_audio
    except InputError as err:
        return {"skipped": "unreadable", "why": str(err)}
    if fps and abs(fps - FPS) > 0.01:  # frames are not resampled: another rate would drift against the audio
        return {"skipped": f"not {FPS} fps", "why": f"{utt.video} is {fps:g} fps: convert it first, "
                                                   f"e.g. ffmpeg -i in.mp4 -r {FPS} out.mp4"}
    if audio is None:
        return {"skipped": "no audio", "why": f"{utt.video} has no audio track and no .wav was found"}
    truth = None
    if settings.detect is None:
        lmk = np.load(utt.landmarks)
        if utt.truth is not None:
            truth = dict(np.load(utt.truth))
    else:
        lmk, n_tried, n_missing = detect_clip_landmarks(frames, settings.detect, every=settings.detect_every)
        if n_missing > settings.max_missing * n_tried or n_missing == n_tried:
            return {"skipped": "no face", "why": f"no face in {n_missing} of {n_tried} detected frames"}
    t = min(len(frames), len(lmk))
    alignment = estimate_alignment(lmk[:t], size=settings.size, margin=settings.margin)
    crops = np.stack([warp(frames[i], alignment) for i in range(t)])             # (t, S, S, 3) uint8
    a = np.zeros(t * HOP, np.float32)
    a[: min(len(audio), t * HOP)] = audio[: t * HOP]
    return {
        "frames": crops,
        "landmarks": alignment.to_crop(lmk[:t]).astype(np.float32),
        "audio": np.round(a * 32767).astype(np.int16),
        "truth": None if truth is None else {k: truth[k][:t] for k in _TRUTH_KEYS},
    }


def prepare_corpus(
    corpus: str | os.PathLike,
    out: str | os.PathLike,
    *,
    size: int = 128,
    margin: float = 0.0,
    splits: tuple[str, ...] = ("train", "val", "test"),
    max_per_speaker: int | None = None,
    progress: bool = True,
    backend: str | Callable[[np.ndarray], np.ndarray] = "dlib",
    detect_every: int = 1,
    max_missing: float = 0.2,
    split_file: str | os.PathLike | None = None,
    workers: int | None = 1,
    device=None,
) -> dict:
    """Prepare a GRID-layout corpus (SynthGRID or the real GRID) into ``out``. Returns the meta dict with ``stats``.

    Args:
        corpus: a SynthGRID folder (``python -m talkinghead synth``) or the real GRID in a layout
            ``data.corpus.GridCorpus`` reads (docs/DATA.md).
        size, margin: the canonical crop (see ``face.align.estimate_alignment``).
        splits: which speaker splits to include.
        max_per_speaker: keep at most this many utterances per speaker (quick experiments).
        backend: landmark detector for corpora without exact landmarks: a ``face.detect`` backend name
            ("auto", "dlib", "fan", "synthgrid") or a function image (H, W, 3) uint8 -> (68, 2) landmarks raising
            ``InputError`` when there is no face (a module-level function when ``workers`` > 1). Unused for SynthGRID.
        detect_every: detect on every k-th frame and interpolate in between (1: every frame).
        max_missing: skip a clip when more than this fraction of its detected frames has no face.
        split_file: JSON overriding the corpus's split by speaker (see ``GridCorpus``).
        workers: processes decoding and warping clips in parallel (None: one per core; 1: in this process).
        device: torch device for the "fan" and "synthgrid" backends (the caller's choice; default CPU).

    Raises:
        InputError: no such corpus, no speaker in ``splits``, or every clip skipped.
    """
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    from talkinghead.data.corpus import GridCorpus
    from talkinghead.io import InputError

    if detect_every < 1:
        raise ValueError(f"detect_every must be at least 1, got {detect_every}")
    if not 0.0 <= max_missing <= 1.0:
        raise ValueError(f"max_missing is a fraction of frames, got {max_missing}: use a value in [0, 1]")
    if isinstance(backend, str) and backend not in BACKENDS:
        raise ValueError(f"unknown landmark backend {backend!r}: use one of {', '.join(BACKENDS)}")
    grid = GridCorpus(corpus, split_file=split_file)
    utterances = [u for s in grid.speakers if grid.split[s] in splits
                  for u in grid.utterances(speaker=s)[:max_per_speaker]]
    if not utterances:
        raise InputError(f"{grid.root} has no speaker in the splits {', '.join(splits)}: "
                         f"its split is {grid.split}")
    exact = all(u.landmarks is not None for u in utterances)
    if exact:
        detect = None
    elif callable(backend):
        detect = backend
    else:
        detect = functools.partial(_detect_with, backend=backend, device=device)
    settings = _Settings(size, margin, detect, detect_every, max_missing)
    jobs = [(u, settings) for u in utterances]
    workers = min(workers or os.cpu_count() or 1, len(jobs))

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    # Write into temporary arrays and rename at the end: an interrupted run leaves no half-valid folder.
    tmp = {k: out / f".{k}.tmp.npy" for k in ("frames", "landmarks", "audio")}
    writers = {
        "frames": _NpyAppender(tmp["frames"], np.uint8, (size, size, 3)),
        "landmarks": _NpyAppender(tmp["landmarks"], np.float32, (68, 2)),
        "audio": _NpyAppender(tmp["audio"], np.int16, ()),
    }
    truth_all: dict[str, list] = {}
    clips, speakers, skipped, f0 = [], {}, {}, 0
    start = time.perf_counter()
    bar = tqdm(total=len(jobs), desc="prepare", unit="clip", disable=not progress)
    try:
        with get_context("spawn").Pool(workers) if workers > 1 else _Serial() as pool:
            # imap keeps corpus order, so the output is the same for any number of workers.
            for utt, result in zip(utterances, pool.imap(_prepare_clip, jobs, chunksize=1)):
                bar.update(1)
                if "skipped" in result:
                    skipped[result["skipped"]] = skipped.get(result["skipped"], 0) + 1
                    log.info("skipping %s: %s", utt.id, result["why"])
                    continue
                t = len(result["frames"])
                for k in ("frames", "landmarks", "audio"):
                    writers[k].append(result[k])
                if result["truth"] is not None:
                    for k, v in result["truth"].items():
                        truth_all.setdefault(k, []).append(v)
                speakers.setdefault(utt.speaker, {"split": grid.split[utt.speaker], "index": len(speakers)})
                clips.append({
                    "speaker": utt.speaker, "utt": utt.utt, "split": grid.split[utt.speaker], "frame_start": f0,
                    "n_frames": t, "audio_start": f0 * HOP, "n_samples": t * HOP, "text": utt.text,
                })
                f0 += t
                bar.set_postfix(fps=f"{f0 / (time.perf_counter() - start):.0f}")
    finally:
        bar.close()
        for writer in writers.values():
            writer.close()
    if not clips:
        for path in tmp.values():
            path.unlink(missing_ok=True)
        raise InputError(f"every clip of {grid.root} was skipped ({skipped}): check the videos play, and that the "
                         f"faces are frontal and large enough for the {backend!r} detector")
    for k, path in tmp.items():
        os.replace(path, out / f"{k}.npy")
    if truth_all:
        np.savez(out / "truth.npz", **{k: np.concatenate(v) for k, v in truth_all.items()})
    else:
        (out / "truth.npz").unlink(missing_ok=True)  # a stale one from an earlier SynthGRID run would misalign
    meta = {
        "format": FORMAT,
        "version": 1,
        "size": size,
        "margin": margin,
        "fps": FPS,
        "sr": SR,
        "source": str(grid.root.resolve()),
        "landmarks": "ground truth" if exact else "detected",
        "speakers": speakers,
        "clips": clips,
    }
    if not exact:
        meta["detector"] = {"backend": backend if isinstance(backend, str) else getattr(backend, "__name__", "custom"),
                            "detect_every": detect_every, "max_missing": max_missing}
        meta["skipped"] = skipped
    seconds = time.perf_counter() - start
    meta_tmp = out / ".meta.json.tmp"
    meta_tmp.write_text(json.dumps(meta, indent=1))
    os.replace(meta_tmp, out / "meta.json")
    meta["stats"] = {"clips": len(clips), "frames": f0, "seconds": round(seconds, 1), "workers": workers,
                     "frames_per_second": round(f0 / seconds, 1), "skipped": skipped,
                     "speakers_without_video": grid.skipped}
    return meta


class _Serial:
    """The one-process stand-in for a Pool: same ``imap``, no processes."""

    def imap(self, fn, iterable, chunksize: int = 1):
        return map(fn, iterable)

    def __enter__(self) -> "_Serial":
        return self

    def __exit__(self, *exc) -> None:
        return None


# ------------------------------------------------------------------------------------------------- command line


def add_prepare_parser(sub) -> None:
    """Add ``prepare`` to the CLI's subparsers (``python -m talkinghead prepare --corpus DIR --out DIR``)."""
    p = sub.add_parser("prepare", help="aligned face crops, audio and landmarks of a corpus, ready for training")
    p.add_argument("--corpus", required=True, help="a SynthGRID folder (from `synth`) or the real GRID (docs/DATA.md)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--size", type=int, default=128, help="crop size in pixels")
    p.add_argument("--margin", type=float, default=0.0, help="extra context around the face (0.2 = face 20%% smaller)")
    p.add_argument("--max-per-speaker", type=int, default=None, help="at most this many utterances per speaker")
    p.add_argument("--backend", choices=BACKENDS, default="dlib",
                   help="landmark detector for corpora without exact landmarks (real GRID); SynthGRID ignores it")
    p.add_argument("--detect-every", type=int, default=1,
                   help="detect landmarks on every k-th frame and interpolate between (faster on real GRID)")
    p.add_argument("--max-missing", type=float, default=0.2,
                   help="skip a clip when more than this fraction of its detected frames has no face")
    p.add_argument("--split-file", default=None,
                   help='JSON split by speaker, e.g. {"val": ["s3", "s4"], "test": ["s1", "s2", "s20", "s22"]}')
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--device", default=None, help="torch device of the fan/synthgrid detectors (default: cpu)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main_prepare)


def main_prepare(args) -> int:
    """Run ``prepare`` from parsed CLI arguments; prints what was made and how fast."""
    meta = prepare_corpus(
        args.corpus, args.out, size=args.size, margin=args.margin, max_per_speaker=args.max_per_speaker,
        backend=args.backend, detect_every=args.detect_every, max_missing=args.max_missing,
        split_file=args.split_file, workers=args.workers, device=args.device, progress=not args.quiet,
    )
    stats = meta["stats"]
    splits = {}
    for speaker, info in meta["speakers"].items():
        splits.setdefault(info["split"], []).append(speaker)
    print(f"prepared {stats['clips']} clips, {stats['frames']} frames at {args.size}x{args.size} in "
          f"{stats['seconds']} s ({stats['frames_per_second']:.0f} frames/s, {stats['workers']} workers; "
          f"landmarks: {meta['landmarks']}) -> {args.out}")
    print("speakers by split: " + ", ".join(f"{k}: {' '.join(v)}" for k, v in splits.items()))
    if stats["skipped"]:
        print("skipped clips: " + ", ".join(f"{n} {why}" for why, n in stats["skipped"].items()))
    for speaker, why in stats["speakers_without_video"].items():
        print(f"skipped speaker {speaker}: {why}")
    return 0
