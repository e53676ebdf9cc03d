"""Tests for talkinghead.audio.features: alignment of audio windows with video frames."""

import time

import numpy as np
import pytest

from talkinghead.audio.features import (
    FeatureConfig,
    frame_features,
    frame_windows,
    log_mel,
    mel_windows,
    mfcc,
    mfcc_windows,
)

CFG = FeatureConfig()
SR = CFG.sr
DURATION = 3.0                                  # seconds -> 75 frames
N_SAMPLES = int(DURATION * SR)
LAST_FRAME_T = (75 - 1) / CFG.fps               # centre of the last video frame
IMPULSE_TIMES = [0.0, 0.37, 1.0, 2.52, LAST_FRAME_T]


def _impulse(t: float, *, n_samples: int = N_SAMPLES) -> tuple[np.ndarray, int]:
    """Silent clip with a unit impulse at sample round(t * sr); returns (audio, sample)."""
    audio = np.zeros(n_samples, dtype=np.float32)
    sample = round(t * SR)
    audio[sample] = 1.0
    return audio, sample


def _noise(n_samples: int, *, seed: int = 0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(n_samples)).astype(np.float32)


def test_config_defaults():
    assert (CFG.hop, CFG.window, CFG.feature_hop) == (640, 3200, 160)
    assert (CFG.steps_per_frame, CFG.steps_per_window) == (4, 20)


