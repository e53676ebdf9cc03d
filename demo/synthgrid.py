"""The SynthGRID tab: type a sentence, get a SynthGRID video of a synthetic face speaking it.

It shows the project's synthetic corpus: espeak-ng speaks the text and a 2-D face is animated from its phoneme
timings, so every landmark is exact ground truth. Plain, importable event functions; ``synthgrid_tab`` lays them out
inside the page that ``demo.ui.build_demo`` opens.
"""
from __future__ import annotations

import shutil

import gradio as gr
import matplotlib
import numpy as np
from matplotlib.figure import Figure

from talkinghead.audio.tts import Word
from talkinghead.data.synthgrid import random_sentence, render_text
from talkinghead.data.synthgrid.corpus import FPS, SR
from talkinghead.face.landmarks import eye_aspect_ratio, mouth_opening

from demo.common import new_output_dir, whole_number

__all__ = ["VOICES", "generate", "plot_tracks", "random_text", "synthgrid_tab"]

# gr.Plot imports pyplot to close figures; on a desktop that would pick a GUI backend inside a server thread.
matplotlib.use("Agg")

MAX_CHARS = 300  # about 20 s of speech, a few seconds to render on a CPU
MAX_SPEAKER = 999
SIZES = (96, 128, 192)
DEFAULT_TEXT = "place blue at f two now"
# (label, espeak-ng language). The English accents are the ones SynthGRID speakers use; any other voice from
# talkinghead.audio.tts.list_languages() can be typed in.
VOICES = (
    ("English (US)", "en-US"),
    ("English (GB)", "en"),
    ("English (Scotland)", "en-GB-scotland"),
    ("English (Caribbean)", "en-029"),
    ("English (New York)", "en-US-nyc"),
    ("French", "fr"),
    ("German", "de"),
    ("Spanish", "es"),
    ("Italian", "it"),
)

INTRO = """
**SynthGRID** is this project's synthetic GRID-style audio-visual corpus: a synthetic voice (espeak-ng) speaks the
text and a drawn face moves its lips, jaw, eyes and head from the phoneme timings, so the 68 facial landmarks of
every frame are known exactly. The models are trained and measured on it before they meet real faces. Type a
sentence (GRID's grammar or anything else), pick a speaker and a voice, and press **Generate**: the video comes with
the waveform, its word boundaries, the mouth opening and the eye aspect ratio on one time axis.
"""


def random_text() -> str:
    """A random sentence from GRID's grammar, e.g. ``"bin red by g nine soon"``."""
    return " ".join(random_sentence(np.random.default_rng()))


def plot_tracks(audio: np.ndarray, words: list[Word], lmk: np.ndarray) -> Figure:
    """Waveform with word boundaries, mouth opening and eye aspect ratio, on one time axis.

    Args:
        audio: (N,) float32 at 16 kHz.
        words: the spoken words with start and end times in seconds.
        lmk: (T, 68, 2) landmarks at 25 fps; frame i is shown at i / 25 s.
    Returns:
        A matplotlib figure (not registered with pyplot, so nothing leaks between calls).
    """
    fig = Figure(figsize=(8, 5.5), layout="constrained")
    ax_wave, ax_mouth, ax_eye = fig.subplots(3, 1, sharex=True, height_ratios=(1.4, 1, 1))
    t_frames = np.arange(len(lmk)) / FPS  # (T,)

    ax_wave.plot(np.arange(len(audio)) / SR, audio, lw=0.5, color="0.35")
    boundaries = sorted({t for word in words for t in (word.start, word.end)})
    ax_wave.vlines(boundaries, 0, 1, transform=ax_wave.get_xaxis_transform(), colors="C0", lw=0.8)
    for word in words:  # labels just above the axes: x in seconds, y in axes units
        ax_wave.text((word.start + word.end) / 2, 1.02, word.text, transform=ax_wave.get_xaxis_transform(),
                     ha="center", va="bottom", fontsize=8, rotation=0 if len(words) <= 12 else 90)
    ax_wave.set_ylabel("waveform")

    ax_mouth.plot(t_frames, mouth_opening(lmk), color="C3")
    ax_mouth.set_ylabel("mouth opening")
    ax_eye.plot(t_frames, eye_aspect_ratio(lmk), color="C2")
    ax_eye.set_ylabel("eye aspect ratio")
    ax_eye.set_xlabel("time (s)")
    ax_eye.set_xlim(0, max(len(audio) / SR, len(lmk) / FPS))
    for ax in (ax_wave, ax_mouth, ax_eye):
        ax.grid(alpha=0.3)
    return fig


