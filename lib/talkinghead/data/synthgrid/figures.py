"""The SynthGRID contact sheet: faces of several identities, and one utterance's audio and face over time."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from talkinghead.data.synthgrid.corpus import FPS, SR, make_speakers, plan_clip, random_sentence, render_clip
from talkinghead.data.synthgrid.face import FaceState
from talkinghead.data.synthgrid.render import FaceRenderer
from talkinghead.face.landmarks import eye_aspect_ratio, mouth_opening

__all__ = ["contact_sheet"]


def contact_sheet(out: str | os.PathLike, *, speakers: int = 8, seed: int = 0, size: int = 128) -> Path:
    """Draw the contact sheet to ``out`` (PNG).

    Top: one row per expression (rest, open vowel, rounded, blink) for ``speakers`` identities of a corpus made
    with ``seed``. Bottom: one utterance of the first speaker, its frames, then the waveform with phonemes, the
    mouth opening and the eye aspect ratio over time, all measured on the rendered landmarks.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cast = make_speakers(speakers, seed)
    expressions = {
        "rest": FaceState(closure=0.5),
        "/ɑ/": FaceState(jaw=0.95, spread=0.1),
        "/u/": FaceState(jaw=0.2, round=1.0),
        "blink": FaceState(closure=0.5, eye_closure=1.0, brow=0.6),
    }
    faces = [[FaceRenderer(s.identity, size=size).render(state).image for s in cast] for state in expressions.values()]

    speaker = cast[0]
    words = " ".join(random_sentence(np.random.default_rng(seed)))
    clip = plan_clip(words, speaker, seed=seed)
    frames = list(render_clip(clip, FaceRenderer(speaker.identity, size=size)))
    lmk = np.stack([f.lmk for f in frames])
    t_frames = np.arange(clip.n_frames) / FPS
    t_audio = np.arange(len(clip.audio)) / SR

    fig = plt.figure(figsize=(12, 12.5), dpi=100)
    grid = fig.add_gridspec(len(expressions) + 5, speakers, height_ratios=[1] * len(expressions) + [1, 0.05, 0.8, 0.6, 0.6])
    for r, (name, row) in enumerate(zip(expressions, faces)):
        for c, img in enumerate(row):
            ax = fig.add_subplot(grid[r, c])
            ax.imshow(img)
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=11)
            if r == 0:
                ax.set_title(f"{cast[c].id} ({cast[c].split})\n{cast[c].voice.language}+{cast[c].voice.variant}", fontsize=8)
    # A strip of frames of the utterance, evenly spaced.
    picks = np.linspace(0, clip.n_frames - 1, speakers).round().astype(int)
    for c, i in enumerate(picks):
        ax = fig.add_subplot(grid[len(expressions), c])
        ax.imshow(frames[i].image)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(f"t = {i / FPS:.2f} s", fontsize=8)
    ax_wave = fig.add_subplot(grid[len(expressions) + 2, :])
    ax_wave.plot(t_audio, clip.audio, lw=0.4, color="0.3")
    for p in clip.phonemes:
        if p.symbol:
            ax_wave.axvline(p.start, color="tab:blue", lw=0.4, alpha=0.5)
            ax_wave.text(0.5 * (p.start + p.end), 0.95, p.symbol, transform=ax_wave.get_xaxis_transform(), ha="center", va="top", fontsize=8)
    for w in clip.words:
        ax_wave.text(0.5 * (w.start + w.end), 0.03, w.text, transform=ax_wave.get_xaxis_transform(), ha="center", fontsize=9, color="tab:red")
    ax_wave.set_ylabel("waveform")
    ax_wave.set_title(f'{speaker.id}: "{words}" — phonemes from espeak-ng, ground truth from the renderer', fontsize=10)
    ax_mouth = fig.add_subplot(grid[len(expressions) + 3, :], sharex=ax_wave)
    ax_mouth.plot(t_frames, mouth_opening(lmk), "o-", ms=2, color="tab:red")
    ax_mouth.set_ylabel("mouth\nopening")
    ax_ear = fig.add_subplot(grid[len(expressions) + 4, :], sharex=ax_wave)
    ax_ear.plot(t_frames, eye_aspect_ratio(lmk), "o-", ms=2, color="tab:green")
    ax_ear.set_ylabel("eye aspect\nratio")
    ax_ear.set_xlabel("time (s)")
    ax_wave.set_xlim(0, t_frames[-1])
    fig.suptitle("SynthGRID: procedural identities × visemes, and one utterance with its exact ground truth", fontsize=13)
    fig.tight_layout()
    out = Path(out)
    tmp = out.with_name(f".{out.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, out)
    return out
