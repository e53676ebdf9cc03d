"""Reading user media and writing browser-playable video.

Everything a user hands the library (a photo, a speech clip) enters through
``load_image`` / ``load_audio``, which turn any supported input into one array
convention and raise ``InputError`` with a fix for anything they cannot use.
Video goes out through ``VideoWriter``: H.264 + AAC in an mp4 that browsers
play, written atomically.

Audio and video are decoded/encoded by the ffmpeg binary bundled with
``imageio-ffmpeg``, so no system ffmpeg is needed.
"""
from __future__ import annotations

import math
import os
import secrets
import subprocess
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import imageio_ffmpeg
import numpy as np
import soundfile
from PIL import Image, ImageOps
from scipy.signal import resample_poly

__all__ = [
    "InputError",
    "load_audio",
    "load_image",
    "VideoWriter",
    "write_video",
    "read_video",
    "write_text_atomic",
    "write_bytes_atomic",
]

_AUDIO_FORMATS = "wav, mp3, flac, ogg, m4a, or a video with audio"
_IMAGE_FORMATS = "jpg, png, webp or bmp"
_MAX_CHANNELS = 8
# ffmpeg's wording when -map 0:a:0 finds no audio; the first is what the bundled
# ffmpeg 9 prints ("Stream map '' matches no streams."), the second older builds.
_NO_STREAM_MARKERS = ("matches no streams", "does not contain any stream")


class InputError(ValueError):
    """Bad user input (file or array). The message names the problem and the fix."""


# --------------------------------------------------------------------------- helpers


def _ffmpeg() -> str:
    return imageio_ffmpeg.get_ffmpeg_exe()


def _ffmpeg_url(path: Path) -> str:
    # The file: protocol stops ffmpeg from reading a name like "http:x" or
    # "concat:a|b" as a protocol.
    return "file:" + os.fspath(path)


