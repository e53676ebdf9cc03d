"""Speech synthesis with espeak-ng, with the timing of every phoneme and word.

espeak-ng comes from the PyPI package ``espeakng-loader`` (the shared library and its data), so no system
package is needed. We talk to its C API through ctypes: ``espeak_Synth`` in synchronous mode calls us back
with audio chunks and events, and with ``espeakINITIALIZE_PHONEME_EVENTS | PHONEME_IPA`` every phoneme is
reported in IPA together with the exact sample at which it starts. That is what makes SynthGRID's ground truth
exact: the mouth is driven by the same phoneme timeline the audio was made from.

espeak-ng keeps global state that carries over from one utterance to the next (the voice source's phase), so
the same text spoken twice in one process can differ by a few samples. For exact reproducibility every
utterance is spoken in a short-lived child process forked from a parent that never speaks (about 10 ms more
per call); where ``os.fork`` does not exist, calls run in-process under a lock and are reproducible only up to
that drift.
"""
from __future__ import annotations

import ctypes
import os
import pickle
import threading
import zlib
from dataclasses import dataclass

import numpy as np

__all__ = ["Phoneme", "Word", "Speech", "Voice", "synthesize", "list_languages"]

# espeak_EVENT_TYPE values (speak_lib.h).
_EVENT_END_OF_LIST = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
# espeak_Initialize options and synth flags.
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INIT_PHONEME_EVENTS = 0x0001
_INIT_PHONEME_IPA = 0x0002
_INIT_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
# espeak_PARAMETER values.
_PARAM_RATE = 1
_PARAM_PITCH = 3
_PARAM_RANGE = 4
_PARAM_WORDGAP = 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position in the text
        ("length", ctypes.c_int),  # characters in the word
        ("audio_position", ctypes.c_int),  # milliseconds
        ("sample", ctypes.c_int),  # sample index at the engine's rate: the exact position we use
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event))


@dataclass(frozen=True)
class Phoneme:
    """One phoneme: IPA symbol (stress marks removed; ``""`` for a pause), start and end in seconds."""

    symbol: str
    start: float
    end: float
    stress: bool = False


@dataclass(frozen=True)
class Word:
    """One word of the input text with its start and end in seconds."""

    text: str
    start: float
    end: float


@dataclass(frozen=True)
class Voice:
    """An espeak-ng voice: ``language`` (an espeak-ng voice file: ``"en-US"``, ``"en"`` (British), ``"en-GB-scotland"``, ``"fr"``…), ``variant`` (e.g. ``"m3"``, ``"f2"``; ``""`` for the
    default), ``pitch`` (0–100, 50 is normal), ``pitch_range`` (0–100), ``rate`` (words per minute, 80–450)."""

    language: str = "en-US"
    variant: str = ""
    pitch: int = 50
    pitch_range: int = 50
    rate: int = 165

    @property
    def name(self) -> str:
        return f"{self.language}+{self.variant}" if self.variant else self.language


@dataclass(frozen=True)
class Speech:
    """Synthesised speech: ``audio`` float32 mono in [-1, 1] at ``sr``; phonemes and words with times in seconds."""

    audio: np.ndarray
    sr: int
    phonemes: tuple[Phoneme, ...]
    words: tuple[Word, ...]

    @property
    def duration(self) -> float:
        return len(self.audio) / self.sr


