"""The main tab's work: face photo + speech → talking-head video, measured.

``Studio.generate`` is the event function (plain, importable, testable without a server). It streams the frames of
any pipeline from ``demo.models.PipelineStore`` into an mp4 in bounded memory, keeps the face crops of the first
``analyse_seconds`` and measures them with the project's SynthGRID landmark net (mouth opening, eye aspect ratio,
blinks) and SyncNet (LSE-C, LSE-D, AV offset).
"""
from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import gradio as gr
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from talkinghead.data.synthgrid.corpus import HELDOUT_VARIANTS, TRAIN_VARIANTS
from talkinghead.hub import WeightsError
from talkinghead.io import InputError

from demo.common import gpu, new_output_dir, whole_number
from demo.models import CONTROLS, PipelineStore, card_markdown, format_number, supported_controls

__all__ = ["SPEECH_FROM", "VARIANTS", "Measures", "Studio", "TalkResult", "draw_landmarks", "plot_measures", "speech_input"]

matplotlib.use("Agg")  # gr.Plot imports pyplot to close figures: no GUI backend inside a server thread

SR, FPS = 16000, 25
SPEECH_FROM = ("Recording or file", "Typed text")
MAX_TEXT = 1000  # characters of typed text, about a minute of speech
VARIANTS = (("default", ""), *[(v, v) for v in TRAIN_VARIANTS + HELDOUT_VARIANTS])  # espeak-ng voice variants
ANALYSE_ENV = "TALKINGHEAD_DEMO_ANALYSE_SECONDS"  # how much of a clip is measured (default 60 s): bounds memory
# Where each stage's own fraction lands on the one progress bar (stage names as the pipelines report them).
STAGES = {
    "loading the model": (0.0, 0.05),
    "speaking the text": (0.05, 0.1),
    "finding the face": (0.1, 0.2),
    "reading the audio": (0.2, 0.25),
    "generating frames": (0.25, 0.85),
    "encoding": (0.85, 0.9),
    "measuring the result": (0.9, 1.0),
}


class TalkResult(NamedTuple):
    """What one generation shows, in the order of the page's outputs."""

    video: str                 # mp4 path (H.264 + AAC, 25 fps)
    tracks: Figure             # waveform · mouth opening · eye aspect ratio with blinks
    face: np.ndarray           # (H, W, 3) uint8: the photo with the landmarks found and the crop outline
    summary: str               # markdown for people
    scores: dict               # the same numbers for programs
    trajectory: Figure | None  # StyleGAN pipelines: the latent path (None for others)
    before: np.ndarray | None  # StyleGAN pipelines: the inverted photo before pivotal tuning
    after: np.ndarray | None   # … and after it
    inversion: str             # reconstruction scores as markdown ("" when there is no inversion)


def speech_input(audio: Any, speech_from: str | None, text: str | None, language: str | None, variant: str | None) -> Any:
    """The speech to animate: the uploaded or recorded ``audio``, or ``text`` spoken by espeak-ng.

    Returns:
        a path or a ``(rate, samples)`` tuple for ``talkinghead.io.load_audio``.
    Raises:
        gr.Error: nothing to say, text too long, or an unknown voice.
    """
    if speech_from == SPEECH_FROM[1]:
        from talkinghead.audio.tts import Voice, synthesize

        text = (text or "").strip()
        if not text:
            raise gr.Error("no text to speak: type a sentence, or choose 'Recording or file' and give a speech clip")
        if len(text) > MAX_TEXT:
            raise gr.Error(f"the text is {len(text)} characters long: shorten it to {MAX_TEXT} or fewer")
        try:
            speech = synthesize(text, Voice(language=language or "en-US", variant=variant or ""), sr=SR)
        except ValueError as err:  # an unknown language or variant
            raise gr.Error(str(err)) from err
        return speech.sr, speech.audio
    if audio is None:
        raise gr.Error("no speech given: upload or record a clip, or choose 'Typed text' and type what to say")
    return audio