def _existing_file(path: str | os.PathLike, kind: str) -> Path:
    """Return ``path`` as a Path, or raise InputError if it is missing or empty."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{kind} file not found: {path}: check the path and spelling")
    if not path.is_file():
        raise InputError(f"{path} is not a file: give the path of a {kind} file")
    if path.stat().st_size == 0:
        raise InputError(f"{kind} file {path} is empty (0 bytes): the upload or copy "
                         f"probably failed; give the file again")
    return path


def _is_tensor(x: Any) -> bool:
    # Duck typing keeps torch out of this module's imports.
    return hasattr(x, "detach") and hasattr(x, "cpu") and hasattr(x, "numpy")


def _tensor_to_numpy(x: Any) -> np.ndarray:
    x = x.detach().cpu()
    if x.is_floating_point():
        x = x.float()  # numpy has no bfloat16
    return x.numpy()


def _check_rate(rate: Any, name: str) -> int:
    if isinstance(rate, (bool, np.bool_)) or not isinstance(rate, (int, np.integer)) \
            or rate <= 0:
        raise InputError(f"{name} must be a positive integer sample rate in Hz, "
                         f"got {rate!r}: pass e.g. {name}=16000")
    return int(rate)


def _too_long(name: str, max_seconds: float) -> InputError:
    return InputError(f"audio {name} is longer than the {max_seconds:g} s limit: "
                      f"trim the clip or pass a larger max_seconds")


# ----------------------------------------------------------------------------- audio


def _decode_audio(path: Path, sr: int, max_seconds: float) -> np.ndarray | None:
    """Decode the first audio stream of ``path`` with ffmpeg; None if it has none."""
    cmd = [_ffmpeg(), "-nostdin", "-v", "error"]
    if math.isfinite(max_seconds):
        # Read a little more than allowed: enough to tell "too long", but a
        # 10-hour file is never decoded in full.
        cmd += ["-t", f"{max_seconds + 1.0:.3f}"]
    cmd += ["-i", _ffmpeg_url(path), "-map", "0:a:0", "-ac", "1", "-ar", str(sr),
            "-f", "f32le", "-"]
    proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
    if proc.returncode != 0:
        stderr = proc.stderr.decode(errors="replace")
        if any(marker in stderr for marker in _NO_STREAM_MARKERS):
            return None
        raise InputError(f"could not decode audio from {path} (unreadable or corrupt "
                         f"file): give a valid {_AUDIO_FORMATS}. "
                         f"ffmpeg said: {stderr.strip()[-500:]}")
    # ffmpeg already downmixed (-ac 1); clip guards against decoder overshoot.
    return np.clip(np.frombuffer(proc.stdout, dtype="<f4"), -1.0, 1.0).astype(np.float32)


def _audio_array_to_float(data: Any) -> np.ndarray:
    """Convert an audio array of any supported layout/dtype to float32 (N,) in [-1, 1]."""
    if _is_tensor(data):
        data = _tensor_to_numpy(data)
    data = np.asarray(data)
    if data.dtype.kind not in "iuf":
        raise InputError(f"audio array has dtype {data.dtype}, which is not numeric "
                         f"audio: give int16, int32, uint8 or float samples")
    if data.size == 0:
        raise InputError(f"audio array is empty (shape {data.shape}): give at least "
                         f"one sample")
    if data.ndim == 2:
        # The smaller axis holds the channels: (N, C) as from soundfile/Gradio,
        # (C, N) as from torch audio code.
        channel_axis = 0 if data.shape[0] < data.shape[1] else 1
        if data.shape[channel_axis] > _MAX_CHANNELS:
            raise InputError(f"audio array of shape {data.shape} does not look like "
                             f"(samples, channels) or (channels, samples) with at most "
                             f"{_MAX_CHANNELS} channels: pass a mono (N,) array")
    elif data.ndim != 1:
        raise InputError(f"audio array has {data.ndim} dimensions (shape {data.shape}): "
                         f"give (N,), (N, C) or (C, N) samples")

    scale = {np.dtype(np.int16): 32768.0, np.dtype(np.int32): 2.0**31}
    if data.dtype == np.uint8:
        samples = (data.astype(np.float32) - 128.0) / 128.0
    elif data.dtype in scale:
        samples = data.astype(np.float32) / np.float32(scale[data.dtype])
    elif data.dtype.kind == "f":
        samples = data.astype(np.float32)
        if not np.isfinite(samples).all():
            raise InputError("audio array contains NaN or infinite values: fix the "
                             "signal (e.g. np.nan_to_num) before passing it")
    else:
        raise InputError(f"audio array has dtype {data.dtype}: give int16, int32, "
                         f"uint8 or float samples")
    if samples.ndim == 2:
        samples = samples.mean(axis=channel_axis, dtype=np.float32)
    return np.clip(samples, -1.0, 1.0)


def load_audio(
    path_or_array: Any,
    sr: int = 16000,
    *,
    max_seconds: float = 600.0,
    orig_sr: int | None = None,
) -> np.ndarray:
    """Load speech as a mono float waveform.

    Args:
        path_or_array: one of
            - a path (str or os.PathLike) to anything ffmpeg reads: wav, flac,
              mp3, ogg, m4a, or a video (its first audio stream is used);
            - an array or torch tensor of samples at ``orig_sr``: shape (N,),
              (N, C) or (C, N) with C <= 8 channels (averaged to mono); dtype
              int16, int32, uint8 or float (in [-1, 1], clipped);
            - a Gradio audio value ``(rate, data)``; ``rate`` takes the place of
              ``orig_sr``.
        sr: sample rate of the result, Hz.
        max_seconds: longest accepted clip, seconds; longer input raises
            InputError (files are never decoded much past this).
        orig_sr: sample rate of an array input, Hz; None means it is already at
            ``sr``. Ignored for paths, whose rate is read from the file.

    Returns:
        float32 array of shape (N,), values in [-1, 1], at ``sr`` Hz. Silence
        (all zeros) is valid and returned as is.

    Raises:
        InputError: missing, empty, corrupt or too long input, a file without an
            audio stream, or an array of unsupported shape/dtype.
    """
    sr = _check_rate(sr, "sr")
    if path_or_array is None:
        raise InputError("no audio given: upload or record a speech clip")

    if isinstance(path_or_array, (str, os.PathLike)):
        path = _existing_file(path_or_array, "audio")
        samples = _decode_audio(path, sr, max_seconds)
        if samples is None:
            raise InputError(f"no audio stream in {path}: give a file with a sound "
                             f"track ({_AUDIO_FORMATS})")
        if samples.size == 0:
            raise InputError(f"{path} contains no audio samples: give a clip with "
                             f"speech in it")
        if samples.size > max_seconds * sr:
            raise _too_long(str(path), max_seconds)
        return samples

    data = path_or_array
    if isinstance(data, tuple):
        if len(data) != 2:
            raise InputError(f"audio tuple has {len(data)} items: a Gradio audio value "
                             f"is (rate, data)")
        rate, data = data
        rate = _check_rate(rate, "the Gradio audio rate")
        if orig_sr is not None and orig_sr != rate:
            raise InputError(f"orig_sr={orig_sr} contradicts the rate {rate} in the "
                             f"(rate, data) tuple: pass only one of them")
        orig_sr = rate
    orig_sr = sr if orig_sr is None else _check_rate(orig_sr, "orig_sr")
    samples = _audio_array_to_float(data)
    if samples.size > max_seconds * orig_sr:
        raise _too_long(f"array of {samples.size / orig_sr:.1f} s", max_seconds)
    if orig_sr != sr:
        g = math.gcd(sr, orig_sr)
        samples = resample_poly(samples, sr // g, orig_sr // g)
        # The anti-aliasing filter can overshoot slightly at full scale.
        samples = np.clip(samples, -1.0, 1.0).astype(np.float32)
    return samples


# ----------------------------------------------------------------------------- image


def _pil_to_rgb(img: Image.Image, name: str, max_pixels: int) -> np.ndarray:
    """Validate the size, orient and convert a (lazily opened) image to uint8 RGB."""
    width, height = img.size
    if width == 0 or height == 0:
        raise InputError(f"image {name} has zero size ({width}x{height}): give a "
                         f"non-empty {_IMAGE_FORMATS} photo")
    # Image.open only reads the header, so this stops a decompression bomb
    # before its pixels are decoded.
    if width * height > max_pixels:
        raise InputError(f"image {name} is {width}x{height} = {width * height:,} "
                         f"pixels, more than max_pixels={max_pixels:,}: downscale it or "
                         f"pass a larger max_pixels")
    # Phone photos store rotation as an EXIF tag instead of rotating pixels.
    img = ImageOps.exif_transpose(img)
    if img.mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        # 16-bit grayscale: Pillow's convert("L") clips instead of scaling.
        gray = np.asarray(img).astype(np.float32) / 257.0
        gray = np.clip(np.rint(gray), 0, 255).astype(np.uint8)
        return np.repeat(gray[:, :, None], 3, axis=2)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite over white: transparent backgrounds (cut-out portraits) would
        # otherwise turn black, which face detectors handle worse.
        rgba = img.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(white, rgba)
    return np.array(img.convert("RGB"), dtype=np.uint8)


def _image_array_to_pil(data: Any) -> Image.Image:
    """Turn an (H, W[, 1|3|4]) uint8/float/bool array into a PIL image."""
    if _is_tensor(data):
        data = _tensor_to_numpy(data)
    data = np.asarray(data)
    expected = ("expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) array of "
                "uint8, bool, or float in [0, 1]")
    if data.ndim == 3 and data.shape[2] == 1:
        data = data[:, :, 0]
    if not (data.ndim == 2 or (data.ndim == 3 and data.shape[2] in (3, 4))):
        raise InputError(f"image array has shape {data.shape}: {expected}")
    if data.dtype == np.bool_:
        data = data.astype(np.uint8) * 255
    elif data.dtype.kind == "f":
        if not np.isfinite(data).all() or data.size and (data.min() < 0 or data.max() > 1):
            raise InputError(f"float image array has values outside [0, 1] (or NaN): "
                             f"{expected}; rescale it, e.g. (x + 1) / 2 for [-1, 1]")
        data = np.rint(data * 255.0).astype(np.uint8)
    elif data.dtype != np.uint8:
        raise InputError(f"image array has dtype {data.dtype}: {expected}")
    if data.shape[0] == 0 or data.shape[1] == 0:
        raise InputError(f"image array has zero size (shape {data.shape}): give a "
                         f"non-empty image")
    return Image.fromarray(np.ascontiguousarray(data))


def load_image(path_or_array: Any, *, max_pixels: int = 50_000_000) -> np.ndarray:
    """Load a photo as RGB pixels.

    Args:
        path_or_array: a path (str or os.PathLike) to a jpg/png/webp/bmp file; a
            PIL image; or an array/tensor of shape (H, W), (H, W, 1), (H, W, 3)
            or (H, W, 4) with dtype uint8, bool, or float in [0, 1].
            EXIF orientation is applied. Grayscale, palette, CMYK and 16-bit
            images are converted to 8-bit RGB; transparency is composited over
            white.
        max_pixels: largest accepted W * H. Checked on the file header, before
            any pixel is decoded, to refuse decompression bombs.

    Returns:
        uint8 array of shape (H, W, 3).

    Raises:
        InputError: missing, empty, corrupt or oversized file; an array of
            unsupported shape or dtype.
    """
    if path_or_array is None:
        raise InputError(f"no image given: upload a {_IMAGE_FORMATS} photo of a face")
    if isinstance(path_or_array, Image.Image):
        return _pil_to_rgb(path_or_array, "(PIL image)", max_pixels)
    if not isinstance(path_or_array, (str, os.PathLike)):
        return _pil_to_rgb(_image_array_to_pil(path_or_array), "(array)", max_pixels)

    path = _existing_file(path_or_array, "image")
    unreadable = (f"could not read image {path} (not an image, or corrupt): give a "
                  f"valid {_IMAGE_FORMATS} file")
    # Turn Pillow's own bomb warning into an error for this call only;
    # catch_warnings restores the global filters afterwards.
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(path) as img:
                return _pil_to_rgb(img, str(path), max_pixels)
        except InputError:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as err:
            raise InputError(f"image {path} is too large to decode safely ({err}): "
                             f"downscale it") from err
        # Pillow raises these (UnidentifiedImageError is an OSError) for files
        # that are not images or are truncated/corrupt.
        except (OSError, SyntaxError, ValueError) as err:
            raise InputError(f"{unreadable} ({err})") from err


# ----------------------------------------------------------------------------- video


def _frames_to_uint8(frames: Any) -> np.ndarray:
    """Return frames as a contiguous uint8 batch (N, H, W, 3).

    Accepts uint8 (H, W, 3) / (N, H, W, 3), or float (3, H, W) / (N, 3, H, W)
    in [-1, 1] (the library's tensor convention), numpy or torch.
    """
    if _is_tensor(frames):
        frames = _tensor_to_numpy(frames)
    frames = np.asarray(frames)
    if frames.dtype == np.uint8 and frames.ndim in (3, 4) and frames.shape[-1] == 3:
        return np.ascontiguousarray(frames.reshape(-1, *frames.shape[-3:]))
    if frames.dtype.kind == "f" and frames.ndim in (3, 4) and frames.shape[-3] == 3:
        frames = frames.reshape(-1, *frames.shape[-3:])            # (N, 3, H, W)
        frames = np.clip(np.rint((frames + 1.0) * 127.5), 0, 255).astype(np.uint8)
        return np.ascontiguousarray(frames.transpose(0, 2, 3, 1))   # (N, H, W, 3)
    raise ValueError(f"frames of shape {frames.shape} and dtype {frames.dtype}: expected "
                     f"uint8 (H, W, 3) / (N, H, W, 3), or float in [-1, 1] of shape "
                     f"(3, H, W) / (N, 3, H, W)")


class VideoWriter:
    """Stream RGB frames into a browser-playable mp4 (H.264 yuv420p + AAC).

    Frames are piped to ffmpeg as they come, so a long video never sits in
    memory. The file appears at ``path`` only when ``close()`` succeeds: until
    then ffmpeg writes to a hidden temporary file in the same directory, which
    ``abort()`` (or an exception inside a ``with`` block) deletes, leaving any
    earlier file at ``path`` untouched.

    Audio is padded with silence or trimmed to the video's length at close, so
    the two streams always end together.

    Example:
        with VideoWriter("out.mp4", fps=25, audio=wav, sr=16000) as writer:
            for frame in frames:
                writer.write(frame)
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: float = 25.0,
        *,
        audio: Any = None,    # anything load_audio accepts, e.g. float (N,) at sr
        sr: int = 16000,      # sample rate of an audio array, Hz
        crf: int = 18,        # x264 quality: 0 lossless ... 51 worst; 18 looks lossless
        preset: str = "veryfast",  # x264 speed/size trade-off
    ):
        self.path = Path(path)
        if not (math.isfinite(float(fps)) and fps > 0):
            raise ValueError(f"fps must be a positive number, got {fps!r}")
        if not self.path.parent.is_dir():
            raise InputError(f"output folder {self.path.parent} does not exist: create "
                             f"it first or choose another path")
        self.fps = float(fps)
        self.crf = int(crf)
        self.preset = preset
        self.sr = _check_rate(sr, "sr")
        self._audio = None if audio is None else load_audio(
            audio, sr=self.sr, max_seconds=math.inf)
        stem = f".{self.path.name}.{secrets.token_hex(4)}"
        self._tmp_out = self.path.with_name(stem + ".tmp.mp4")
        # With audio, video is encoded first and muxed with the fitted audio at
        # close, when the video's length is known.
        self._tmp_video = self.path.with_name(stem + ".video.tmp.mp4")
        self._tmp_wav = self.path.with_name(stem + ".tmp.wav")
        self._proc: subprocess.Popen | None = None
        self._stderr = None
        self._size: tuple[int, int] | None = None   # (H, W)
        self._frames_written = 0
        self._state = "open"  # -> "closed" or "aborted"

    @property
    def frames_written(self) -> int:
        """Number of frames sent to the encoder so far."""
        return self._frames_written

    def _start(self, height: int, width: int) -> None:
        # A file, not a pipe, for stderr: an unread pipe could fill and stall ffmpeg.
        self._stderr = tempfile.TemporaryFile()
        out = self._tmp_video if self._audio is not None else self._tmp_out
        cmd = [
            _ffmpeg(), "-nostdin", "-v", "error", "-y",
            "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{width}x{height}",
            "-r", repr(self.fps), "-i", "pipe:0",
            # yuv420p needs even sizes: pad odd ones by one row/column, filled
            # with a copy of the edge so the chroma sample it shares does not
            # bleed. format=gbrp keeps this in RGB; otherwise ffmpeg converts to
            # yuv420p before padding and the edge colours come out wrong.
            "-vf", f"format=gbrp,pad=ceil(iw/2)*2:ceil(ih/2)*2,"
                   f"fillborders=right={width % 2}:bottom={height % 2}:mode=smear",
            "-c:v", "libx264", "-preset", self.preset, "-crf", str(self.crf),
            "-pix_fmt", "yuv420p", "-an",
            # Moves the index to the front so browsers can start playing at once.
            "-movflags", "+faststart",
            _ffmpeg_url(out),
        ]
        self._proc = subprocess.Popen(cmd, stdin=subprocess.PIPE,
                                      stdout=subprocess.DEVNULL, stderr=self._stderr)
        self._size = (height, width)

    def _stderr_tail(self) -> str:
        if self._stderr is None:
            return ""
        self._stderr.seek(0)
        return self._stderr.read().decode(errors="replace").strip()[-2000:]

    def write(self, frame: Any) -> None:
        """Append one frame or a batch of frames.

        Args:
            frame: uint8 (H, W, 3) or (N, H, W, 3) RGB; or float in [-1, 1] of
                shape (3, H, W) or (N, 3, H, W). numpy or torch. The first frame
                fixes H and W.

        Raises:
            ValueError: wrong shape/dtype, a size different from the first
                frame's, or a writer that is already closed.
            RuntimeError: ffmpeg stopped; the message holds its error output.
        """
        if self._state != "open":
            raise ValueError(f"VideoWriter for {self.path} is {self._state}: "
                             f"make a new writer")
        frames = _frames_to_uint8(frame)    # (N, H, W, 3)
        height, width = frames.shape[1:3]
        if self._proc is None:
            self._start(height, width)
        elif (height, width) != self._size:
            raise ValueError(f"frame size {height}x{width} (HxW) differs from the first "
                             f"frame's {self._size[0]}x{self._size[1]}: all frames of a "
                             f"video must have the same size")
        try:
            self._proc.stdin.write(frames.data)
        except OSError as err:  # BrokenPipeError: ffmpeg has exited
            self._proc.wait()
            tail = self._stderr_tail()
            self.abort()
            raise RuntimeError(f"ffmpeg stopped while encoding {self.path}: {tail}") from err
        self._frames_written += len(frames)

    def _mux_audio(self) -> None:
        # Fit the audio to the video exactly, so neither stream outlasts the other.
        n_samples = round(self._frames_written / self.fps * self.sr)
        audio = self._audio[:n_samples]
        audio = np.pad(audio, (0, n_samples - len(audio)))
        soundfile.write(self._tmp_wav, audio, self.sr, subtype="FLOAT", format="WAV")
        cmd = [
            _ffmpeg(), "-nostdin", "-v", "error", "-y",
            "-i", _ffmpeg_url(self._tmp_video), "-i", _ffmpeg_url(self._tmp_wav),
            "-map", "0:v:0", "-map", "1:a:0", "-c:v", "copy",
            "-c:a", "aac", "-b:a", "128k", "-movflags", "+faststart",
            _ffmpeg_url(self._tmp_out),
        ]
        proc = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True)
        if proc.returncode != 0:
            raise RuntimeError(f"ffmpeg could not add audio to {self.path}: "
                               f"{proc.stderr.decode(errors='replace').strip()[-2000:]}")

    def close(self) -> Path:
        """Finish encoding and move the video to its final path.

        Returns:
            The final path.

        Raises:
            ValueError: no frame was written (an mp4 needs at least one).
            RuntimeError: ffmpeg failed; nothing is left at the final path.
        """
        if self._state == "closed":
            return self.path
        if self._state == "aborted":
            raise ValueError(f"VideoWriter for {self.path} was aborted: make a new writer")
        if self._proc is None:
            self.abort()
            raise ValueError(f"no frames were written to {self.path}: call write() at "
                             f"least once before close()")
        try:
            try:
                self._proc.stdin.close()
            except BrokenPipeError:
                pass  # ffmpeg already exited; its return code says why
            if self._proc.wait() != 0:
                raise RuntimeError(f"ffmpeg failed to encode {self.path}: "
                                   f"{self._stderr_tail()}")
            if self._audio is not None:
                self._mux_audio()
            os.replace(self._tmp_out, self.path)
        except BaseException:
            self.abort()
            raise
        self._state = "closed"
        self._cleanup()
        return self.path

    def abort(self) -> None:
        """Stop ffmpeg and delete temporary files; the final path is not touched."""
        if self._state == "closed":
            return
        self._state = "aborted"
        if self._proc is not None and self._proc.poll() is None:
            self._proc.kill()
        if self._proc is not None:
            try:
                self._proc.stdin.close()
            except OSError:
                pass  # the pipe is broken because ffmpeg is gone, as intended
            self._proc.wait()
        self._cleanup()

    def _cleanup(self) -> None:
        for tmp in (self._tmp_out, self._tmp_video, self._tmp_wav):
            tmp.unlink(missing_ok=True)
        if self._stderr is not None:
            self._stderr.close()
            self._stderr = None

    def __enter__(self) -> VideoWriter:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


