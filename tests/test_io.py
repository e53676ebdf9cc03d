"""Tests for talkinghead.io: media loading, atomic mp4 writing, round trips."""
import subprocess
import time

import imageio_ffmpeg
import numpy as np
import pytest
import soundfile
import torch
from PIL import Image, PngImagePlugin

from talkinghead.io import InputError, VideoWriter, load_audio, load_image, read_video, \
    write_video

FFMPEG = imageio_ffmpeg.get_ffmpeg_exe()
SR = 16000
FPS = 25
H, W = 48, 64


def tone(seconds, sr=SR, freq=440.0, amp=0.5):
    """A sine tone, float32 (N,)."""
    t = np.arange(round(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def gradient(height=H, width=W, shift=0):
    """A smooth RGB gradient, uint8 (H, W, 3); ``shift`` makes frames differ."""
    img = np.empty((height, width, 3), np.uint8)
    img[..., 0] = np.linspace(0, 255, width)[None, :]
    img[..., 1] = np.linspace(0, 255, height)[:, None]
    img[..., 2] = (64 + 3 * shift) % 256
    return img


def ffmpeg(*args):
    subprocess.run([FFMPEG, "-nostdin", "-v", "error", "-y", *args], check=True)


def best_correlation(a, b, max_lag=64):
    """Largest normalised correlation of a and b over small lags (codec delay)."""
    n = min(len(a), len(b)) - max_lag
    return max(np.corrcoef(a[lag:lag + n], b[:n])[0, 1] for lag in range(max_lag))


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """50 frames (2.0 s) of moving gradient with a 2.0 s 440 Hz tone, as mp4."""
    frames = np.stack([gradient(shift=i) for i in range(50)])
    audio = tone(2.0)
    path = tmp_path_factory.mktemp("clip") / "clip.mp4"
    assert write_video(path, frames, FPS, audio=audio, sr=SR) == path
    return path, frames, audio


@pytest.fixture(scope="module")
def audio_files(tmp_path_factory):
    """The same 1.0 s 440 Hz tone at 44.1 kHz in every supported container."""
    folder = tmp_path_factory.mktemp("audio")
    paths = {}
    for ext in ("wav", "flac", "mp3", "ogg", "m4a"):
        paths[ext] = folder / f"tone.{ext}"
        ffmpeg("-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100:duration=1",
               str(paths[ext]))
    return paths


# ----------------------------------------------------------------------------- video


def test_round_trip(clip):
    path, frames, audio = clip
    got, fps, got_audio = read_video(path)
    assert got.shape == frames.shape and got.dtype == np.uint8
    assert fps == FPS
    assert abs(len(got) / fps - len(frames) / FPS) <= 1 / FPS
    assert abs(len(got_audio) / SR - len(got) / fps) <= 0.040
    assert np.abs(got.astype(np.float32) - frames).mean() < 3.0
    # Frames come back in order: frame 10 is closer to original 10 than to 40.
    err = lambda a, b: np.abs(a.astype(np.float32) - b).mean()
    assert err(got[10], frames[10]) < err(got[10], frames[40])
    assert got_audio.dtype == np.float32
    assert best_correlation(got_audio, audio) > 0.95


def test_codecs_are_browser_playable(clip):
    info = subprocess.run([FFMPEG, "-hide_banner", "-i", str(clip[0])],
                          capture_output=True, text=True).stderr
    assert "h264" in info and "yuv420p" in info and "aac" in info


@pytest.mark.parametrize("audio_seconds", [1.3, 3.0])
def test_audio_fitted_to_video_length(tmp_path, audio_seconds):
    path = write_video(tmp_path / "v.mp4", [gradient()] * 50, FPS,
                       audio=tone(audio_seconds), sr=SR)
    frames, fps, audio = read_video(path)
    assert abs(len(audio) / SR - len(frames) / fps) <= 0.040
    # Padding is silence, trimming keeps the tone up to the end.
    tail = np.abs(audio[-SR // 4:]).max()
    assert tail < 0.01 if audio_seconds < 2 else tail > 0.4


def test_odd_size_is_padded_to_even(tmp_path):
    frame = gradient(47, 65)
    path = write_video(tmp_path / "odd.mp4", [frame] * 5, FPS)
    frames, _, audio = read_video(path)
    assert frames.shape == (5, 48, 66, 3)
    assert audio is None
    assert np.abs(frames[:, :47, :65].astype(np.float32) - frame).mean() < 3.0


def test_float_chw_frames_and_batches(tmp_path):
    img = gradient()
    chw = torch.from_numpy(img).permute(2, 0, 1).float() / 127.5 - 1.0   # (3, H, W)
    with VideoWriter(tmp_path / "f.mp4", fps=10) as writer:
        writer.write(chw)
        writer.write(np.stack([chw.numpy()] * 3))       # (N, 3, H, W)
        writer.write(np.stack([img] * 2))               # (N, H, W, 3) uint8
        assert writer.frames_written == 6
        with pytest.raises(ValueError, match="differs"):
            writer.write(gradient(32, 32))
        with pytest.raises(ValueError, match="expected"):
            writer.write(img.astype(np.float32))        # float must be (3, H, W)
    frames, fps, _ = read_video(tmp_path / "f.mp4")
    assert frames.shape == (6, H, W, 3) and fps == 10
    assert np.abs(frames[0].astype(np.float32) - img).mean() < 3.0


def test_exception_leaves_nothing_and_keeps_old_file(tmp_path):
    final = tmp_path / "out.mp4"
    final.write_bytes(b"previous video")
    with pytest.raises(KeyError):
        with VideoWriter(final, audio=tone(1.0), sr=SR) as writer:
            writer.write(np.stack([gradient(shift=i) for i in range(100)]))
            # Wait until ffmpeg has really started writing its temporary file.
            deadline = time.monotonic() + 5.0
            while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert any(p.name.startswith(".out.mp4.") for p in tmp_path.iterdir())
            raise KeyError("boom")
    assert final.read_bytes() == b"previous video"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.mp4"]

    final.unlink()
    with pytest.raises(KeyError):
        with VideoWriter(final) as writer:
            writer.write(gradient())
            raise KeyError("boom")
    assert list(tmp_path.iterdir()) == []


def test_ffmpeg_failure_raises_with_its_message(tmp_path):
    writer = VideoWriter(tmp_path / "bad.mp4", preset="no-such-preset")
    with pytest.raises(RuntimeError, match="ffmpeg"):
        for _ in range(100):   # ffmpeg may die before or after the first write
            writer.write(gradient())
        writer.close()
    assert list(tmp_path.iterdir()) == []


# ----------------------------------------------------------------------------- audio


@pytest.mark.parametrize("ext", ["wav", "flac", "mp3", "ogg", "m4a"])
def test_load_audio_formats(audio_files, ext):
    audio = load_audio(audio_files[ext])
    assert audio.dtype == np.float32 and audio.ndim == 1
    assert abs(len(audio) - SR) <= 0.03 * SR     # lossy codecs add a few ms
    assert np.abs(audio).max() <= 1.0
    assert best_correlation(audio, tone(1.0, amp=1.0)) > 0.9


def test_load_audio_stereo_44k_wav(tmp_path):
    stereo = np.stack([tone(1.5, sr=44100), tone(1.5, sr=44100)], axis=1)  # (N, 2)
    soundfile.write(tmp_path / "stereo.wav", stereo, 44100)
    audio = load_audio(tmp_path / "stereo.wav")
    assert audio.shape == (24000,)
    assert best_correlation(audio, tone(1.5)) > 0.99


def test_load_audio_from_video(clip):
    audio = load_audio(clip[0])
    assert abs(len(audio) - 2 * SR) <= 0.04 * SR
    assert best_correlation(audio, clip[2]) > 0.95


def test_load_audio_silence_is_valid(tmp_path):
    soundfile.write(tmp_path / "silence.wav", np.zeros(8000, np.int16), 8000)
    audio = load_audio(tmp_path / "silence.wav")
    assert audio.shape == (SR,) and not audio.any()
    assert not load_audio(np.zeros(100, np.float32)).any()


def test_load_audio_file_errors(tmp_path, clip):
    with pytest.raises(InputError, match="not found"):
        load_audio(tmp_path / "missing.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_audio(tmp_path / "empty.wav")
    (tmp_path / "text.wav").write_text("this is not audio\n" * 20)
    with pytest.raises(InputError, match="corrupt"):
        load_audio(tmp_path / "text.wav")
    silent_video = write_video(tmp_path / "mute.mp4", [gradient()] * 3, FPS)
    with pytest.raises(InputError, match="no audio stream"):
        load_audio(silent_video)
    with pytest.raises(InputError, match="max_seconds"):
        load_audio(clip[0], max_seconds=1.0)


def test_load_audio_array_errors():
    with pytest.raises(InputError, match="empty"):
        load_audio(np.zeros(0, np.float32))
    with pytest.raises(InputError, match="max_seconds"):
        load_audio(np.zeros(3 * SR, np.float32), max_seconds=2.0)
    with pytest.raises(InputError, match="NaN"):
        load_audio(np.array([0.0, np.nan], np.float32))
    with pytest.raises(InputError, match="3 dimensions"):
        load_audio(np.zeros((2, 2, 100), np.float32))
    with pytest.raises(InputError, match="not numeric"):
        load_audio(np.array(["a", "b"]))


def test_load_audio_gradio_tuple():
    left = (tone(1.0, sr=44100) * 32767).astype(np.int16)
    stereo = np.stack([left, left], axis=1)          # (N, 2) int16, as Gradio gives
    audio = load_audio((44100, stereo))
    assert audio.shape == (SR,) and audio.dtype == np.float32
    assert abs(np.abs(audio).max() - 0.5) < 0.02
    assert best_correlation(audio, tone(1.0)) > 0.99


def test_load_audio_torch_and_int_dtypes():
    wave = tone(1.0, sr=22050)
    audio = load_audio(torch.from_numpy(np.stack([wave, wave])), orig_sr=22050)  # (C, N)
    assert audio.shape == (SR,) and audio.dtype == np.float32
    assert best_correlation(audio, tone(1.0)) > 0.99
    assert load_audio(np.array([0, 128, 255], np.uint8)).tolist() == [-1.0, 0.0, 127 / 128]
    assert load_audio(np.array([-2**31, 2**30], np.int32)).tolist() == [-1.0, 0.5]


# ----------------------------------------------------------------------------- image


@pytest.mark.parametrize("ext,tolerance", [("png", 0), ("bmp", 0), ("webp", 0), ("jpg", 4)])
def test_load_image_formats(tmp_path, ext, tolerance):
    img = gradient()
    path = tmp_path / f"img.{ext}"
    Image.fromarray(img).save(path, **({"lossless": True} if ext == "webp" else {}))
    got = load_image(path)
    assert got.shape == (H, W, 3) and got.dtype == np.uint8
    assert np.abs(got.astype(np.float32) - img).mean() <= tolerance


def test_load_image_applies_exif_rotation(tmp_path):
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = (255, 0, 0)         # left half red
    img[:, 20:] = (0, 0, 255)         # right half blue
    exif = Image.Exif()
    exif[0x0112] = 6                  # "rotate 90 degrees clockwise to display"
    Image.fromarray(img).save(tmp_path / "phone.jpg", exif=exif, quality=95)
    got = load_image(tmp_path / "phone.jpg")
    assert got.shape == (40, 20, 3)
    assert got[5, 10, 0] > 200 and got[35, 10, 2] > 200   # red on top, blue below


def test_load_image_modes(tmp_path):
    gray = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (8, 1))       # (8, 64)
    Image.fromarray(gray).save(tmp_path / "gray.png")
    got = load_image(tmp_path / "gray.png")
    assert got.shape == (8, 64, 3) and (got == gray[:, :, None]).all()

    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:4, :, 3] = 255              # top opaque red, bottom fully transparent
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    got = load_image(tmp_path / "rgba.png")
    assert got.shape == (8, 8, 3)
    assert got[0, 0].tolist() == [255, 0, 0] and got[7, 7].tolist() == [255, 255, 255]

    deep = (gray.astype(np.uint16) * 257)                              # 16-bit gray
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert (load_image(tmp_path / "deep.png")[..., 1] == gray).all()


def test_load_image_arrays():
    img = gradient()
    assert (load_image(img) == img).all()
    assert (load_image(Image.fromarray(img)) == img).all()
    assert (load_image(img / 255.0) == img).all()
    assert load_image(np.ones((4, 5), bool)).tolist() == np.full((4, 5, 3), 255).tolist()
    assert load_image(img[..., :1]).shape == (H, W, 3)
    with pytest.raises(InputError, match=r"\(3, 48, 64\)"):
        load_image(img.transpose(2, 0, 1))
    with pytest.raises(InputError, match="outside"):
        load_image(img.astype(np.float32))
    with pytest.raises(InputError, match="int64"):
        load_image(img.astype(np.int64))


def test_load_image_file_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_image(tmp_path / "missing.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        load_image(tmp_path / "empty.png")
    (tmp_path / "text.jpg").write_text("not an image")
    with pytest.raises(InputError, match="corrupt"):
        load_image(tmp_path / "text.jpg")
    Image.fromarray(gradient()).save(tmp_path / "cut.png")
    data = (tmp_path / "cut.png").read_bytes()
    (tmp_path / "cut.png").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match="corrupt"):
        load_image(tmp_path / "cut.png")


def test_load_image_bomb_refused_before_decoding(tmp_path, monkeypatch):
    Image.new("RGB", (2000, 2000), (10, 20, 30)).save(tmp_path / "big.png")

    def no_decoding(self):
        raise AssertionError("pixels were decoded")

    monkeypatch.setattr(PngImagePlugin.PngImageFile, "load", no_decoding)
    with pytest.raises(InputError, match="max_pixels"):
        load_image(tmp_path / "big.png", max_pixels=1_000_000)
