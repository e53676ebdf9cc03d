"""SynthGRID: a talking-face corpus in the GRID corpus's grammar and layout, with exact ground truth.

Each speaker is a procedural identity (``face.py``) with an espeak-ng voice (language, variant, pitch, rate). An
utterance is spoken by espeak-ng, which reports every phoneme's exact sample; the mouth follows those phonemes
(``articulation.py``), the eyes blink, the brows rise now and then and the head moves a little. Everything the
renderer drew is saved as ground truth.

Layout (like GRID, so one reader serves both)::

    root/corpus.json                      speakers, voices, identities, split, settings
    root/sN/video/<utt>.mp4               25 fps, H.264 + AAC
    root/sN/audio/<utt>.wav               16 kHz mono, 16-bit
    root/sN/align/<utt>.align             GRID word timings: "start end word", in 1/25000 s (video frames × 1000)
    root/sN/landmarks/<utt>.npy           (T, 68, 2) float32 pixel landmarks
    root/sN/truth/<utt>.npz               per-frame mouth parameters, mouth opening, eyelid closure, blink,
                                          brow, head pose; phoneme timeline
"""
from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkinghead.audio.tts import Phoneme, Voice, Word, list_languages, synthesize
from talkinghead.data.synthgrid.articulation import (
    PARAMS,
    blink_track,
    brow_track,
    head_track,
    mouth_track,
    sample_blinks,
)
from talkinghead.data.synthgrid.face import FaceState, Identity, sample_identity
from talkinghead.data.synthgrid.render import FaceRenderer, RenderedFrame

__all__ = [
    "GRID_GRAMMAR", "Speaker", "Clip", "make_speakers", "random_sentence", "utterance_id",
    "plan_clip", "render_clip", "write_clip", "generate_corpus", "speaker_from_seed", "render_text",
]

FPS = 25
SR = 16000
ALIGN_UNITS = 25000  # GRID .align times are in 1/25000 s

GRID_GRAMMAR: tuple[tuple[str, ...], ...] = (
    ("bin", "lay", "place", "set"),
    ("blue", "green", "red", "white"),
    ("at", "by", "in", "with"),
    tuple("abcdefghijklmnopqrstuvxyz"),  # no "w" in GRID
    ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"),
    ("again", "now", "please", "soon"),
)
_DIGITS = {w: str(i) for i, w in enumerate(GRID_GRAMMAR[4])}

# Voices: training speakers and held-out speakers draw from disjoint variants and accents, so the test split
# measures generalisation to voices never heard in training.
TRAIN_LANGUAGES = ("en-US", "en")
HELDOUT_LANGUAGES = ("en-GB-scotland", "en-029", "en-US-nyc")
TRAIN_VARIANTS = ("m1", "m2", "m3", "m4", "f1", "f2", "f3")
HELDOUT_VARIANTS = ("m5", "m6", "m7", "f4", "f5")


def random_sentence(rng: np.random.Generator) -> tuple[str, ...]:
    """One GRID sentence: command colour preposition letter digit adverb."""
    return tuple(slot[rng.integers(len(slot))] for slot in GRID_GRAMMAR)


def utterance_id(words: tuple[str, ...]) -> str:
    """GRID's file name for a sentence: first letters, the letter itself and the digit as a numeral ("bbaf2n")."""
    command, colour, prep, letter, digit, adverb = words
    return f"{command[0]}{colour[0]}{prep[0]}{letter}{_DIGITS[digit]}{adverb[0]}"