def write_video(
    path: str | os.PathLike,
    frames: Iterable[Any],
    fps: float = 25.0,
    *,
    audio: Any = None,
    sr: int = 16000,
    **kw: Any,
) -> Path:
    """Write frames (and optional audio) to a browser-playable mp4.

    Args:
        path: output file; written atomically.
        frames: iterable of frames or frame batches in any form
            ``VideoWriter.write`` accepts (e.g. uint8 (H, W, 3), or one
            (T, H, W, 3) array).
        fps: frames per second.
        audio: optional waveform (float (N,) at ``sr``) or anything
            ``load_audio`` accepts; padded/trimmed to the video length.
        sr: sample rate of ``audio``, Hz.
        **kw: passed to VideoWriter (``crf``, ``preset``).

    Returns:
        The final path.
    """
    with VideoWriter(path, fps, audio=audio, sr=sr, **kw) as writer:
        for frame in frames:
            writer.write(frame)
    return writer.path


def read_video(path: str | os.PathLike) -> tuple[np.ndarray, float, np.ndarray | None]:
    """Read all frames and the audio of a video file.

    Args:
        path: any video ffmpeg reads (mp4, webm, mov, ...).

    Returns:
        frames: uint8 (T, H, W, 3) RGB.
        fps: frames per second (float; 0.0 if the file does not say).
        audio: float32 (N,) mono at 16 kHz, or None if the file has no audio stream.

    Raises:
        InputError: missing, empty or unreadable file, or one without a video stream.
    """
    path = _existing_file(path, "video")
    reader = imageio_ffmpeg.read_frames(_ffmpeg_url(path))
    try:
        meta = next(reader)
        width, height = meta["size"]
        frames = [np.frombuffer(buf, np.uint8).reshape(height, width, 3) for buf in reader]
    # imageio-ffmpeg raises OSError for unreadable files, IndexError when its
    # header parser finds no video stream, RuntimeError for truncated frames.
    except (OSError, IndexError, RuntimeError, StopIteration) as err:
        raise InputError(f"could not read video {path} (corrupt, or no video stream): "
                         f"give a valid mp4/webm/mov file") from err
    finally:
        reader.close()
    if not frames:
        raise InputError(f"video {path} has no frames: give a video with at least one frame")
    audio = _decode_audio(path, 16000, math.inf)
    return np.stack(frames), float(meta["fps"]), audio


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary file in the same folder and ``os.replace``: a reader (or a
    crash) never sees a half-written file. Returns the path."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_bytes(data)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def write_text_atomic(path: str | os.PathLike, text: str) -> Path:
    """``write_bytes_atomic`` for UTF-8 text."""
    return write_bytes_atomic(path, text.encode())
