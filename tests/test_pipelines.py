"""Pipelines: photo + speech → video through the registry, on locally made tiny weights."""
from __future__ import annotations

import numpy as np
import pytest
import skimage.data
import torch

import talkinghead
from talkinghead.hub import save_weights
from talkinghead.io import InputError, read_video
from talkinghead.models.sda import Config, Generator
from talkinghead.pipelines import list_pipelines, load_pipeline

SR = 16000


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    torch.manual_seed(0)
    cfg = Config.preset("tiny")
    save_weights(Generator(cfg).state_dict(), "sda_tiny.safetensors", root=root, config=cfg.name, config_dict=cfg.to_dict(),
                 data="random init (test)", steps=0, metrics={})
    return root / "sda_tiny.safetensors"


@pytest.fixture(scope="module")
def pipeline(weights):
    return load_pipeline("sda", str(weights), max_seconds=30)


@pytest.fixture(scope="module")
def photo():
    return skimage.data.astronaut()  # 512×512, one face


def _speech(seconds=1.0, seed=0):
    t = np.arange(int(seconds * SR)) / SR
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (np.sin(2 * np.pi * 3 * t) > 0)).astype(np.float32)


def test_registry():
    assert "sda" in list_pipelines() == talkinghead.list_pipelines()
    with pytest.raises(ValueError, match="unknown pipeline 'nope'"):
        load_pipeline("nope")


def test_whole_photo_and_crop(pipeline, photo):
    out = pipeline(photo, _speech(1.0), seed=0)
    assert out.frames.shape == (25, 512, 512, 3) and out.frames.dtype == np.uint8
    assert out.fps == 25 and out.sr == SR and len(out.audio) == SR
    assert out.extras["crops"].shape == (25, 32, 32, 3) and out.extras["n_faces"] >= 1  # dlib also sees a patch of the flag
    # Outside the feathered mask around the face the photo is untouched; inside, the face moves.
    from talkinghead.face.align import PasteBack

    outside = PasteBack(photo, out.extras["alignment"]).mask == 0
    assert outside.mean() > 0.5
    assert np.array_equal(out.frames[:, outside], np.broadcast_to(photo[outside], out.frames[:, outside].shape))
    assert not np.array_equal(out.frames[:, ~outside], np.broadcast_to(photo[~outside], out.frames[:, ~outside].shape))
    crop = pipeline(photo, _speech(1.0), seed=0, paste_back=False)
    assert crop.frames.shape == (25, 32, 32, 3)
    np.testing.assert_array_equal(crop.frames, out.extras["crops"])


def test_same_seed_same_video_other_seed_differs(pipeline, photo):
    a = pipeline(photo, _speech(0.5), seed=1, paste_back=False).frames
    b = pipeline(photo, _speech(0.5), seed=1, paste_back=False).frames
    c = pipeline(photo, _speech(0.5), seed=2, paste_back=False).frames
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_streamed_video_matches_in_memory_frames(pipeline, photo, tmp_path):
    audio = _speech(4.0)  # 100 frames: two chunks of 75 and 25
    out = pipeline(photo, audio, paste_back=False)
    path, extras = pipeline.to_video(photo, audio, tmp_path / "a.mp4", paste_back=False)
    frames, fps, sound = read_video(path)
    assert frames.shape == out.frames.shape and fps == 25 and sound is not None
    assert np.abs(frames.astype(int) - out.frames.astype(int)).mean() < 6  # H.264 at crf 18
    assert set(extras["timings"]) >= {"face", "audio", "generate", "encode"}


def test_output_save(pipeline, photo, tmp_path):
    path = pipeline(photo, _speech(0.4)).save(tmp_path / "out.mp4")
    assert read_video(path)[0].shape == (10, 512, 512, 3)


def test_silent_audio_is_fine_and_progress_is_reported(pipeline, photo):
    stages = []
    out = pipeline(photo, np.zeros(SR, np.float32), progress=lambda stage, done: stages.append(stage))
    assert len(out.frames) == 25
    assert stages[0] == "finding the face" and "generating frames" in stages


@pytest.mark.parametrize("image, audio, match", [
    (np.full((200, 200, 3), 127, np.uint8), _speech(), "no face found"),
    ("photo", np.zeros(0, np.float32), "empty"),
    ("photo", _speech(40.0), "longer than"),
])
def test_bad_input_is_a_clear_error_and_leaves_no_file(pipeline, photo, tmp_path, image, audio, match):
    image = photo if isinstance(image, str) else image
    with pytest.raises(InputError, match=match):
        pipeline.to_video(image, audio, tmp_path / "bad.mp4")
    assert list(tmp_path.iterdir()) == []


def test_unknown_control_is_refused(pipeline, photo):
    with pytest.raises(TypeError, match="no control"):
        pipeline(photo, _speech(0.2), mouth=2.0)


def test_generate_cli(weights, photo, tmp_path, capsys):
    from PIL import Image

    from talkinghead.cli import main

    image = tmp_path / "face.png"
    Image.fromarray(photo).save(image)
    audio = tmp_path / "speech.wav"
    import soundfile

    soundfile.write(audio, _speech(0.8), SR)
    out = tmp_path / "out.mp4"
    assert main(["generate", "--model", "sda", "--weights", str(weights), "--image", str(image), "--audio", str(audio),
                 "--out", str(out), "--crop-only"]) == 0
    assert read_video(out)[0].shape == (20, 32, 32, 3)
    assert main(["generate", "--weights", str(weights), "--image", str(audio), "--audio", str(audio), "--out", str(tmp_path / "x.mp4")]) == 2
    assert "error:" in capsys.readouterr().err and not (tmp_path / "x.mp4").exists()