@dataclass(frozen=True)
class Speaker:
    """A SynthGRID speaker: a face, a voice and habits."""

    id: str
    identity: Identity
    voice: Voice
    blink_rate: float  # blinks per second (0.2–0.45)
    head_motion: float  # scale of the head's motion (1 = a few degrees)
    split: str  # "train", "val" or "test"

    def to_dict(self) -> dict:
        return {
            "id": self.id,
            "split": self.split,
            "voice": {"language": self.voice.language, "variant": self.voice.variant, "pitch": self.voice.pitch,
                      "pitch_range": self.voice.pitch_range, "rate": self.voice.rate},
            "blink_rate": self.blink_rate,
            "head_motion": self.head_motion,
            "identity": self.identity.to_dict(),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Speaker":
        return cls(d["id"], Identity.from_dict(d["identity"]), Voice(**d["voice"]), d["blink_rate"], d["head_motion"], d["split"])


def _split_sizes(n: int) -> tuple[int, int, int]:
    """(train, val, test) speaker counts: about 75/12.5/12.5 %, at least one held-out speaker each from 3 on."""
    if n < 3:
        return n, 0, 0
    held = max(1, round(0.125 * n))
    return n - 2 * held, held, held


def make_speakers(n: int, seed: int = 0, *, heldout_languages: tuple[str, ...] = HELDOUT_LANGUAGES) -> list[Speaker]:
    """``n`` speakers ``s1``…``sN`` with their split; the last ones are held out (val, then test).

    Training speakers speak with ``TRAIN_LANGUAGES`` voices and ``TRAIN_VARIANTS``; held-out speakers with
    ``heldout_languages`` (English accents by default; any espeak-ng language, e.g. ``("fr", "de")``, to test
    generalisation to unseen languages) and ``HELDOUT_VARIANTS``.
    """
    if n < 1:
        raise ValueError(f"need at least one speaker, got {n}")
    n_train, n_val, _ = _split_sizes(n)
    speakers = []
    for k in range(n):
        rng = np.random.default_rng([seed, k, 0x5EED])
        split = "train" if k < n_train else "val" if k < n_train + n_val else "test"
        languages, variants = (TRAIN_LANGUAGES, TRAIN_VARIANTS) if split == "train" else (heldout_languages, HELDOUT_VARIANTS)
        voice = Voice(
            language=languages[rng.integers(len(languages))],
            variant=variants[rng.integers(len(variants))],
            pitch=int(rng.integers(30, 71)),
            pitch_range=int(rng.integers(35, 76)),
            rate=int(rng.integers(140, 186)),
        )
        speakers.append(Speaker(f"s{k + 1}", sample_identity(rng), voice, float(rng.uniform(0.2, 0.45)), float(rng.uniform(0.6, 1.2)), split))
    return speakers


@dataclass
class Clip:
    """An utterance planned frame by frame: audio, timings and the face state of every frame."""

    audio: np.ndarray  # (N,) float32 at SR, N = n_frames * SR / FPS
    phonemes: list[Phoneme]
    words: list[Word]
    states: list[FaceState]
    mouth: np.ndarray  # (T, 6) articulation in PARAMS order

    @property
    def n_frames(self) -> int:
        return len(self.states)


def plan_clip(text: str, speaker: Speaker, *, seed: int = 0, lead: float | None = None, tail: float | None = None) -> Clip:
    """Speak ``text`` in the speaker's voice and plan the face for every frame.

    Args:
        text: GRID sentence or any text in the voice's language.
        seed: drives blinks, brows, head motion and the silences; same seed, same clip.
        lead, tail: silence before and after the speech in seconds (random 0.25–0.5 s when None).
    """
    rng = np.random.default_rng([seed, 0xC11B])
    speech = synthesize(text, speaker.voice, sr=SR)
    lead = float(rng.uniform(0.25, 0.5)) if lead is None else lead
    tail = float(rng.uniform(0.25, 0.5)) if tail is None else tail
    hop = SR // FPS
    n_frames = math.ceil((lead + speech.duration + tail) * FPS)
    audio = np.zeros(n_frames * hop, np.float32)
    start = round(lead * SR)
    audio[start : start + len(speech.audio)] = speech.audio[: len(audio) - start]
    phonemes = [Phoneme(p.symbol, p.start + lead, p.end + lead, p.stress) for p in speech.phonemes]
    words = [Word(w.text, w.start + lead, w.end + lead) for w in speech.words]

    times = np.arange(n_frames) / FPS  # frame i is shown at i / fps
    mouth = mouth_track(phonemes, times)  # (T, 6)
    eyes = blink_track(sample_blinks(n_frames / FPS, rng, rate=speaker.blink_rate), times)
    brow = brow_track(times, rng)
    head = head_track(times, rng, amplitude=speaker.head_motion)  # (T, 5)
    gaze = head_track(times, rng, amplitude=0.25)[:, :2] / np.array([3.0, 2.0])  # slow small eye movements
    states = [
        FaceState(
            **dict(zip(PARAMS, mouth[i].tolist())),
            eye_closure=float(eyes[i]),
            brow=float(brow[i]),
            yaw=float(head[i, 0]), pitch=float(head[i, 1]), roll=float(head[i, 2]),
            tx=float(head[i, 3]), ty=float(head[i, 4]),
            gaze_x=float(gaze[i, 0]), gaze_y=float(gaze[i, 1]),
        )
        for i in range(n_frames)
    ]
    return Clip(audio, phonemes, words, states, mouth.astype(np.float32))


def render_clip(clip: Clip, renderer: FaceRenderer) -> Iterator[RenderedFrame]:
    """Render the clip's frames one by one (a generator: frames are never all in memory)."""
    for state in clip.states:
        yield renderer.render(state)


def speaker_from_seed(seed: int, *, language: str = "en-US", variant: str | None = None) -> Speaker:
    """A one-off speaker (not part of any corpus): identity and voice drawn from ``seed``."""
    rng = np.random.default_rng([seed, 0xFACE])
    identity = sample_identity(rng)
    variants = TRAIN_VARIANTS + HELDOUT_VARIANTS
    voice = Voice(
        language=language,
        variant=variants[rng.integers(len(variants))] if variant is None else variant,
        pitch=int(rng.integers(35, 66)),
        rate=int(rng.integers(145, 181)),
    )
    return Speaker(f"seed{seed}", identity, voice, float(rng.uniform(0.2, 0.45)), 1.0, "demo")


def render_text(
    text: str,
    out: str | os.PathLike,
    *,
    speaker_seed: int = 0,
    language: str = "en-US",
    variant: str | None = None,
    size: int = 128,
    seed: int = 0,
) -> tuple[Path, Clip, np.ndarray]:
    """Render a SynthGRID clip of any ``text`` to the mp4 ``out``.

    Returns:
        (path, clip, lmk): the written file, the planned clip and its (T, 68, 2) landmarks.
    """
    from talkinghead.io import VideoWriter

    speaker = speaker_from_seed(speaker_seed, language=language, variant=variant)
    clip = plan_clip(text, speaker, seed=seed)
    renderer = FaceRenderer(speaker.identity, size=size)
    lmk = np.zeros((clip.n_frames, 68, 2), np.float32)
    with VideoWriter(out, fps=FPS, audio=clip.audio, sr=SR) as writer:
        for i, frame in enumerate(render_clip(clip, renderer)):
            writer.write(frame.image)
            lmk[i] = frame.lmk
    return Path(out), clip, lmk


def _align_text(words: list[Word], duration: float) -> str:
    """GRID .align: silences as ``sil``, short pauses between words as ``sp``, times in 1/25000 s."""
    lines, t = [], 0.0
    for w in words:
        if w.start - t > 1e-3:
            lines.append((t, w.start, "sil" if t == 0.0 else "sp"))
        lines.append((w.start, w.end, w.text.lower()))
        t = w.end
    lines.append((t, duration, "sil"))
    return "".join(f"{round(a * ALIGN_UNITS)} {round(b * ALIGN_UNITS)} {word}\n" for a, b, word in lines)


def _atomic(path: Path, write) -> None:
    """Write through ``write(tmp_path)`` and rename, so a crash never leaves a half-written file."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp{path.suffix}")
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_clip(root: Path, speaker: Speaker, utt: str, clip: Clip, renderer: FaceRenderer) -> int:
    """Render ``clip`` and write its video, audio, alignment, landmarks and truth under ``root/<speaker>/``.

    Returns:
        the number of frames written.
    """
    import soundfile

    from talkinghead.io import VideoWriter

    base = Path(root) / speaker.id
    for sub in ("video", "audio", "align", "landmarks", "truth"):
        (base / sub).mkdir(parents=True, exist_ok=True)
    lmk = np.zeros((clip.n_frames, 68, 2), np.float32)
    opening = np.zeros(clip.n_frames, np.float32)
    with VideoWriter(base / "video" / f"{utt}.mp4", fps=FPS, audio=clip.audio, sr=SR) as writer:
        for i, frame in enumerate(render_clip(clip, renderer)):
            writer.write(frame.image)
            lmk[i], opening[i] = frame.lmk, frame.mouth_open
    _atomic(base / "audio" / f"{utt}.wav", lambda p: soundfile.write(p, clip.audio, SR, subtype="PCM_16", format="WAV"))
    _atomic(base / "align" / f"{utt}.align", lambda p: p.write_text(_align_text(clip.words, len(clip.audio) / SR)))
    _atomic(base / "landmarks" / f"{utt}.npy", lambda p: np.save(p, lmk))
    eyes = np.array([s.eye_closure for s in clip.states], np.float32)
    truth = {
        "mouth": clip.mouth,
        "mouth_params": np.array(PARAMS),
        "mouth_open": opening,
        "eye_closure": eyes,
        "blink": eyes > 0.5,
        "brow": np.array([s.brow for s in clip.states], np.float32),
        "pose": np.array([[s.yaw, s.pitch, s.roll] for s in clip.states], np.float32),  # degrees
        "phonemes": np.array([p.symbol for p in clip.phonemes]),
        "phoneme_times": np.array([[p.start, p.end] for p in clip.phonemes], np.float32).reshape(-1, 2),
    }
    _atomic(base / "truth" / f"{utt}.npz", lambda p: np.savez(p, **truth))
    return clip.n_frames


def _corpus_utterances(speakers: list[Speaker], per_speaker: int, seed: int) -> list[tuple[int, str, str, int]]:
    """(speaker index, utterance id, text, seed) for every utterance; distinct sentences within a speaker."""
    jobs = []
    for k, _ in enumerate(speakers):
        rng = np.random.default_rng([seed, k, 0x5E47])
        seen: set[str] = set()
        while len(seen) < per_speaker:
            words = random_sentence(rng)
            utt = utterance_id(words)
            if utt not in seen:
                seen.add(utt)
                jobs.append((k, utt, " ".join(words), int(rng.integers(2**31))))
    return jobs


_WORKER: dict = {}


def _worker_init(root: str, speakers: list[dict], size: int) -> None:
    _WORKER["root"] = Path(root)
    _WORKER["speakers"] = [Speaker.from_dict(d) for d in speakers]
    _WORKER["size"] = size
    _WORKER["renderers"] = {}


def _worker_job(job: tuple[int, str, str, int]) -> int:
    k, utt, text, seed = job
    speaker = _WORKER["speakers"][k]
    renderer = _WORKER["renderers"].get(k)
    if renderer is None:
        renderer = _WORKER["renderers"][k] = FaceRenderer(speaker.identity, size=_WORKER["size"])
    clip = plan_clip(text, speaker, seed=seed)
    return write_clip(_WORKER["root"], speaker, utt, clip, renderer)


def generate_corpus(
    out: str | os.PathLike,
    *,
    speakers: int = 8,
    per_speaker: int = 20,
    size: int = 128,
    seed: int = 0,
    workers: int | None = None,
    progress: bool = True,
    heldout_languages: tuple[str, ...] = HELDOUT_LANGUAGES,
) -> dict:
    """Generate a SynthGRID corpus under ``out`` (deterministic for a seed; parallel over ``workers`` processes).

    Returns:
        the corpus description written to ``out/corpus.json``, plus ``"stats"``: frames, seconds, frames/s.
    """
    from multiprocessing import get_context

    from tqdm.auto import tqdm

    if per_speaker < 1:
        raise ValueError(f"per_speaker must be at least 1, got {per_speaker}")
    max_distinct = math.prod(len(slot) for slot in GRID_GRAMMAR)
    if per_speaker > max_distinct:
        raise ValueError(f"GRID's grammar has only {max_distinct} sentences: lower per_speaker")
    if not 64 <= size <= 256:
        raise ValueError(f"size {size} is out of range: use 64–256 pixels")
    cast = make_speakers(speakers, seed, heldout_languages=tuple(heldout_languages))
    unknown = sorted({s.voice.language for s in cast} - set(list_languages()))
    if unknown:
        raise ValueError(f"espeak-ng has no voice {', '.join(unknown)}: pick languages from talkinghead.audio.tts.list_languages()")
    root = Path(out)
    root.mkdir(parents=True, exist_ok=True)
    jobs = _corpus_utterances(cast, per_speaker, seed)
    workers = workers or min(os.cpu_count() or 1, len(jobs))
    description = {
        "name": "SynthGRID",
        "version": 1,
        "seed": seed,
        "fps": FPS,
        "sr": SR,
        "size": size,
        "speakers": [s.to_dict() for s in cast],
        "split": {split: [s.id for s in cast if s.split == split] for split in ("train", "val", "test")},
        "utterances": {s.id: sorted(utt for k, utt, _, _ in jobs if cast[k].id == s.id) for s in cast},
        "texts": {f"{cast[k].id}/{utt}": text for k, utt, text, _ in jobs},
    }
    start = time.perf_counter()
    frames = 0
    init_args = (str(root), [s.to_dict() for s in cast], size)
    bar = tqdm(total=len(jobs), desc="SynthGRID", unit="utt", disable=not progress)
    if workers == 1:
        _worker_init(*init_args)
        results: Iterator[int] = map(_worker_job, jobs)
        for n in results:
            frames += n
            bar.update(1)
    else:
        # Each worker process loads its own espeak-ng and keeps one renderer per speaker it meets.
        with get_context("spawn").Pool(workers, initializer=_worker_init, initargs=init_args) as pool:
            for n in pool.imap_unordered(_worker_job, jobs, chunksize=max(1, per_speaker // 4)):
                frames += n
                bar.update(1)
                bar.set_postfix(fps=f"{frames / (time.perf_counter() - start):.0f}")
    bar.close()
    seconds = time.perf_counter() - start
    description["stats"] = {"utterances": len(jobs), "frames": frames, "seconds": round(seconds, 2),
                            "frames_per_second": round(frames / seconds, 1), "workers": workers}
    _atomic(root / "corpus.json", lambda p: p.write_text(json.dumps(description, indent=1)))
    return description
