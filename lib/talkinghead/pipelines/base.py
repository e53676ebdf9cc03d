"""What every pipeline shares: photo → face → aligned crop, speech → 16 kHz mono, crops → paste-back → mp4.

A pipeline subclass supplies ``crop_size``/``margin`` (the crops its model was trained on) and
``generate_crops(crop, audio, *, seed, progress, **controls)``, an iterator of (n, S, S, 3) uint8 chunks. The
base class does the rest, in numbered steps, and streams: ``to_video`` writes a clip of any length to an mp4 in
bounded memory; ``__call__`` returns the frames of a (short) clip in memory.
"""
from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from talkinghead.io import InputError, VideoWriter, load_audio, load_image

__all__ = ["TalkingHeadOutput", "TalkingHeadPipeline", "PreparedInput", "Progress"]

Progress = Callable[[str, float], None]  # (stage name, fraction done of that stage in [0, 1])

SR, FPS = 16000, 25
MAX_IMAGE_SIDE = 1024  # photos are downscaled to this before anything else (detection, paste-back)


@dataclass
class TalkingHeadOutput:
    """A generated clip.

    Attributes:
        frames: (T, H, W, 3) uint8: the whole photo with the face animated, or the S×S crops (``paste_back=False``).
        fps: frames per second.
        audio: float32 (N,) mono waveform at ``sr``.
        sr: sample rate of ``audio``.
        extras: what else the pipeline knows: ``crops`` (T, S, S, 3) uint8, ``landmarks`` (68, 2) of the face in
            the photo, ``n_faces`` found, ``alignment``, ``timings`` (seconds per stage).
    """

    frames: np.ndarray
    fps: float
    audio: np.ndarray
    sr: int
    extras: dict = field(default_factory=dict)

    def save(self, path: str | os.PathLike, **kw) -> Path:
        """Write the clip with its sound to an mp4 (atomically: the file appears complete or not at all)."""
        from talkinghead.io import write_video

        return write_video(path, [self.frames], self.fps, audio=self.audio, sr=self.sr, **kw)


@dataclass
class PreparedInput:
    """The photo and speech after steps 1–3: what generation needs."""

    image: np.ndarray           # (H, W, 3) uint8, downscaled to MAX_IMAGE_SIDE
    crop: np.ndarray            # (S, S, 3) uint8 aligned face crop
    alignment: Any              # face.align.Alignment of the crop in ``image``
    landmarks: np.ndarray       # (68, 2) face landmarks in ``image`` pixels
    n_faces: int                # faces found (the largest is used)
    audio: np.ndarray           # float32 (N,) at 16 kHz
    n_frames: int               # frames to make (25 fps)
    timings: dict               # seconds per stage


def _downscale(image: np.ndarray, side: int) -> np.ndarray:
    from PIL import Image

    h, w = image.shape[:2]
    if max(h, w) <= side:
        return image
    k = side / max(h, w)
    return np.asarray(Image.fromarray(image).resize((round(w * k), round(h * k)), Image.LANCZOS))