class _Engine:
    """The process-wide espeak-ng library, initialised on first use."""

    def __init__(self) -> None:
        import espeakng_loader

        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.lib.espeak_Initialize.restype = ctypes.c_int
        self.lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        self.lib.espeak_Synth.argtypes = [
            ctypes.c_void_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int, ctypes.c_uint,
            ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p,
        ]
        self.lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        self.lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        self.lib.espeak_ng_SetRandSeed.argtypes = [ctypes.c_long]
        options = _INIT_PHONEME_EVENTS | _INIT_PHONEME_IPA | _INIT_DONT_EXIT
        self.sr = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, espeakng_loader.get_data_path().encode(), options
        )
        if self.sr <= 0:
            raise RuntimeError("espeak-ng failed to initialise: reinstall it with `pip install --force-reinstall espeakng-loader`")
        self.data_path = espeakng_loader.get_data_path()
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, int, int, str]] = []
        self._callback = _Callback(self._on_synth)  # keep a reference: ctypes does not
        self.lib.espeak_SetSynthCallback(self._callback)
        self.lock = threading.Lock()

    def _on_synth(self, wav, n_samples, events) -> int:
        if n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_END_OF_LIST:
            ev = events[i]
            if ev.type in (_EVENT_WORD, _EVENT_PHONEME):
                symbol = ev.id.string.decode("utf-8", errors="replace") if ev.type == _EVENT_PHONEME else ""
                self._events.append((ev.type, ev.sample, ev.text_position, ev.length, symbol))
            i += 1
        return 0  # 0 = continue synthesis

    def speak(self, text: str, voice: Voice) -> tuple[np.ndarray, list]:
        with self.lock:
            if self.lib.espeak_SetVoiceByName(voice.name.encode()) != 0:
                raise ValueError(
                    f"espeak-ng has no voice {voice.name!r}: pick a language from talkinghead.audio.tts.list_languages() "
                    "and a variant such as m1–m7 or f1–f5"
                )
            self.lib.espeak_SetParameter(_PARAM_RATE, int(voice.rate), 0)
            self.lib.espeak_SetParameter(_PARAM_PITCH, int(voice.pitch), 0)
            self.lib.espeak_SetParameter(_PARAM_RANGE, int(voice.pitch_range), 0)
            self.lib.espeak_SetParameter(_PARAM_WORDGAP, 0, 0)
            self._chunks, self._events = [], []
            # Breathy variants (f3, …) mix in noise from espeak-ng's own generator: seed it from the request.
            self.lib.espeak_ng_SetRandSeed(zlib.crc32(f"{voice}|{text}".encode()))
            data = text.encode("utf-8") + b"\0"
            self.lib.espeak_Synth(data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            self.lib.espeak_Synchronize()
            audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
            return audio, list(self._events)


_engine: _Engine | None = None
_engine_lock = threading.Lock()


def _get_engine() -> _Engine:
    global _engine
    with _engine_lock:
        if _engine is None:
            _engine = _Engine()
    return _engine


def _speak(text: str, voice: Voice) -> tuple[np.ndarray, list, int]:
    """Speak in a forked child, so every utterance starts from espeak-ng's freshly initialised state."""
    if not hasattr(os, "fork") or _engine is not None:
        engine = _get_engine()
        return (*engine.speak(text, voice), engine.sr)
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: speak, send the result, exit without running the parent's cleanup handlers
        status = 0
        try:
            os.close(read_fd)
            engine = _Engine()
            try:
                result = ("ok", *engine.speak(text, voice), engine.sr)
            except ValueError as err:
                result = ("error", str(err))
            with os.fdopen(write_fd, "wb") as pipe:
                pickle.dump(result, pipe, protocol=pickle.HIGHEST_PROTOCOL)
        except BaseException:
            status = 1
        finally:
            os._exit(status)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as pipe:
        payload = pipe.read()
    _, status = os.waitpid(pid, 0)
    if status != 0 or not payload:
        raise RuntimeError("espeak-ng crashed while speaking: reinstall it with `pip install --force-reinstall espeakng-loader`")
    result = pickle.loads(payload)
    if result[0] == "error":
        raise ValueError(result[1])
    return result[1], result[2], result[3]


def list_languages() -> list[str]:
    """Language codes espeak-ng can speak (e.g. ``"en-US"``, ``"en-GB-scotland"``, ``"fr"``), sorted."""
    import os

    import espeakng_loader

    root = os.path.join(espeakng_loader.get_data_path(), "lang")
    return sorted(name for _, _, files in os.walk(root) for name in files)


_STRESS_MARKS = "ˈˌ"


def synthesize(text: str, voice: Voice = Voice(), *, sr: int = 16000) -> Speech:
    """Speak ``text`` with espeak-ng and return the audio with phoneme and word timings.

    Args:
        text: any text in the voice's language (UTF-8). Empty or whitespace-only text is an error.
        voice: which voice, pitch and rate to speak with.
        sr: output sample rate; espeak-ng speaks at 22050 Hz and we resample with a polyphase filter.
    Returns:
        ``Speech`` whose phonemes tile the audio from the first phoneme's start to the end of the audio;
        pauses have the empty symbol ``""``.
    """
    from math import gcd

    from scipy.signal import resample_poly

    if not text or not text.strip():
        raise ValueError("nothing to say: give some text to speak")
    raw, events, native_sr = _speak(text, voice)
    n_native = len(raw)
    audio = raw.astype(np.float32) / 32768.0
    if sr != native_sr:
        g = gcd(sr, native_sr)
        audio = resample_poly(audio, sr // g, native_sr // g).astype(np.float32)
    audio = np.clip(audio, -1.0, 1.0)
    duration = len(audio) / sr

    def seconds(sample: int) -> float:
        return min(sample / native_sr, duration)

    phone_events = [e for e in events if e[0] == _EVENT_PHONEME]
    phonemes = []
    for k, (_, sample, _, _, symbol) in enumerate(phone_events):
        end_sample = phone_events[k + 1][1] if k + 1 < len(phone_events) else n_native
        stress = any(m in symbol for m in _STRESS_MARKS)
        clean = "".join(ch for ch in symbol if ch not in _STRESS_MARKS)
        if end_sample > sample:
            phonemes.append(Phoneme(clean, seconds(sample), seconds(end_sample), stress))

    # espeak reports a word slightly before or after its first phoneme: a word owns the phonemes that start
    # between its event and the next word's, and spans them exactly.
    word_events = [e for e in events if e[0] == _EVENT_WORD]
    words = []
    for k, (_, sample, text_pos, length, _) in enumerate(word_events):
        begin = seconds(sample)
        until = seconds(word_events[k + 1][1]) if k + 1 < len(word_events) else duration
        spoken = [p for p in phonemes if begin <= p.start < until and p.symbol]
        if not spoken:
            continue
        # text_position counts characters (not bytes) from 1.
        word = text[text_pos - 1 : text_pos - 1 + length] if text_pos > 0 else ""
        words.append(Word(word.strip(), spoken[0].start, spoken[-1].end))
    return Speech(audio=audio, sr=sr, phonemes=tuple(phonemes), words=tuple(words))
