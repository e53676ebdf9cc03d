"""The page: three tabs over one ``Studio``.

- **Photo + speech** (the demo): a face photo (upload or webcam) and speech (upload, microphone, or typed text spoken
  by espeak-ng) → the chosen pipeline's video, its model card, the measured mouth, blinks and sync.
- **Latent trajectory + pivotal tuning**: the controls and views of the StyleGAN pipelines (issues 7/8), laid out and
  disabled until a pipeline lists them in its card.
- **SynthGRID**: text → a clip of the project's synthetic corpus (``demo.synthgrid``).

Every control is driven by the selected pipeline's ``card["controls"]`` (see ``demo.models``), so a new architecture
is one registry line, not a new page.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Mapping

import gradio as gr

from demo.assets import examples
from demo.models import CONTROLS, UNSUPPORTED, PipelineStore
from demo.synthgrid import VOICES, synthgrid_tab
from demo.talk import SPEECH_FROM, VARIANTS, Studio

__all__ = ["build_demo", "keep_unreadable_uploads"]

CONCURRENCY = 2  # generations at a time (a 2-core CPU Space; raise it on a GPU)
QUEUE_SIZE = 32  # waiting requests beyond which new ones are turned away with "queue full"
GENERATE_INPUTS = ("photo", "audio", "speech_from", "text", "language", "variant", "model", "seed", "paste_back")

INTRO = """
# talkinghead: a face photo + speech → a talking head
Give a photo with a face and some speech (a file, the microphone, or typed text in a synthetic voice), pick a model
and press **Generate**. The video plays here and downloads as an mp4; below it, the mouth opening and blinks the
project's landmark network reads off the generated face, and how well lips and sound agree (SyncNet).
Models trained on SynthGRID, the project's synthetic talking-face corpus, animate its drawn faces best; real photos
show how far they generalise.
"""

STYLEGAN_NOTE = """
### Latent trajectory and pivotal tuning — arrive with the StyleGAN pipelines (issues 7 and 8)
The StyleGAN pipelines drive a pre-trained image generator with speech: the photo is inverted into the generator's
latent space and **pivotal tuning** fine-tunes the generator so it reproduces that exact face; speech then moves the
latent along a **trajectory**, one point per frame. These controls are wired to the page and enable themselves for a
model whose card lists them; with the models available today they are disabled.
"""


def keep_unreadable_uploads(image: gr.Image) -> gr.Image:
    """Make ``image`` hand an unreadable upload to the event function as its path, instead of failing in gradio's
    preprocessing with a bare "Error": ``talkinghead.io.load_image`` then names the problem. (A per-instance wrapper:
    a ``gr.Image`` subclass would make gradio write a ``.pyi`` stub next to this file at import.)"""
    preprocess = image.preprocess

    def tolerant(payload):
        try:
            return preprocess(payload)
        except Exception:  # noqa: BLE001 — PIL raises several types for broken files; load_image reports them
            return str(payload.path) if payload is not None and payload.path else None

    image.preprocess = tolerant
    return image


def _slider(control, supported: bool = False) -> gr.Slider:
    return gr.Slider(control.minimum, control.maximum, value=control.value, step=control.step, label=control.label,
                     interactive=supported, info=control.info if supported else UNSUPPORTED[control.group])


def build_demo(pipelines: Mapping[str, str | os.PathLike] | None = None, *, studio: Studio | None = None) -> gr.Blocks:
    """The whole page, queued (``CONCURRENCY`` generations at a time, at most ``QUEUE_SIZE`` waiting).

    Args:
        pipelines: pipeline name -> weights (name in ``weights/`` or a ``.safetensors`` path); default: the env var
            ``TALKINGHEAD_DEMO_WEIGHTS``, else the shipped files. Missing weights do not stop the page: it says which
            file is missing and how to get it.
        studio: a ready ``Studio`` (tests); overrides ``pipelines``.
    """
    studio = studio or Studio(PipelineStore(pipelines))
    names = studio.store.names

    def on_generate(*args):
        *inputs, progress = args  # gradio appends the progress tracker: see the signature below
        photo, audio, speech_from, text, language, variant, model, seed, paste_back, *values = inputs
        return tuple(studio.generate(photo, audio, speech_from, text, language, variant, model, seed, paste_back,
                                     controls=dict(zip([c.name for c in CONTROLS], values)), progress=progress))

    # Named parameters for gradio (which finds gr.Progress by its default) and for API clients (which see the names).
    on_generate.__signature__ = inspect.Signature(
        [inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for name in GENERATE_INPUTS]
        + [inspect.Parameter(c.name, inspect.Parameter.POSITIONAL_OR_KEYWORD) for c in CONTROLS]
        + [inspect.Parameter("progress", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=gr.Progress())]
    )

    def on_example(photo, speech_from, text, language, variant, progress=gr.Progress()):
        defaults = [c.value for c in CONTROLS]
        return on_generate(photo, None, speech_from, text, language, variant, names[0], 0, True, *defaults,
                           progress)[:5]

    with gr.Blocks(title="talkinghead · talking-head demo", delete_cache=(3600, 3600)) as demo:
        gr.Markdown(INTRO)
        sliders: dict[str, gr.Slider] = {}
        with gr.Tabs():
            with gr.Tab("Photo + speech", id="talk"):
                with gr.Row():
                    with gr.Column(scale=1):
                        photo = keep_unreadable_uploads(gr.Image(label="Face photo", sources=["upload", "webcam"],
                                                                 type="filepath", height=300, elem_id="photo"))
                        speech_from = gr.Radio(list(SPEECH_FROM), value=SPEECH_FROM[0], label="Speech from")
                        audio = gr.Audio(label="Speech clip", sources=["upload", "microphone"], type="filepath",
                                         elem_id="speech")
                        with gr.Group(visible=False) as typed:
                            text = gr.Textbox("Hello! I am a talking head made from a single photo.", label="Text to say",
                                              lines=2, info="spoken by espeak-ng")
                            with gr.Row():
                                language = gr.Dropdown([(label, code) for label, code in VOICES], value="en-US",
                                                       label="Language", allow_custom_value=True,
                                                       info="or any espeak-ng language, e.g. pt or nl")
                                variant = gr.Dropdown(list(VARIANTS), value="", label="Voice")
                        model = gr.Dropdown(names, value=names[0], label="Model")
                        card = gr.Markdown(elem_id="card")
                        with gr.Accordion("Controls", open=True):
                            with gr.Row():
                                seed = gr.Number(0, label="Seed", precision=0, minimum=0, maximum=2**32 - 1,
                                                 info="same inputs and seed, same video")
                                paste_back = gr.Checkbox(True, label="Paste back into the whole photo",
                                                         info="off: the aligned face crop only")
                            for control in CONTROLS:
                                if control.group == "motion":
                                    sliders[control.name] = _slider(control)
                        generate_button = gr.Button("Generate", variant="primary", elem_id="generate")
                    with gr.Column(scale=2):
                        video = gr.Video(label="Talking head", autoplay=True, interactive=False, buttons=["download"],
                                         height=480, elem_id="result")
                        summary = gr.Markdown(label="Summary", elem_id="summary")
                        tracks = gr.Plot(label="Waveform · predicted mouth opening · eye aspect ratio and blinks")
                        with gr.Row():
                            face = gr.Image(label="Landmarks found and the crop the model saw", interactive=False)
                            scores = gr.JSON(label="Scores")
                gr.Markdown("**Examples** — SynthGRID faces (the models' training distribution) and scikit-image's "
                            "astronaut photo (Eileen Collins, a NASA photograph in the public domain), each with typed "
                            "speech. Results are made on first click and kept.")
                gr.Examples(examples(), inputs=[photo, speech_from, text, language, variant],
                            outputs=[video, tracks, face, summary, scores], fn=on_example, cache_examples=True,
                            cache_mode="lazy")

            with gr.Tab("Latent trajectory + pivotal tuning", id="stylegan"):
                gr.Markdown(STYLEGAN_NOTE)
                with gr.Row():
                    with gr.Column():
                        gr.Markdown("#### Latent trajectory")
                        for control in CONTROLS:
                            if control.group == "trajectory":
                                sliders[control.name] = _slider(control)
                        trajectory = gr.Plot(label="Latent trajectory (first two principal components over time)")
                    with gr.Column():
                        gr.Markdown("#### Pivotal tuning")
                        for control in CONTROLS:
                            if control.group == "tuning":
                                sliders[control.name] = _slider(control)
                        with gr.Row():
                            before = gr.Image(label="Inverted, before tuning", interactive=False)
                            after = gr.Image(label="After pivotal tuning", interactive=False)
                        inversion = gr.Markdown("*Reconstruction scores appear here.*", label="Reconstruction scores")

            with gr.Tab("SynthGRID", id="synthgrid"):
                synthgrid_tab()

        # -- events
        controls = [sliders[c.name] for c in CONTROLS]
        outputs = [video, tracks, face, summary, scores, trajectory, before, after, inversion]

        def on_model(name):
            markdown, supported = studio.describe(name)
            updates = [gr.Slider(interactive=supported[c.name], info=c.info if supported[c.name] else UNSUPPORTED[c.group])
                       for c in CONTROLS]
            return markdown, *updates

        def on_speech_from(choice):
            return gr.Audio(visible=choice == SPEECH_FROM[0]), gr.Group(visible=choice == SPEECH_FROM[1])

        speech_from.change(on_speech_from, speech_from, [audio, typed], api_visibility="private", queue=False)
        # Cards and sliders are not held up behind running generations (only the first call loads the model).
        model.change(on_model, model, [card, *controls], api_visibility="private", concurrency_limit=None)
        demo.load(on_model, model, [card, *controls], api_visibility="private", concurrency_limit=None)
        generate_button.click(on_generate, [photo, audio, speech_from, text, language, variant, model, seed, paste_back,
                                            *controls], outputs, api_name="generate")
    demo.queue(default_concurrency_limit=CONCURRENCY, max_size=QUEUE_SIZE)
    return demo