class TalkingHeadPipeline:
    """Photo + speech → talking-head video. Subclasses implement ``generate_crops``; see the module docstring.

    Class attributes a subclass sets: ``name`` (registry name), ``crop_size``, ``margin`` (the canonical crop the
    model was trained on), ``card`` (paper, data, measured table: what the demo shows).
    """

    name = "base"
    crop_size = 128
    margin = 0.0
    card: dict = {}

    def __init__(self, *, device: str = "cpu", detector: str = "auto", max_seconds: float = 600.0):
        self.device = device
        self.detector = detector
        self.max_seconds = max_seconds

    # -- what a subclass implements

    def generate_crops(self, crop: np.ndarray, audio: np.ndarray, n_frames: int, *, seed: int,
                       progress: Progress | None = None, **controls) -> Iterator[np.ndarray]:
        """Yield (n, S, S, 3) uint8 chunks of generated crops, ``n_frames`` in all."""
        raise NotImplementedError

    # -- shared steps

    def prepare(self, image: Any, audio: Any, *, detector: str | None = None, progress: Progress | None = None) -> PreparedInput:
        """Steps 1–3: load and downscale the photo, find the face and cut the aligned crop, load the speech."""
        from talkinghead.face.align import estimate_alignment, warp
        from talkinghead.face.detect import detect_landmarks

        timings, t0 = {}, time.perf_counter()
        report = progress or (lambda stage, done: None)
        # 1. The photo: any format, EXIF-rotated, RGB, downscaled so a 50-megapixel photo costs no more than 1 MP.
        report("finding the face", 0.0)
        name = Path(image).name if isinstance(image, (str, os.PathLike)) else "the photo"
        photo = _downscale(load_image(image), MAX_IMAGE_SIDE)
        # 2. The face: landmarks, then the canonical crop the model was trained on.
        backend = detector or self.detector
        try:
            face = detect_landmarks(photo, backend=backend, device=self.device)
        except InputError as err:
            raise InputError(str(err).replace("the photo", name)) from None
        alignment = estimate_alignment(face.lmk, size=self.crop_size, margin=self.margin)
        crop = warp(photo, alignment)
        timings["face"] = time.perf_counter() - t0
        report("finding the face", 1.0)
        # 3. The speech: any format and rate, mono 16 kHz, at most max_seconds.
        t0 = time.perf_counter()
        report("reading the audio", 0.0)
        wave = load_audio(audio, sr=SR, max_seconds=self.max_seconds)
        n_frames = max(1, int(np.ceil(len(wave) * FPS / SR)))
        timings["audio"] = time.perf_counter() - t0
        return PreparedInput(photo, crop, alignment, face.lmk, face.n_faces, wave, n_frames, timings)

    def frames(self, prepared: PreparedInput, *, seed: int | None = None, paste_back: bool = True,
               progress: Progress | None = None, **controls) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """Steps 4–5: generate and (optionally) paste back, chunk by chunk: yields (crops, frames) uint8."""
        from talkinghead.face.align import PasteBack

        seed = 0 if seed is None else int(seed)
        paster = PasteBack(prepared.image, prepared.alignment) if paste_back else None
        t0 = time.perf_counter()
        for crops in self.generate_crops(prepared.crop, prepared.audio, prepared.n_frames, seed=seed, progress=progress, **controls):
            yield crops, (paster(crops) if paster is not None else crops)
        prepared.timings["generate"] = time.perf_counter() - t0

    def __call__(self, image: Any, audio: Any, *, seed: int | None = None, paste_back: bool = True,
                 detector: str | None = None, progress: Progress | None = None, **controls) -> TalkingHeadOutput:
        """Animate the face in ``image`` with the speech in ``audio``.

        Args:
            image: a photo (path, PIL image, (H, W, 3) array) with one frontal face (several: the largest is used).
            audio: speech (path to any audio/video file, (N,) array at 16 kHz, or a (rate, data) tuple).
            seed: the model's randomness (blinks, small motions); same seed, same video.
            paste_back: return the whole photo with the face animated (True) or the aligned crops (False).
            detector: face landmark backend ("auto", "dlib", "fan"; "synthgrid" for an already aligned crop).
            progress: called with (stage name, fraction done).
            controls: model-specific controls (see the pipeline's ``card["controls"]``).
        Raises:
            talkinghead.io.InputError: the photo or the audio cannot be used (the message says why and what to do).
        """
        prepared = self.prepare(image, audio, detector=detector, progress=progress)
        crops, frames = [], []
        for c, f in self.frames(prepared, seed=seed, paste_back=paste_back, progress=progress, **controls):
            crops.append(c)
            frames.append(f)
        return TalkingHeadOutput(np.concatenate(frames), float(FPS), prepared.audio, SR, self._extras(prepared, np.concatenate(crops)))

    def to_video(self, image: Any, audio: Any, path: str | os.PathLike, *, seed: int | None = None, paste_back: bool = True,
                 detector: str | None = None, progress: Progress | None = None, **controls) -> tuple[Path, dict]:
        """Like ``__call__`` but streams the frames into an mp4 at ``path`` (bounded memory for any length).

        Returns the path and the extras (without ``crops``); nothing is left at ``path`` if anything fails.
        """
        prepared = self.prepare(image, audio, detector=detector, progress=progress)
        with VideoWriter(path, FPS, audio=prepared.audio, sr=SR) as writer:
            for _, frames in self.frames(prepared, seed=seed, paste_back=paste_back, progress=progress, **controls):
                writer.write(frames)
            t0 = time.perf_counter()
            if progress:
                progress("encoding", 0.0)
        prepared.timings["encode"] = time.perf_counter() - t0
        return writer.path, self._extras(prepared, None)

    @staticmethod
    def _extras(prepared: PreparedInput, crops: np.ndarray | None) -> dict:
        extras = {"landmarks": prepared.landmarks, "n_faces": prepared.n_faces, "alignment": prepared.alignment,
                  "crop": prepared.crop, "timings": dict(prepared.timings)}
        if crops is not None:
            extras["crops"] = crops
        return extras
