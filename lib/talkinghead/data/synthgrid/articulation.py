"""From a phoneme timeline to the face's motion: visemes with coarticulation, blinks, brow raises, head motion.

Visemes are articulatory targets (jaw, rounding, spreading, closure, labiodental contact, tongue) per IPA
phoneme. Coarticulation follows Cohen & Massaro (1993): every phoneme exerts a dominance that decays
exponentially from its centre, and each parameter is the dominance-weighted mean of the targets. Segments that
must reach their target (the lip closure of /p b m/, the lip contact of /f v/, the rounding of /w/) dominate
strongly in that parameter only; velars and /h/ barely dominate anything, so they borrow the neighbours' shape.
Nothing can jump: a parameter is a ratio of smooth functions of time.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from talkinghead.audio.tts import Phoneme

__all__ = ["PARAMS", "Blink", "viseme", "mouth_track", "sample_blinks", "blink_track", "brow_track", "head_track"]

PARAMS = ("jaw", "round", "spread", "closure", "labiodental", "tongue")
_REST = np.array([0.0, 0.0, 0.0, 0.55, 0.0, 0.0])  # silence: jaw closed, lips lightly together

# (target, dominance) per parameter for classes of IPA symbols; vowels first by openness.
_VOWELS: dict[str, tuple[float, float, float]] = {  # symbol: (jaw, round, spread)
    "a": (0.9, 0.0, 0.2), "ɑ": (0.95, 0.0, 0.0), "æ": (0.85, 0.0, 0.45), "ɐ": (0.7, 0.0, 0.1), "ɒ": (0.8, 0.4, 0.0),
    "ʌ": (0.65, 0.0, 0.1), "ɔ": (0.65, 0.7, 0.0), "o": (0.5, 0.8, 0.0), "ɛ": (0.6, 0.0, 0.45), "e": (0.45, 0.0, 0.55),
    "ə": (0.4, 0.0, 0.1), "ɜ": (0.45, 0.0, 0.1), "ɚ": (0.4, 0.2, 0.0), "ᵻ": (0.3, 0.0, 0.4), "ɪ": (0.3, 0.0, 0.6),
    "i": (0.22, 0.0, 0.85), "y": (0.22, 0.85, 0.0), "ʏ": (0.28, 0.7, 0.0), "ø": (0.4, 0.75, 0.0), "œ": (0.55, 0.6, 0.0),
    "u": (0.2, 1.0, 0.0), "ʊ": (0.3, 0.8, 0.0), "ɯ": (0.25, 0.0, 0.5), "ɨ": (0.25, 0.0, 0.3), "ɤ": (0.45, 0.0, 0.2),
}
_CONSONANTS: dict[str, dict[str, tuple[float, float]]] = {  # symbol: {param: (target, dominance)}
    **{c: {"closure": (1.0, 10.0), "jaw": (0.08, 2.0)} for c in "pbmɓ"},
    **{c: {"labiodental": (1.0, 8.0), "jaw": (0.12, 2.0)} for c in "fvɱ"},
    **{c: {"tongue": (1.0, 6.0), "jaw": (0.25, 1.5)} for c in "θð"},
    **{c: {"round": (0.9, 6.0), "jaw": (0.12, 2.0)} for c in "wʍɥ"},
    **{c: {"round": (0.5, 4.0), "jaw": (0.15, 1.5)} for c in "ʃʒ"},
    **{c: {"spread": (0.5, 2.0), "jaw": (0.15, 1.5)} for c in "szɕʑ"},
    **{c: {"jaw": (0.18, 1.0)} for c in "tdnɾɹrʀʁɲɳɖʈ"},
    "l": {"tongue": (0.6, 3.0), "jaw": (0.25, 1.0)},
    "j": {"spread": (0.6, 3.0), "jaw": (0.12, 1.5)},
    **{c: {"jaw": (0.3, 0.3)} for c in "kgɡŋxɣhʔqχħ"},
}
# Lip gestures that must reach their target are quick: their dominance decays with a 22 ms time constant
# instead of the default 45 ms, so /b/ closes fully without gluing the lips over the next vowel.
_FAST = {("closure", 10.0), ("labiodental", 8.0), ("round", 6.0)}
_PAUSE = {"closure": (0.55, 1.0), "jaw": (0.0, 1.5), "round": (0.0, 0.5), "spread": (0.0, 0.5)}


def viseme(symbol: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Articulatory targets, dominances and dominance time constants of one IPA phoneme (stress removed).

    Returns:
        (target, dominance, tau), each (6,) over ``PARAMS``; tau in seconds. Symbols with no known character
        get a neutral half-open vowel with low dominance.
    """
    target = np.array([0.35, 0.0, 0.1, 0.0, 0.0, 0.0])
    dominance = np.full(6, 0.4)
    tau = np.full(6, 0.045)
    if not symbol or symbol in ("_", "_:"):
        spec = _PAUSE
    else:
        vowels = [ch for ch in symbol if ch in _VOWELS]
        consonants = [_CONSONANTS[ch] for ch in symbol if ch in _CONSONANTS]
        if vowels:
            # A diphthong takes its first element: the glide is short and the first target is held longer.
            jaw, rnd, spr = _VOWELS[vowels[0]]
            spec = {"jaw": (jaw, 3.0), "round": (rnd, 1.5), "spread": (spr, 1.5), "closure": (0.0, 1.0), "labiodental": (0.0, 1.0)}
        elif consonants:
            # An affricate (/tʃ/, /dʒ/) takes its most visible part.
            spec = max(consonants, key=lambda c: sum(d for _, d in c.values()))
        else:
            spec = {}
    for name, (t, d) in spec.items():
        k = PARAMS.index(name)
        target[k], dominance[k] = t, d
        if (name, d) in _FAST:
            tau[k] = 0.022
    return target, dominance, tau


