import numpy as np
import pytest

from talkinghead.audio.tts import Voice, list_languages, synthesize


def test_phonemes_tile_the_speech_in_order():
    speech = synthesize("bin blue at f two now")
    assert speech.sr == 16000 and speech.audio.dtype == np.float32
    assert 0.8 < speech.duration < 3.0
    starts = np.array([p.start for p in speech.phonemes])
    ends = np.array([p.end for p in speech.phonemes])
    assert np.all(np.diff(starts) > 0) and np.all(ends > starts)
    np.testing.assert_allclose(starts[1:], ends[:-1])  # contiguous
    assert ends[-1] <= speech.duration + 1e-6
    symbols = [p.symbol for p in speech.phonemes]
    assert symbols[:3] == ["b", "ɪ", "n"]
    assert [w.text for w in speech.words] == ["bin", "blue", "at", "f", "two", "now"]


def test_audio_is_loud_where_phonemes_are_and_words_are_ordered():
    speech = synthesize("place white by q nine again")
    voiced = [p for p in speech.phonemes if p.symbol in ("eɪ", "aɪ")]
    for p in voiced:
        seg = speech.audio[int(p.start * speech.sr) : int(p.end * speech.sr)]
        assert np.sqrt(np.mean(seg**2)) > 0.02
    starts = [w.start for w in speech.words]
    assert starts == sorted(starts)
    assert all(w.end > w.start for w in speech.words)


def test_voices_differ_and_are_deterministic():
    a = synthesize("set red with q one soon", Voice("en-US", "m3", pitch=40))
    b = synthesize("set red with q one soon", Voice("en-US", "m3", pitch=40))
    c = synthesize("set red with q one soon", Voice("en", "f2", pitch=70, rate=120))
    np.testing.assert_array_equal(a.audio, b.audio)
    assert c.duration > a.duration  # slower rate
    assert len(a.audio) != len(c.audio) or not np.allclose(a.audio, c.audio)


def test_other_languages_and_arbitrary_text():
    speech = synthesize("Le petit chat boit du lait.", Voice("fr"))
    assert any(p.symbol == "ʃ" for p in speech.phonemes)
    assert "fr" in list_languages() and "en-US" in list_languages()


def test_bad_input():
    with pytest.raises(ValueError, match="nothing to say"):
        synthesize("   ")
    with pytest.raises(ValueError, match="no voice"):
        synthesize("hello", Voice("xx-not-a-language"))
