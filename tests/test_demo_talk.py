"""The photo + speech tab's event functions, called directly on tiny random weights: good input gives a playable mp4,
plots and scores; every kind of bad input gives a ``gr.Error`` that says what to do."""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import gradio as gr  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import soundfile  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402
from PIL import Image  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:  # demo/ lives at the repository root, outside the installed package
    sys.path.insert(0, str(ROOT))

from demo import common  # noqa: E402
from demo.assets import EXAMPLES_DIR  # noqa: E402
from demo.models import CONTROLS, PipelineStore, card_markdown  # noqa: E402
from demo.talk import SPEECH_FROM, Studio  # noqa: E402
from talkinghead.hub import save_weights  # noqa: E402
from talkinghead.io import read_video  # noqa: E402

SR = 16000
FILE, TYPED = SPEECH_FROM
FACE = str(EXAMPLES_DIR / "synthgrid_3.png")  # 256 px, one face: quick to detect
METRICS = {"test": {"static": {"lse_c": 0.31, "psnr": 30.2}, "sda": {"lse_c": 2.54, "psnr": 27.9}}}


def save_tiny_sda(root: Path) -> Path:
    """Random-init SDA weights of the ``tiny`` preset, with a manifest entry, in ``root``."""
    from talkinghead.models.sda import Config, Generator

    torch.manual_seed(0)
    cfg = Config.preset("tiny")
    return save_weights(Generator(cfg).state_dict(), "sda_tiny.safetensors", root=root, config=cfg.name,
                        config_dict=cfg.to_dict(), data="random init (test)", steps=0, metrics=METRICS)


def speech(seconds: float, *, sr: int = SR, channels: int = 1) -> np.ndarray:
    """A buzzing vowel switched on and off three times a second: (N,) or (N, channels) float32."""
    t = np.arange(int(seconds * sr)) / sr
    wave = (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)
    return np.repeat(wave[:, None], channels, axis=1) if channels > 1 else wave