def mouth_track(phonemes: tuple[Phoneme, ...] | list[Phoneme], times: np.ndarray) -> np.ndarray:
    """Mouth parameters at ``times`` (seconds) from a phoneme timeline, with coarticulation.

    Args:
        phonemes: timeline with start/end in seconds; time outside it is silence.
        times: (T,) sample times (frame i of a 25 fps video is at i / 25).
    Returns:
        (T, 6) parameters in ``PARAMS`` order, each in [0, 1].
    """
    times = np.asarray(times, dtype=np.float64)
    segs = list(phonemes)
    # Silence before and after, so the mouth rests closed at both ends of any clip.
    first = segs[0].start if segs else 0.0
    last = segs[-1].end if segs else 0.0
    segs = [Phoneme("", first - 0.4, first), *segs, Phoneme("", last, last + 0.4)]
    centres = np.array([0.5 * (p.start + p.end) for p in segs])  # (P,)
    halves = np.array([max(0.5 * (p.end - p.start), 0.02) for p in segs])
    targets, dominance, tau = (np.stack(v) for v in zip(*(viseme(p.symbol) for p in segs)))  # (P, 6) each
    # A segment's dominance is flat over its own duration (at least ±20 ms, so a frame every 40 ms always
    # sees it at full strength) and decays exponentially outside it.
    dist = np.maximum(np.abs(times[:, None] - centres[None, :]) - halves[None, :], 0.0)  # (T, P)
    weight = np.exp(-dist[:, :, None] / tau[None]) * dominance[None]  # (T, P, 6)
    track = (weight * targets[None]).sum(1) / np.maximum(weight.sum(1), 1e-12)
    # Far from any phoneme (long silences), rest.
    far = np.exp(-np.min(dist, axis=1, initial=1e9) / 0.3)[:, None]  # (T, 1)
    track = far * track + (1 - far) * _REST
    return np.clip(track, 0.0, 1.0)


@dataclass(frozen=True)
class Blink:
    """One blink: start time and duration in seconds."""

    start: float
    duration: float


def sample_blinks(duration: float, rng: np.random.Generator, *, rate: float = 0.3, min_gap: float = 0.8) -> list[Blink]:
    """Spontaneous blinks over ``duration`` seconds: a renewal process with mean rate ``rate`` per second
    (min_gap seconds of refractory time, then an exponential wait), each lasting 0.1–0.4 s."""
    blinks: list[Blink] = []
    mean_wait = max(1.0 / rate - min_gap, 0.05)
    t = rng.uniform(0.2, 1.0 / rate)
    while t < duration:
        d = float(rng.uniform(0.1, 0.4))
        if t + d <= duration:
            blinks.append(Blink(float(t), d))
        t += d + min_gap + rng.exponential(mean_wait)
    return blinks


def blink_track(blinks: list[Blink], times: np.ndarray) -> np.ndarray:
    """Eyelid closure in [0, 1] at ``times``: each blink closes fast (first 35 %) and opens slower, smoothly."""
    times = np.asarray(times, dtype=np.float64)
    closure = np.zeros_like(times)
    for b in blinks:
        u = (times - b.start) / b.duration
        close = np.clip(u / 0.35, 0, 1)
        reopen = np.clip((u - 0.35) / 0.65, 0, 1)
        shape = np.where(u < 0.35, np.sin(0.5 * math.pi * close) ** 2, np.cos(0.5 * math.pi * reopen) ** 2)
        closure = np.maximum(closure, np.where((u >= 0) & (u <= 1), shape, 0.0))
    return closure


def brow_track(times: np.ndarray, rng: np.random.Generator, *, rate: float = 0.12) -> np.ndarray:
    """Occasional eyebrow raises (about ``rate`` per second, 0.5–1.2 s each, raised-cosine shaped) at ``times``."""
    times = np.asarray(times, dtype=np.float64)
    duration = float(times.max(initial=0.0))
    out = np.zeros_like(times)
    t = rng.exponential(1.0 / rate)
    while t < duration:
        d, amp = rng.uniform(0.5, 1.2), rng.uniform(0.4, 1.0)
        u = (times - t) / d
        out = np.maximum(out, np.where((u >= 0) & (u <= 1), amp * np.sin(math.pi * np.clip(u, 0, 1)) ** 2, 0.0))
        t += d + rng.exponential(1.0 / rate)
    return out


def head_track(times: np.ndarray, rng: np.random.Generator, *, amplitude: float = 1.0) -> np.ndarray:
    """Small natural head motion: yaw, pitch, roll in degrees (a few degrees) and a tiny translation.

    Each channel is a sum of three sinusoids of random frequency (0.05–0.6 Hz) and phase, so the motion is
    smooth, never repeats within a clip and is deterministic for a seeded ``rng``.

    Returns:
        (T, 5) yaw, pitch, roll (degrees), tx, ty (face units).
    """
    times = np.asarray(times, dtype=np.float64)
    scales = np.array([3.0, 2.0, 1.5, 0.03, 0.02]) * amplitude
    out = np.zeros((len(times), 5))
    for c in range(5):
        freq = rng.uniform(0.05, 0.6, 3)
        phase = rng.uniform(0, 2 * math.pi, 3)
        amp = rng.uniform(0.3, 1.0, 3)
        wave = (amp[None] * np.sin(2 * math.pi * freq[None] * times[:, None] + phase[None])).sum(1) / amp.sum()
        out[:, c] = scales[c] * wave
    return out