class Measures:
    """The measuring networks (landmarks, SyncNet), loaded once; a missing file leaves that measure out, with a note."""

    def __init__(self):
        self._nets: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _get(self, name: str):
        with self._lock:
            if name not in self._nets:
                try:
                    if name == "landmarks":
                        from talkinghead.nn.landmark_net import LandmarkNet

                        self._nets[name] = LandmarkNet.from_pretrained()
                    else:
                        from talkinghead.nn.syncnet import SyncNet

                        self._nets[name] = SyncNet.from_pretrained()
                except WeightsError as err:
                    self._nets[name] = err
            return self._nets[name]

    def __call__(self, crops: np.ndarray, audio: np.ndarray) -> tuple[dict, list[str]]:
        """Measure (T, S, S, 3) uint8 crops at 25 fps with their 16 kHz audio.

        Returns:
            (measures, notes): ``mouth`` and ``ear`` (T,) series, ``blinks`` [(start, end) frames], ``sync``
            (offset, lse_c, lse_d) when measurable; notes say what could not be measured and why.
        """
        from talkinghead.face.landmarks import detect_blinks, eye_aspect_ratio, mouth_opening
        from talkinghead.metrics.sync import VIDEO_WINDOW, sync_scores

        out, notes = {}, []
        net = self._get("landmarks")
        if isinstance(net, Exception):
            notes.append(f"mouth and blinks not measured: {net}")
        else:
            lmk = net.predict(crops)  # (T, 68, 2) in crop pixels
            out["mouth"], out["ear"] = mouth_opening(lmk), eye_aspect_ratio(lmk)
            out["blinks"] = [(b.start, b.end) for b in detect_blinks(out["ear"], fps=FPS)]
        net = self._get("syncnet")
        if isinstance(net, Exception):
            notes.append(f"sync not measured: {net}")
        elif len(crops) < VIDEO_WINDOW:
            notes.append(f"sync not measured: the clip is shorter than {VIDEO_WINDOW} frames ({VIDEO_WINDOW / FPS:.1f} s)")
        else:
            sync = sync_scores(net, crops, audio[: len(crops) * SR // FPS])
            out["sync"] = {"offset": sync.offset, "lse_c": sync.lse_c, "lse_d": sync.lse_d}
        return out, notes


def _envelope(audio: np.ndarray, bins: int = 4000) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(times, low, high): the waveform's min/max in ``bins`` slices, so a 10-minute clip plots as fast as a short one."""
    n = max(1, len(audio) // bins)
    usable = audio[: len(audio) // n * n].reshape(-1, n)
    return (np.arange(len(usable)) + 0.5) * n / SR, usable.min(1), usable.max(1)


def plot_measures(audio: np.ndarray, measures: Mapping[str, Any]) -> Figure:
    """Waveform; predicted mouth opening; eye aspect ratio with the detected blinks shaded — one time axis.

    Args:
        audio: (N,) float32 at 16 kHz, the whole clip.
        measures: from ``Measures``: ``mouth``/``ear`` (T,) for the first T frames, ``blinks`` [(start, end)].
    """
    fig = Figure(figsize=(8, 5), layout="constrained")
    ax_wave, ax_mouth, ax_eye = fig.subplots(3, 1, sharex=True, height_ratios=(1.2, 1, 1))
    t, low, high = _envelope(audio)
    ax_wave.fill_between(t, low, high, color="0.35", lw=0)
    ax_wave.set_ylabel("waveform")
    if "mouth" in measures:
        t_frames = np.arange(len(measures["mouth"])) / FPS
        ax_mouth.plot(t_frames, measures["mouth"], color="C3")
        ax_eye.plot(t_frames, measures["ear"], color="C2")
        for start, end in measures["blinks"]:
            ax_eye.axvspan(start / FPS, end / FPS, color="C0", alpha=0.25, lw=0)
        ax_eye.set_title(f"{len(measures['blinks'])} blinks (shaded)", fontsize=9, loc="right")
        if len(t_frames) / FPS < len(audio) / SR - 1:  # only the first analyse_seconds were measured
            ax_mouth.set_title(f"measured: the first {len(t_frames) / FPS:.0f} s", fontsize=9, loc="right")
    else:
        for ax in (ax_mouth, ax_eye):
            ax.text(0.5, 0.5, "not measured (landmark weights missing)", ha="center", va="center", transform=ax.transAxes)
    ax_mouth.set_ylabel("mouth opening")
    ax_eye.set_ylabel("eye aspect ratio")
    ax_eye.set_xlabel("time (s)")
    ax_eye.set_xlim(0, max(len(audio) / SR, 1 / FPS))
    for ax in (ax_wave, ax_mouth, ax_eye):
        ax.grid(alpha=0.3)
    return fig


def draw_landmarks(image: np.ndarray, lmk: np.ndarray, alignment: Any = None) -> np.ndarray:
    """The photo with its 68 landmarks as dots and, given the ``alignment``, the outline of the crop the model saw.

    Args:
        image: (H, W, 3) uint8.
        lmk: (68, 2) in ``image`` pixels.
        alignment: ``face.align.Alignment`` of the crop in ``image``.
    """
    from PIL import Image, ImageDraw

    canvas = Image.fromarray(image)
    draw = ImageDraw.Draw(canvas)
    radius = max(1.5, max(image.shape[:2]) / 300)
    if alignment is not None:
        s = alignment.size
        corners = alignment.to_image(np.array([[0, 0], [s, 0], [s, s], [0, s], [0, 0]], np.float64))
        draw.line([tuple(p) for p in corners], fill=(255, 200, 0), width=max(1, round(radius)))
    for x, y in np.asarray(lmk, np.float64):
        draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=(0, 255, 80))
    return np.asarray(canvas)


def plot_trajectory(trajectory: np.ndarray) -> Figure:
    """A (T, D) latent path: its first two principal components over time."""
    centred = trajectory.reshape(len(trajectory), -1) - trajectory.reshape(len(trajectory), -1).mean(0)
    _, _, vt = np.linalg.svd(centred, full_matrices=False)
    pcs = centred @ vt[:2].T  # (T, 2)
    fig = Figure(figsize=(5, 4), layout="constrained")
    ax = fig.subplots()
    points = ax.scatter(pcs[:, 0], pcs[:, 1] if pcs.shape[1] > 1 else 0 * pcs[:, 0], c=np.arange(len(pcs)) / FPS, s=8)
    fig.colorbar(points, ax=ax, label="time (s)")
    ax.set_xlabel("PC 1")
    ax.set_ylabel("PC 2")
    return fig


def _seconds(timings: Mapping[str, float]) -> str:
    return " · ".join(f"{stage} {seconds:.1f} s" for stage, seconds in timings.items())


@gpu
def render(pipeline, photo: Any, speech: Any, path: str, *, seed: int, paste_back: bool, controls: dict,
           keep: int, report: Callable[[str, float], None]):
    """Steps 1–6 of one clip, streamed: prepare, generate chunk by chunk into the mp4 at ``path``, keep the first
    ``keep`` crops. Returns (prepared input, kept crops (n, S, S, 3) uint8, frame size (H, W))."""
    from talkinghead.io import VideoWriter

    prepared = pipeline.prepare(photo, speech, progress=report)
    kept, n_kept, size = [], 0, None
    with VideoWriter(path, FPS, audio=prepared.audio, sr=SR) as writer:
        for crops, frames in pipeline.frames(prepared, seed=seed, paste_back=paste_back, progress=report, **controls):
            writer.write(frames)
            size = frames.shape[1:3]
            if n_kept < keep:
                kept.append(crops[: keep - n_kept])
                n_kept += len(kept[-1])
        report("encoding", 0.0)
        t0 = time.perf_counter()
    prepared.timings["encode"] = time.perf_counter() - t0
    return prepared, np.concatenate(kept), size


class Studio:
    """The main tab's state: the pipelines and the measuring networks, shared by every call.

    Args:
        store: the pipelines (``PipelineStore()`` reads ``TALKINGHEAD_DEMO_WEIGHTS``).
        analyse_seconds: how much of each clip to measure (memory: ~50 kB per frame at 128 px).
    """

    def __init__(self, store: PipelineStore | None = None, *, analyse_seconds: float | None = None):
        self.store = store or PipelineStore()
        self.measures = Measures()
        self.analyse_seconds = float(analyse_seconds or os.environ.get(ANALYSE_ENV, 60))

    def describe(self, name: str) -> tuple[str, dict[str, bool]]:
        """(model card markdown, {control name: supported}) for the pipeline ``name``."""
        card, problem = self.store.card(name)
        supported = supported_controls(card)
        return card_markdown(name, card, problem), {c.name: c.name in supported for c in CONTROLS}

    def generate(
        self,
        photo: Any,
        audio: Any,
        speech_from: str | None,
        text: str | None,
        language: str | None,
        variant: str | None,
        pipeline: str | None,
        seed: float | None,
        paste_back: bool,
        controls: Mapping[str, float] | None = None,
        progress: Callable[..., Any] | None = None,
    ) -> TalkResult:
        """Animate the face in ``photo`` with the speech, write the mp4 and measure it.

        Args:
            photo: path or (H, W, 3) uint8 array of a photo with a face (several: the largest is animated).
            audio: path or ``(rate, samples)`` of a speech clip (any format, rate and channel count ffmpeg reads).
            speech_from: ``SPEECH_FROM[0]`` to use ``audio``, ``SPEECH_FROM[1]`` to speak ``text`` instead.
            text, language, variant: what espeak-ng says and in which voice (``"en-US"``, ``"m3"``).
            pipeline: a name from ``talkinghead.list_pipelines()``.
            seed: 0 … 2**32-1; the same inputs and seed give the same video.
            paste_back: the whole photo (True) or the aligned face crop only (False).
            controls: values of ``demo.models.CONTROLS`` by name; only those the pipeline supports are passed on.
            progress: ``gr.Progress`` (or any ``(fraction, desc=...)`` callable).
        Raises:
            gr.Error: bad input or missing weights, with a message that says what to do; the server keeps serving.
        """
        progress = progress or (lambda *args, **kw: None)

        def report(stage: str, done: float) -> None:
            low, high = STAGES.get(stage, (0.0, 1.0))
            progress(low + (high - low) * min(max(done, 0.0), 1.0), desc=stage)

        if photo is None:
            raise gr.Error("no photo given: upload a photo of a face or take one with the webcam")
        if pipeline not in self.store.names:
            raise gr.Error(f"unknown pipeline {pipeline!r}: pick one of {', '.join(self.store.names)}")
        seed = whole_number(seed, "seed", 0, 2**32 - 1)
        report("loading the model", 0.0)
        try:
            model = self.store.get(pipeline)
        except WeightsError as err:
            raise gr.Error(str(err)) from err
        report("speaking the text", 0.0)
        speech = speech_input(audio, speech_from, text, language, variant)
        supported = supported_controls(model.card)
        kwargs = {name: value for name, value in (controls or {}).items() if name in supported}

        path = new_output_dir() / "talkinghead.mp4"
        try:
            prepared, crops, size = render(model, photo, speech, str(path), seed=seed, paste_back=bool(paste_back),
                                           controls=kwargs, keep=max(1, round(self.analyse_seconds * FPS)), report=report)
        except InputError as err:  # NoFaceError, FaceTooSmallError, bad audio…: the message names the fix
            raise gr.Error(str(err)) from err
        notes = []
        if prepared.n_faces > 1:
            notes.append(f"found {prepared.n_faces} faces in the photo: the largest is animated")
            gr.Warning(notes[-1].capitalize())

        report("measuring the result", 0.0)
        t0 = time.perf_counter()
        measures, problems = self.measures(crops, prepared.audio)
        notes += problems
        prepared.timings["measure"] = time.perf_counter() - t0
        report("measuring the result", 1.0)

        extras = getattr(prepared, "extras", None) or {}
        seconds = len(prepared.audio) / SR
        scores = {
            "seconds": seconds,
            "frames": prepared.n_frames,
            "size": list(size),
            "n_faces": prepared.n_faces,
            "sync": measures.get("sync"),
            "blinks": len(measures["blinks"]) if "blinks" in measures else None,
            "measured_seconds": len(crops) / FPS,
            "timings": {k: round(v, 3) for k, v in prepared.timings.items()},
        }
        return TalkResult(
            video=str(path),
            tracks=plot_measures(prepared.audio, measures),
            face=draw_landmarks(prepared.image, prepared.landmarks, prepared.alignment),
            summary=self._summary(scores, measures, notes),
            scores=scores,
            trajectory=plot_trajectory(np.asarray(extras["trajectory"])) if "trajectory" in extras else None,
            before=extras.get("inversion", {}).get("before"),
            after=extras.get("inversion", {}).get("after"),
            inversion=" · ".join(f"{k} {format_number(v)}" for k, v in extras.get("inversion", {}).get("scores", {}).items()),
        )

    @staticmethod
    def _summary(scores: Mapping[str, Any], measures: Mapping[str, Any], notes: list[str]) -> str:
        lines = []
        if scores["sync"]:
            sync = scores["sync"]
            lines.append(f"**Sync** (SyncNet on the face crops): LSE-C **{sync['lse_c']:.2f}** (higher: more confidently "
                         f"in sync) · LSE-D {sync['lse_d']:.2f} · AV offset **{sync['offset']:+d}** frames "
                         f"({1000 * sync['offset'] / FPS:+.0f} ms; within ±1 is in sync)")
        if "mouth" in measures:
            lines.append(f"**Mouth opening** mean {np.mean(measures['mouth']):.2f}, max {np.max(measures['mouth']):.2f} · "
                         f"**blinks** {scores['blinks']} in {scores['measured_seconds']:.1f} s")
        h, w = scores["size"]
        lines.append(f"**Clip** {scores['seconds']:.1f} s, {scores['frames']} frames at {FPS} fps, {w}×{h} · "
                     f"**time** {_seconds(scores['timings'])}")
        lines += [f"Note: {note}" for note in notes]
        return "\n\n".join(lines)