@pytest.fixture(scope="module", autouse=True)
def output_root(tmp_path_factory):
    """Keep this module's videos in pytest's temporary directory."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(common, "OUTPUT_ROOT", tmp_path_factory.mktemp("outputs"))
        yield common.OUTPUT_ROOT


@pytest.fixture(scope="module")
def weights(tmp_path_factory) -> Path:
    return save_tiny_sda(tmp_path_factory.mktemp("weights"))


@pytest.fixture(scope="module")
def studio(weights) -> Studio:
    return Studio(PipelineStore({"sda": str(weights)}, max_seconds=30), analyse_seconds=4)


@pytest.fixture(scope="module")
def wav(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("audio") / "speech.wav"
    soundfile.write(path, speech(1.0), SR)
    return str(path)


def run(studio, photo=FACE, audio=None, speech_from=FILE, text="", **kw):
    return studio.generate(photo, audio, speech_from, text, kw.pop("language", "en-US"), kw.pop("variant", ""),
                           kw.pop("pipeline", "sda"), kw.pop("seed", 0), kw.pop("paste_back", True), **kw)


def test_good_input_gives_video_plots_landmarks_and_sync(studio, wav):
    stages = []
    result = run(studio, audio=wav, progress=lambda done, desc: stages.append((done, desc)))
    frames, fps, sound = read_video(result.video)
    assert frames.shape == (25, 256, 256, 3) and fps == 25 and sound is not None  # the whole photo, with sound
    assert isinstance(result.tracks, Figure) and len(result.tracks.axes) == 3
    assert len(result.tracks.axes[1].lines[0].get_xdata()) == 25  # the mouth opening of every frame
    assert result.face.shape == (256, 256, 3) and not np.array_equal(result.face, np.asarray(Image.open(FACE)))
    sync = result.scores["sync"]
    assert set(sync) == {"offset", "lse_c", "lse_d"} and abs(sync["offset"]) <= 15 and sync["lse_c"] >= 0
    assert "LSE-C" in result.summary and "AV offset" in result.summary
    assert result.scores["n_faces"] == 1 and "faces" not in result.summary
    assert result.trajectory is None and result.before is None and result.inversion == ""  # SDA has no StyleGAN extras
    # One progress bar through the named stages, never going back.
    names = [desc for _, desc in stages]
    for stage in ("loading the model", "finding the face", "generating frames", "encoding", "measuring the result"):
        assert stage in names
    assert [done for done, _ in stages] == sorted(done for done, _ in stages)


def test_crop_only_typed_text_and_seed(studio):
    a = run(studio, speech_from=TYPED, text="bin blue", variant="m3", paste_back=False, seed=1)
    b = run(studio, speech_from=TYPED, text="bin blue", variant="m3", paste_back=False, seed=2)
    frames_a, _, sound = read_video(a.video)
    assert frames_a.shape[1:] == (32, 32, 3) and sound is not None  # the tiny preset's 32-pixel crop
    assert a.scores["seconds"] > 0.3
    assert not np.array_equal(frames_a, read_video(b.video)[0])


def test_several_faces_animates_the_largest_and_says_so(studio, wav, tmp_path):
    face = np.asarray(Image.open(FACE))
    small = np.asarray(Image.fromarray(face).resize((160, 160)))
    group = np.zeros((256, 448, 3), np.uint8)
    group[:, :256], group[48:208, 272:432] = face, small
    Image.fromarray(group).save(tmp_path / "two.png")
    with pytest.warns(UserWarning, match="2 faces"):  # gr.Warning outside a request is a Python warning
        result = run(studio, photo=str(tmp_path / "two.png"), audio=wav)
    assert result.scores["n_faces"] == 2 and "found 2 faces in the photo: the largest is animated" in result.summary
    # the larger face (left) was animated: its landmarks are there
    assert (result.face[:, 256:] == group[:, 256:]).all()


def test_silent_audio_gives_a_closed_mouth_not_an_error(studio, tmp_path):
    soundfile.write(tmp_path / "silence.wav", np.zeros(SR // 2, np.float32), SR)
    result = run(studio, audio=str(tmp_path / "silence.wav"))
    assert read_video(result.video)[0].shape[0] == 13


def test_any_rate_stereo_and_a_huge_photo(studio, tmp_path):
    soundfile.write(tmp_path / "stereo.flac", speech(0.6, sr=44100, channels=2), 44100)
    Image.open(FACE).resize((2400, 2400)).save(tmp_path / "huge.png")
    result = run(studio, photo=str(tmp_path / "huge.png"), audio=str(tmp_path / "stereo.flac"))
    frames, _, _ = read_video(result.video)
    assert frames.shape == (15, 1024, 1024, 3)  # the pipeline downscales the photo to 1024 px
    assert abs(result.scores["seconds"] - 0.6) < 0.01


def test_long_clip_streams_and_measures_only_the_start(studio, tmp_path):
    soundfile.write(tmp_path / "long.wav", speech(12.0), SR)
    result = run(studio, audio=str(tmp_path / "long.wav"), paste_back=False)
    assert read_video(result.video)[0].shape[0] == 300
    assert result.scores["measured_seconds"] == 4.0  # analyse_seconds: the crops kept in memory
    assert "measured: the first 4 s" in result.tracks.axes[1].get_title(loc="right")


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    import skimage.data

    root = tmp_path_factory.mktemp("bad")
    Image.fromarray(np.full((240, 320, 3), 127, np.uint8)).save(root / "grey.png")
    Image.fromarray(skimage.data.chelsea()).save(root / "cat.png")
    (root / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (root / "notes.wav").write_text("this is text, not sound")
    (root / "empty.wav").write_bytes(b"")
    soundfile.write(root / "zero.wav", np.zeros(0, np.float32), SR)
    soundfile.write(root / "long.wav", speech(31.0), SR)
    soundfile.write(root / "ok.wav", speech(0.5), SR)
    return root


@pytest.mark.parametrize(("photo", "audio", "message"), [
    ("grey.png", "ok.wav", "no face found"),
    ("cat.png", "ok.wav", "no face found"),
    ("corrupt.png", "ok.wav", "could not read image"),
    (None, "ok.wav", "no photo given"),
    ("FACE", "notes.wav", "could not decode audio"),
    ("FACE", "empty.wav", "is empty"),
    ("FACE", "zero.wav", "no audio samples|empty"),
    ("FACE", "long.wav", "longer than the 30 s limit"),
    ("FACE", None, "no speech given"),
])
def test_bad_input_is_a_clear_gr_error(studio, bad_files, photo, audio, message):
    photo = FACE if photo == "FACE" else photo and str(bad_files / photo)
    with pytest.raises(gr.Error, match=message):
        run(studio, photo=photo, audio=audio and str(bad_files / audio))


@pytest.mark.parametrize(("kw", "message"), [
    ({"speech_from": TYPED, "text": "   "}, "no text to speak"),
    ({"speech_from": TYPED, "text": "a" * 1001}, "1000 or fewer"),
    ({"speech_from": TYPED, "text": "hello", "language": "xx-nope"}, "has no voice"),
    ({"seed": -1}, "seed must be a whole number"),
    ({"pipeline": "nope"}, "unknown pipeline 'nope'"),
])
def test_bad_settings_are_a_clear_gr_error(studio, wav, kw, message):
    with pytest.raises(gr.Error, match=message):
        run(studio, audio=wav, **kw)


def test_missing_weights_say_which_file_and_the_page_still_works(tmp_path, monkeypatch):
    monkeypatch.delenv("TALKINGHEAD_HUB_REPO", raising=False)
    studio = Studio(PipelineStore({"sda": str(tmp_path / "sda_nowhere.safetensors")}))
    markdown, supported = studio.describe("sda")
    assert "Weights missing" in markdown and "sda_nowhere.safetensors" in markdown and "TALKINGHEAD_HUB_REPO" in markdown
    assert not any(supported.values())
    with pytest.raises(gr.Error, match="sda_nowhere.safetensors"):
        run(studio, audio="unused.wav")


def test_card_and_controls_follow_the_pipeline(studio):
    markdown, supported = studio.describe("sda")
    assert "Temporal GAN" in markdown and "random init (test)" in markdown
    assert "| metric | sda | static |" in markdown and "| LSE-C ↑ | 2.54 | 0.31 |" in markdown and "| PSNR (dB) ↑ | 27.9 | 30.2 |" in markdown
    assert supported == {c.name: False for c in CONTROLS}  # SDA takes the seed only
    # A later pipeline enables a control by listing it in its card.
    card = {"title": "StyleGAN talker", "controls": ["seed", "head_motion", "trajectory_scale"]}
    assert "head_motion, trajectory_scale" in card_markdown("stylegan", card)


def test_only_supported_controls_reach_the_pipeline(studio, wav):
    """SDA raises TypeError for controls it lacks: the page's (disabled) sliders must not reach it."""
    result = run(studio, audio=wav, controls={c.name: c.value for c in CONTROLS})
    assert Path(result.video).is_file()
