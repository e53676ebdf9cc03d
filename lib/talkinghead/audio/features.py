"""Frame-aligned audio features: one window of audio per video frame.

Conventions shared by the whole project:

* audio is 16 kHz mono float32 in [-1, 1]; video is 25 fps;
* video frame ``i`` is *centred* at time ``i / fps``, i.e. at sample ``i * hop`` with
  ``hop = sr / fps`` (640 samples by default);
* a clip of ``N`` samples has ``ceil(N / hop)`` frames (3.0 s -> 75 frames) unless the
  caller asks for ``n_frames`` explicitly, in which case the audio is zero-padded or cut,
  never an error.

Three kinds of per-frame features are offered, all numpy in, numpy out (float32):

* ``"raw"``  -- waveform windows ``(T, window)`` (used by the SDA model);
* ``"mfcc"`` -- MFCC windows ``(T, n_mfcc, steps_per_window)`` at 100 Hz, SyncNet's convention;
* ``"mel"``  -- log-mel windows ``(T, n_mels, steps_per_window)`` at 100 Hz.

Feature step ``j`` is centred at sample ``j * feature_hop`` (librosa with ``center=True``),
so video frame ``i`` is centred at step ``i * steps_per_frame`` and its window holds steps
``[i * steps_per_frame - steps_per_window // 2, ... + steps_per_window)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import librosa
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

__all__ = [
    "FeatureConfig",
    "frame_windows",
    "mfcc",
    "log_mel",
    "mfcc_windows",
    "mel_windows",
    "frame_features",
    "FEATURE_KINDS",
]

FEATURE_KINDS = ("raw", "mfcc", "mel")

# Added to the mel power before the log so that digital silence stays finite (log(1e-6) = -13.8).
_LOG_EPS = 1e-6


def _as_int(value: float, what: str, fix: str) -> int:
    """Return ``value`` as an int, or raise ValueError if it is not (close to) a whole number."""
    rounded = round(value)
    if rounded <= 0 or abs(value - rounded) > 1e-6:
        raise ValueError(f"{what} = {value:g} is not a positive whole number: {fix}")
    return rounded


@dataclass(frozen=True)
class FeatureConfig:
    """Sampling and feature settings shared by audio encoders and data loaders."""

    sr: int = 16000               # audio sample rate (Hz)
    fps: int = 25                 # video frame rate; sr / fps must be a whole number of samples
    window_seconds: float = 0.2   # audio context per video frame, centred on the frame
    n_mfcc: int = 13              # MFCC coefficients (SyncNet uses 13)
    n_mels: int = 80              # mel bands, for log-mel and as the filterbank under MFCC
    feature_rate: int = 100       # feature steps per second (SyncNet: 100 Hz, 4 per video frame)
    n_fft: int = 512              # FFT size (32 ms at 16 kHz)
    win_length: int = 400         # analysis window (25 ms at 16 kHz)
    fmin: float = 0.0             # lowest mel frequency (Hz)
    fmax: float | None = None     # highest mel frequency (Hz); None = sr / 2

    def __post_init__(self) -> None:
        # Compute every derived size once so that a bad combination (e.g. fps=30 at 16 kHz)
        # fails where the config is built, not deep inside a data loader.
        _ = self.hop, self.window, self.feature_hop, self.steps_per_frame, self.steps_per_window
        if self.win_length > self.n_fft:
            raise ValueError(f"win_length={self.win_length} > n_fft={self.n_fft}: raise n_fft")

    @property
    def hop(self) -> int:
        """Audio samples per video frame (640 at 16 kHz, 25 fps)."""
        return _as_int(
            self.sr / self.fps,
            f"hop = sr / fps = {self.sr} / {self.fps}",
            "choose sr and fps so that sr is a multiple of fps (e.g. 16000 Hz with 25 fps)",
        )

    @property
    def window(self) -> int:
        """Audio samples per window (3200 at 0.2 s, 16 kHz)."""
        return _as_int(
            self.window_seconds * self.sr,
            f"window = window_seconds * sr = {self.window_seconds} * {self.sr}",
            "choose window_seconds so that it spans a whole number of samples",
        )

    @property
    def feature_hop(self) -> int:
        """Audio samples per feature step (160 at 100 Hz, 16 kHz)."""
        return _as_int(
            self.sr / self.feature_rate,
            f"feature_hop = sr / feature_rate = {self.sr} / {self.feature_rate}",
            "choose feature_rate so that sr is a multiple of it (e.g. 100 Hz at 16 kHz)",
        )

    @property
    def steps_per_frame(self) -> int:
        """Feature steps per video frame (4 at 100 Hz, 25 fps)."""
        return _as_int(
            self.feature_rate / self.fps,
            f"steps_per_frame = feature_rate / fps = {self.feature_rate} / {self.fps}",
            "choose feature_rate as a multiple of fps (e.g. 100 Hz with 25 fps)",
        )

    @property
    def steps_per_window(self) -> int:
        """Feature steps per window (20 at 0.2 s, 100 Hz)."""
        return _as_int(
            self.window_seconds * self.feature_rate,
            f"steps_per_window = window_seconds * feature_rate = "
            f"{self.window_seconds} * {self.feature_rate}",
            "choose window_seconds as a multiple of 1 / feature_rate",
        )


def _check_audio(audio: np.ndarray) -> np.ndarray:
    """Return ``audio`` as a 1-D float32 array, or raise ValueError saying how to fix it."""
    audio = np.asarray(audio)
    if audio.ndim == 2:
        raise ValueError(
            f"expected mono audio of shape (n_samples,), got shape {audio.shape}: "
            "downmix and resample with talkinghead.io.load_audio"
        )
    if audio.ndim != 1:
        raise ValueError(f"expected mono audio of shape (n_samples,), got shape {audio.shape}")
    if not np.issubdtype(audio.dtype, np.floating):
        # Integer PCM would silently give features 30000x too loud.
        raise ValueError(
            f"expected float audio in [-1, 1], got dtype {audio.dtype}: "
            "load it with talkinghead.io.load_audio or scale it, e.g. x.astype(np.float32) / 32768"
        )
    return audio.astype(np.float32, copy=False)


def _resolve_n_frames(n_samples: int, *, cfg: FeatureConfig, n_frames: int | None) -> int:
    """Number of video frames: ``ceil(n_samples / hop)`` unless given explicitly."""
    if n_frames is None:
        return math.ceil(n_samples / cfg.hop)
    if n_frames < 0:
        raise ValueError(f"n_frames must be >= 0, got {n_frames}")
    return int(n_frames)


def _centred_windows(x: np.ndarray, *, stride: int, size: int, n_frames: int) -> np.ndarray:
    """Cut ``n_frames`` windows of ``size`` along the last axis, window ``i`` centred on ``i * stride``.

    Window ``i`` holds ``x[..., i*stride - size//2 : i*stride + size - size//2]``, zeros outside
    the valid range of ``x``.

    Args:
        x: array ``(..., L)``; the last axis is time (samples or feature steps).
        stride: time steps between consecutive window centres.
        size: time steps per window.
        n_frames: number of windows ``T``.

    Returns:
        float32 array ``(T, ..., size)``, a copy.
    """
    lead = x.shape[:-1]
    if n_frames == 0:
        return np.zeros((0, *lead, size), dtype=np.float32)
    needed = (n_frames - 1) * stride + size     # padded length the last window ends at
    half = size // 2
    pad_right = max(0, needed - half - x.shape[-1])
    padding = [(0, 0)] * len(lead) + [(half, pad_right)]
    padded = np.pad(x, padding)[..., :needed]                                  # (..., needed)
    # A strided view: no copy until the final gather, so this is as fast as a memcpy.
    windows = sliding_window_view(padded, size, axis=-1)[..., ::stride, :]     # (..., T, size)
    return np.ascontiguousarray(np.moveaxis(windows, -2, 0), dtype=np.float32)  # (T, ..., size)


def frame_windows(
    audio: np.ndarray,
    *,
    cfg: FeatureConfig = FeatureConfig(),
    n_frames: int | None = None,
) -> np.ndarray:
    """Raw waveform windows, one per video frame, centred on it.

    Window ``i`` holds samples ``[i*hop - window//2, i*hop + window - window//2)`` of ``audio``,
    zero-padded where that range leaves the clip.

    Args:
        audio: mono waveform ``(n_samples,)``, float in [-1, 1] at ``cfg.sr``.
        cfg: sampling settings (``hop``, ``window``).
        n_frames: number of video frames ``T``; default ``ceil(n_samples / hop)``.

    Returns:
        float32 array ``(T, window)`` -- ``(75, 3200)`` for 3 s at the defaults.
    """
    audio = _check_audio(audio)
    n_frames = _resolve_n_frames(len(audio), cfg=cfg, n_frames=n_frames)
    return _centred_windows(audio, stride=cfg.hop, size=cfg.window, n_frames=n_frames)


def _mel_power(audio: np.ndarray, *, cfg: FeatureConfig) -> np.ndarray:
    """Mel-filtered power spectrogram ``(n_mels, S)``, ``S = 1 + n_samples // feature_hop``.

    librosa ``melspectrogram`` with ``center=True`` and zero padding, so step ``j`` is centred at
    sample ``j * feature_hop``; power 2, Slaney-normalised filters. Clips shorter than ``n_fft``
    are zero-padded on the right first: librosa pads with zeros anyway, so the kept steps are
    unchanged and librosa does not warn that ``n_fft`` is too large.
    """
    n_steps = 1 + len(audio) // cfg.feature_hop
    mel = librosa.feature.melspectrogram(
        y=np.pad(audio, (0, max(0, cfg.n_fft - len(audio)))),
        sr=cfg.sr,
        n_fft=cfg.n_fft,
        hop_length=cfg.feature_hop,
        win_length=cfg.win_length,
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=cfg.n_mels,
        fmin=cfg.fmin,
        fmax=cfg.fmax,
    )                                                                   # (n_mels, >= S)
    return mel[:, :n_steps]                                             # (n_mels, S)


def mfcc(audio: np.ndarray, *, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """MFCC of a whole clip at ``cfg.feature_rate`` (librosa, ``center=True``).

    Step ``j`` is centred at sample ``j * feature_hop``. The MFCC are the orthonormal DCT-II of
    the mel power in dB (``10 log10(max(mel, 1e-10))``, ``cfg.n_mels`` bands). Unlike librosa's
    default, the dB values are not clipped at 80 dB below the clip's maximum: that clip would make
    every step depend on the loudest moment of the whole clip, whereas here each step depends only
    on the audio under its own analysis window (a clip cut in pieces gives the same features).

    Args:
        audio: mono waveform ``(n_samples,)``, float in [-1, 1] at ``cfg.sr``.
        cfg: feature settings.

    Returns:
        float32 array ``(n_mfcc, S)`` with ``S = 1 + n_samples // feature_hop``
        (``(n_mfcc, 0)`` for empty audio).
    """
    audio = _check_audio(audio)
    if len(audio) == 0:
        return np.zeros((cfg.n_mfcc, 0), dtype=np.float32)
    mel_db = librosa.power_to_db(_mel_power(audio, cfg=cfg), ref=1.0, amin=1e-10, top_db=None)
    coeffs = librosa.feature.mfcc(S=mel_db, n_mfcc=cfg.n_mfcc)          # (n_mfcc, S)
    return coeffs.astype(np.float32, copy=False)


def log_mel(audio: np.ndarray, *, cfg: FeatureConfig = FeatureConfig()) -> np.ndarray:
    """Log-mel spectrogram of a whole clip at ``cfg.feature_rate`` (librosa, ``center=True``).

    Values are ``ln(mel_power + 1e-6)``: natural log of the mel-filtered power spectrum
    (librosa ``melspectrogram``, power 2, Slaney-normalised filters), so digital silence is
    ``ln(1e-6) ~ -13.8``. Step ``j`` is centred at sample ``j * feature_hop``.

    Args:
        audio: mono waveform ``(n_samples,)``, float in [-1, 1] at ``cfg.sr``.
        cfg: feature settings.

    Returns:
        float32 array ``(n_mels, S)`` with ``S = 1 + n_samples // feature_hop``
        (``(n_mels, 0)`` for empty audio).
    """
    audio = _check_audio(audio)
    if len(audio) == 0:
        return np.zeros((cfg.n_mels, 0), dtype=np.float32)
    return np.log(_mel_power(audio, cfg=cfg) + _LOG_EPS).astype(np.float32, copy=False)


def _feature_windows(feats: np.ndarray, *, cfg: FeatureConfig, n_frames: int) -> np.ndarray:
    """Windows of feature steps ``(C, S)`` centred on each video frame -> ``(T, C, steps_per_window)``.

    Frame ``i`` gets steps ``[i*steps_per_frame - steps_per_window//2, ...)``; steps outside
    ``[0, S)`` are zeros.
    """
    return _centred_windows(
        feats, stride=cfg.steps_per_frame, size=cfg.steps_per_window, n_frames=n_frames
    )


def mfcc_windows(
    audio: np.ndarray,
    *,
    cfg: FeatureConfig = FeatureConfig(),
    n_frames: int | None = None,
) -> np.ndarray:
    """MFCC windows, one per video frame, centred on it (SyncNet-style input).

    Frame ``i`` gets MFCC steps ``[4i - 10, 4i + 10)`` at the defaults; steps outside the clip's
    features are zeros (not the MFCC of silence).

    Args:
        audio: mono waveform ``(n_samples,)``, float in [-1, 1] at ``cfg.sr``.
        cfg: feature settings.
        n_frames: number of video frames ``T``; default ``ceil(n_samples / hop)``.

    Returns:
        float32 array ``(T, n_mfcc, steps_per_window)`` -- ``(75, 13, 20)`` for 3 s.
    """
    audio = _check_audio(audio)
    n_frames = _resolve_n_frames(len(audio), cfg=cfg, n_frames=n_frames)
    return _feature_windows(mfcc(audio, cfg=cfg), cfg=cfg, n_frames=n_frames)


def mel_windows(
    audio: np.ndarray,
    *,
    cfg: FeatureConfig = FeatureConfig(),
    n_frames: int | None = None,
) -> np.ndarray:
    """Log-mel windows (see ``log_mel``), one per video frame, centred on it.

    Frame ``i`` gets steps ``[4i - 10, 4i + 10)`` at the defaults; steps outside the clip's
    features are zeros (not the log-mel of silence, which is about -13.8).

    Args:
        audio: mono waveform ``(n_samples,)``, float in [-1, 1] at ``cfg.sr``.
        cfg: feature settings.
        n_frames: number of video frames ``T``; default ``ceil(n_samples / hop)``.

    Returns:
        float32 array ``(T, n_mels, steps_per_window)`` -- ``(75, 80, 20)`` for 3 s.
    """
    audio = _check_audio(audio)
    n_frames = _resolve_n_frames(len(audio), cfg=cfg, n_frames=n_frames)
    return _feature_windows(log_mel(audio, cfg=cfg), cfg=cfg, n_frames=n_frames)


def frame_features(
    audio: np.ndarray,
    kind: str,
    *,
    cfg: FeatureConfig = FeatureConfig(),
    n_frames: int | None = None,
) -> np.ndarray:
    """Per-video-frame audio features of the given kind.

    Args:
        audio: mono waveform ``(n_samples,)``, float in [-1, 1] at ``cfg.sr``.
        kind: ``"raw"`` -> ``(T, window)``; ``"mfcc"`` -> ``(T, n_mfcc, steps_per_window)``;
            ``"mel"`` -> ``(T, n_mels, steps_per_window)``.
        cfg: feature settings.
        n_frames: number of video frames ``T``; default ``ceil(n_samples / hop)``.

    Returns:
        float32 array whose first axis is the video frame.
    """
    if kind == "raw":
        return frame_windows(audio, cfg=cfg, n_frames=n_frames)
    if kind == "mfcc":
        return mfcc_windows(audio, cfg=cfg, n_frames=n_frames)
    if kind == "mel":
        return mel_windows(audio, cfg=cfg, n_frames=n_frames)
    raise ValueError(f"unknown feature kind {kind!r}: use one of {', '.join(FEATURE_KINDS)}")