def generate(
    text: str | None,
    speaker: float | None,
    voice: str | None,
    seed: float | None,
    size: float | None,
    progress: gr.Progress = gr.Progress(),  # gradio finds the tracker by this default; it is never mutated here
) -> tuple[str, Figure]:
    """Render ``text`` as a SynthGRID clip.

    Args:
        text: what to say, 1–300 characters, in the voice's language.
        speaker: 0–999; each number is another face and voice pitch, rate and timbre.
        voice: an espeak-ng language such as ``"en-US"`` or ``"fr"`` (``talkinghead.audio.tts.list_languages()``).
        seed: blinks, brows, head motion and pauses; the same inputs and seed give the same video.
        size: frame width and height in pixels, 64–256.
    Returns:
        (video, figure): the mp4's path (H.264 + AAC, 25 fps) and the plot of ``plot_tracks``.
    Raises:
        gr.Error: bad input, with a message that names the problem and the fix; the server keeps serving.
    """
    text = text or ""
    if len(text) > MAX_CHARS:
        raise gr.Error(f"the text is {len(text)} characters long: shorten it to {MAX_CHARS} or fewer")
    if not voice:
        raise gr.Error("no voice chosen: pick one from the list or type an espeak-ng language such as en-US")
    speaker = whole_number(speaker, "speaker", 0, MAX_SPEAKER)
    seed = whole_number(seed, "seed", 0, 2**32 - 1)
    size = whole_number(size, "frame size", 64, 256)

    progress(0.0, desc="speaking and rendering")
    out_dir = new_output_dir()
    try:
        path, clip, lmk = render_text(text, out_dir / "synthgrid.mp4", speaker_seed=speaker, language=voice,
                                      size=size, seed=seed)
    except ValueError as err:  # empty text, unknown voice, bad size; talkinghead.io.InputError is one too
        shutil.rmtree(out_dir, ignore_errors=True)
        raise gr.Error(str(err)) from err
    progress(0.9, desc="plotting")
    fig = plot_tracks(clip.audio, clip.words, lmk)
    progress(1.0, desc="done")
    return str(path), fig


def synthgrid_tab() -> None:
    """Lay out the SynthGRID tab (inside an open ``gr.Blocks``): text and controls on the left, video and plot on the right."""
    gr.Markdown(INTRO)
    with gr.Row():
        with gr.Column(scale=1):
            text = gr.Textbox(DEFAULT_TEXT, label="Text", lines=2, info=f"up to {MAX_CHARS} characters")
            random_button = gr.Button("Random GRID sentence", size="sm")
            voice = gr.Dropdown([(label, code) for label, code in VOICES], value=VOICES[0][1], label="Voice",
                                allow_custom_value=True, info="or type any espeak-ng language, e.g. pt or nl")
            with gr.Row():
                speaker = gr.Number(0, label="Speaker", precision=0, minimum=0, maximum=MAX_SPEAKER,
                                    info=f"face and voice, 0–{MAX_SPEAKER}")
                seed = gr.Number(0, label="Seed", precision=0, minimum=0, info="blinks, head motion, pauses")
            size = gr.Radio(list(SIZES), value=128, label="Frame size (pixels)")
            generate_button = gr.Button("Generate", variant="primary")
        with gr.Column(scale=2):
            video = gr.Video(label="SynthGRID video", autoplay=True, interactive=False)
            plot = gr.Plot(label="Waveform and words · mouth opening · eye aspect ratio")
    gr.Examples(
        [
            ["bin red by g nine soon", 7, "en-GB-scotland"],
            ["The quick brown fox jumps over the lazy dog.", 42, "en-US"],
            ["Bonjour, je suis un visage synthétique.", 3, "fr"],
        ],
        inputs=[text, speaker, voice],
    )

    random_button.click(random_text, outputs=text, api_name="random_sentence")
    generate_button.click(generate, inputs=[text, speaker, voice, seed, size], outputs=[video, plot],
                          api_name="synthgrid")