@pytest.mark.parametrize("t", IMPULSE_TIMES)
def test_raw_window_centred_on_its_frame(t):
    audio, sample = _impulse(t)
    windows = frame_windows(audio)                                  # (75, 3200)
    frame = round(t * CFG.fps)
    offset = int(np.argmax(np.abs(windows[frame])))
    assert abs(offset - CFG.window // 2) <= CFG.hop // 2
    # Exactly the windows whose span [i*hop - window/2, i*hop + window/2) covers the impulse
    # carry it, each exactly once, at the matching offset.
    starts = np.arange(len(windows)) * CFG.hop - CFG.window // 2
    covers = (starts <= sample) & (sample < starts + CFG.window)
    energy = np.abs(windows).sum(axis=1)
    np.testing.assert_array_equal(energy > 0, covers)
    np.testing.assert_array_equal(energy[covers], 1.0)
    for i in np.flatnonzero(covers):
        assert windows[i, sample - starts[i]] == 1.0


def test_raw_windows_are_slices_of_the_audio():
    audio = _noise(N_SAMPLES)
    windows = frame_windows(audio)
    for i in [3, 40, 72]:
        start = i * CFG.hop - CFG.window // 2
        np.testing.assert_array_equal(windows[i], audio[start:start + CFG.window])


@pytest.mark.parametrize("t", IMPULSE_TIMES)
def test_log_mel_peak_at_impulse_step(t):
    audio, _ = _impulse(t)
    mel = log_mel(audio)                                            # (80, 301)
    assert mel.shape == (CFG.n_mels, 1 + N_SAMPLES // CFG.feature_hop)
    energy = np.exp(mel).sum(axis=0)                                # (S,)
    assert int(np.argmax(energy)) == round(t * CFG.feature_rate)


@pytest.mark.parametrize("t", IMPULSE_TIMES)
def test_mfcc_peak_at_impulse_step(t):
    audio, _ = _impulse(t)
    coeffs = mfcc(audio)                                            # (13, 301)
    assert coeffs.shape == (CFG.n_mfcc, 1 + N_SAMPLES // CFG.feature_hop)
    # c0 is proportional to the mean log-mel energy.
    assert int(np.argmax(coeffs[0])) == round(t * CFG.feature_rate)


@pytest.mark.parametrize("t", IMPULSE_TIMES)
@pytest.mark.parametrize("windows_fn", [mel_windows, mfcc_windows])
def test_feature_window_peak_at_centre_of_its_frame(t, windows_fn):
    audio, _ = _impulse(t)
    windows = windows_fn(audio)                                     # (75, C, 20)
    silent = windows_fn(np.zeros_like(audio))
    frame = round(t * CFG.fps)
    # Deviation from silence, summed over channels: (20,) per step of the window.
    deviation = np.abs(windows[frame] - silent[frame]).sum(axis=0)
    assert abs(int(np.argmax(deviation)) - CFG.steps_per_window // 2) <= 2
    # Frames whose 0.2 s window is far from the impulse see only silence.
    far = np.abs(np.arange(len(windows)) - frame) > 5
    np.testing.assert_array_equal(windows[far], silent[far])


def test_feature_windows_gather_centred_steps():
    audio = _noise(N_SAMPLES)
    mel = log_mel(audio)                                            # (80, 301)
    windows = mel_windows(audio)                                    # (75, 80, 20)
    for i in [3, 40, 72]:
        start = i * CFG.steps_per_frame - CFG.steps_per_window // 2
        np.testing.assert_array_equal(windows[i], mel[:, start:start + CFG.steps_per_window])
    # Frame 0's window starts 10 steps before the first feature step: zeros there.
    np.testing.assert_array_equal(windows[0, :, :10], 0.0)
    np.testing.assert_array_equal(windows[0, :, 10:], mel[:, :10])


def test_features_are_local():
    # A step depends only on the audio under its analysis window, not on the rest of the clip.
    audio = _noise(N_SAMPLES)
    audio[SR:] *= 5.0                                               # louder second part
    full = mfcc(audio)
    part = mfcc(audio[:SR])
    np.testing.assert_allclose(part[:, 10:90], full[:, 10:90], rtol=1e-4, atol=1e-3)


@pytest.mark.parametrize("kind, tail", [("raw", (3200,)), ("mfcc", (13, 20)), ("mel", (80, 20))])
def test_shapes_counts_and_dtype(kind, tail):
    audio = _noise(N_SAMPLES)
    feats = frame_features(audio, kind)
    assert feats.shape == (75, *tail)
    assert feats.dtype == np.float32
    # Odd lengths round the frame count up.
    assert frame_features(audio[:N_SAMPLES - 1], kind).shape[0] == 75
    assert frame_features(np.append(audio, 0.1), kind).shape[0] == 76
    assert frame_features(audio[:12345], kind).shape[0] == 20      # ceil(12345 / 640)
    # float64 input is accepted, output stays float32.
    assert frame_features(audio.astype(np.float64), kind).dtype == np.float32
    # Explicit n_frames: shorter gives the first frames unchanged ...
    np.testing.assert_array_equal(frame_features(audio, kind, n_frames=30), feats[:30])
    # ... longer pads with zeros once the windows leave the audio (frame 75 + 3 is > 0.2 s out).
    longer = frame_features(audio, kind, n_frames=100)
    assert longer.shape == (100, *tail)
    np.testing.assert_array_equal(longer[:75], feats)
    np.testing.assert_array_equal(longer[80:], 0.0)


@pytest.mark.parametrize("kind, tail", [("raw", (3200,)), ("mfcc", (13, 20)), ("mel", (80, 20))])
def test_empty_audio(kind, tail):
    empty = np.zeros(0, dtype=np.float32)
    assert frame_features(empty, kind).shape == (0, *tail)
    padded = frame_features(empty, kind, n_frames=4)
    assert padded.shape == (4, *tail)
    np.testing.assert_array_equal(padded, 0.0)
    assert frame_features(_noise(1000), kind, n_frames=0).shape == (0, *tail)


def test_raw_zero_padding_at_the_ends():
    audio = _noise(N_SAMPLES) + 0.5                                 # no exact zeros inside
    windows = frame_windows(audio)
    half = CFG.window // 2
    np.testing.assert_array_equal(windows[0, :half], 0.0)
    assert np.all(windows[0, half:] != 0.0)
    # Last frame is centred at 74 * 640 = 47360; audio ends at 48000 = 640 samples later.
    np.testing.assert_array_equal(windows[-1, half + 640:], 0.0)
    assert np.all(windows[-1, :half + 640] != 0.0)


def test_short_audio_matches_padded_audio():
    # Clips shorter than n_fft are zero-padded internally; that must equal the same clip
    # followed by silence, since librosa's centring pads with zeros too.
    audio = _noise(300)
    longer = np.concatenate([audio, np.zeros(3000, dtype=np.float32)])
    np.testing.assert_allclose(log_mel(audio), log_mel(longer)[:, :2], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(mfcc(audio), mfcc(longer)[:, :2], rtol=1e-5, atol=1e-4)


def test_speed_60s_all_kinds():
    audio = _noise(60 * SR)
    short = audio[:SR]
    for kind in ("raw", "mfcc", "mel"):                             # warm-up: librosa caches
        frame_features(short, kind)
    # Best of three, so a busy machine does not fail the test for the code's sake.
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        for kind in ("raw", "mfcc", "mel"):
            frame_features(audio, kind)
        best = min(best, time.perf_counter() - start)
    assert best < 1.0, f"60 s of audio took {best:.2f} s for all three kinds"


def test_two_channel_audio_rejected():
    with pytest.raises(ValueError, match="load_audio"):
        frame_windows(np.zeros((2, 16000), dtype=np.float32))


def test_integer_audio_rejected():
    with pytest.raises(ValueError, match="float"):
        mel_windows(np.zeros(16000, dtype=np.int16))


def test_bad_kind_rejected():
    with pytest.raises(ValueError, match="raw, mfcc, mel"):
        frame_features(np.zeros(16000, dtype=np.float32), "wav2vec")


def test_non_integer_hop_rejected():
    with pytest.raises(ValueError, match="sr / fps"):
        FeatureConfig(sr=16000, fps=30)


def test_negative_n_frames_rejected():
    with pytest.raises(ValueError, match="n_frames"):
        frame_windows(np.zeros(16000, dtype=np.float32), n_frames=-1)
