"""SynthGRID: the mouth follows the phonemes, the eyes blink naturally, the pixels agree with the landmarks,
and the same seed gives the same corpus."""
import json
import math

import numpy as np
import pytest

from talkinghead.data.synthgrid import FaceRenderer, FaceState, generate_corpus, make_speakers, plan_clip, render_clip
from talkinghead.data.synthgrid.articulation import blink_track, mouth_track, sample_blinks
from talkinghead.data.synthgrid.face import landmarks_2d, sample_identity
from talkinghead.face.landmarks import eye_aspect_ratio, mouth_opening

FPS = 25


@pytest.fixture(scope="module")
def speakers():
    return make_speakers(8, seed=0)


@pytest.fixture(scope="module")
def clip(speakers):
    return plan_clip("place blue by b nine again please", speakers[0], seed=3)


def _opening(clip, speaker, size=128):
    lmk = np.stack([landmarks_2d(speaker.identity, s, size) for s in clip.states])
    return mouth_opening(lmk), lmk


def test_mouth_closes_for_bilabials_and_silence_and_opens_for_open_vowels(clip, speakers):
    opening, _ = _opening(clip, speakers[0])
    frame = lambda t: min(round(t * FPS), clip.n_frames - 1)  # noqa: E731
    bilabial = [p for p in clip.phonemes if p.symbol in ("p", "b", "m")]
    open_vowels = [p for p in clip.phonemes if p.symbol in ("a", "ɑ", "aɪ", "aʊ", "æ", "ɐ")]
    assert len(bilabial) >= 3 and len(open_vowels) >= 2
    for p in bilabial:
        assert opening[frame(0.5 * (p.start + p.end))] < 0.03, p
    for p in open_vowels:
        assert opening[frame(0.5 * (p.start + p.end))] > 0.12, p
    # Silence before and after the speech: lips together.
    assert opening[: frame(clip.phonemes[0].start) - 2].max() < 0.03
    assert opening[frame(clip.phonemes[-1].end) + 3 :].max() < 0.03
    # Open vowels open far more than bilabials close.
    assert np.mean([opening[frame(0.5 * (p.start + p.end))] for p in open_vowels]) > 5 * 0.03


def test_coarticulation_has_no_instant_jumps():
    from talkinghead.audio.tts import Phoneme

    phonemes = [Phoneme("b", 0.5, 0.56), Phoneme("ɑ", 0.56, 0.8), Phoneme("m", 0.8, 0.86)]
    t = np.arange(0, 1.4, 0.001)
    track = mouth_track(phonemes, t)  # (T, 6) at 1 kHz
    assert np.abs(np.diff(track, axis=0)).max() < 0.06  # smooth at 1 ms resolution
    jaw, closure = track[:, 0], track[:, 3]
    assert jaw[np.searchsorted(t, 0.68)] > 0.6 and closure[np.searchsorted(t, 0.53)] > 0.9


def test_blink_rate_and_duration_over_a_long_clip(speakers):
    duration = 600.0
    times = np.arange(0, duration, 1 / FPS)
    for speaker in speakers:
        rng = np.random.default_rng(7)
        blinks = sample_blinks(duration, rng, rate=speaker.blink_rate)
        rate = len(blinks) / duration
        assert 0.2 <= speaker.blink_rate <= 0.45
        assert abs(rate - speaker.blink_rate) < 0.08, (rate, speaker.blink_rate)
        assert all(0.1 <= b.duration <= 0.4 for b in blinks)
    # The same blinks seen through the landmarks: EAR dips, counted per second, land in the natural range.
    speaker = speakers[1]
    closure = blink_track(sample_blinks(120.0, np.random.default_rng(1), rate=speaker.blink_rate), times[: 120 * FPS])
    ear = np.array([eye_aspect_ratio(landmarks_2d(speaker.identity, FaceState(eye_closure=c))) for c in closure])
    closed = ear < 0.5 * np.median(ear)
    onsets = np.count_nonzero(closed[1:] & ~closed[:-1]) + int(closed[0])
    assert 0.15 <= onsets / 120.0 <= 0.5


def test_landmarks_inside_the_frame_and_consistent_with_the_pixels(clip, speakers):
    speaker = speakers[0]
    renderer = FaceRenderer(speaker.identity, size=128)
    frames = list(render_clip(clip, renderer))
    lmk = np.stack([f.lmk for f in frames])
    assert lmk.min() >= 0 and lmk.max() < 128
    np.testing.assert_allclose(lmk, _opening(clip, speaker)[1], atol=1e-4)
    luma = lambda img, xy: float(img[int(round(xy[1])), int(round(xy[0]))].astype(float) @ [0.299, 0.587, 0.114])  # noqa: E731
    skin = float(np.array(speaker.identity.skin) @ [0.299, 0.587, 0.114])
    opening = mouth_opening(lmk)
    open_frames = np.flatnonzero(opening > 0.2)
    closed_frames = np.flatnonzero(opening < 0.01)
    assert len(open_frames) >= 3 and len(closed_frames) >= 3
    def along(img, a, b, n=9):  # luminance at n points strictly between a and b
        return np.array([luma(img, a + (b - a) * t) for t in np.linspace(0, 1, n + 2)[1:-1]])

    for i in open_frames:
        # The dark mouth interior lies between the inner lips (the tongue or teeth may cover part of it).
        assert along(frames[i].image, lmk[i, 62], lmk[i, 66]).min() < 0.45 * skin, i
    for i in closed_frames:
        # Closed lips: from the top of the upper lip to the bottom of the lower lip, lip colour, no dark gap.
        assert np.median(along(frames[i].image, lmk[i, 51], lmk[i, 57])) > 0.35 * skin, i
    # The nose tip is skin, the pupils are dark when the eyes are open.
    for f in frames[:5]:
        assert abs(luma(f.image, f.lmk[30]) - skin) < 0.35 * skin
        pupil = 0.5 * (f.lmk[37] + f.lmk[41]) * 0.5 + 0.5 * (f.lmk[38] + f.lmk[40]) * 0.5
        assert luma(f.image, pupil) < 0.6 * skin


def test_identities_vary_and_render_at_any_supported_size():
    rng = np.random.default_rng(0)
    identities = [sample_identity(rng) for _ in range(6)]
    assert len({i.skin for i in identities}) == 6 and len({i.hair_style for i in identities}) >= 3
    for size in (64, 128, 256):
        frame = FaceRenderer(identities[0], size=size).render(FaceState(jaw=0.5))
        assert frame.image.shape == (size, size, 3) and frame.image.dtype == np.uint8
        np.testing.assert_allclose(frame.lmk * 128 / size, landmarks_2d(identities[0], FaceState(jaw=0.5), 128), atol=1e-3)
    with pytest.raises(ValueError, match="out of range"):
        FaceRenderer(identities[0], size=8)


def test_held_out_speakers_use_unseen_voices(speakers):
    train = [s for s in speakers if s.split == "train"]
    held = [s for s in speakers if s.split != "train"]
    assert [s.split for s in speakers].count("test") >= 1 and [s.split for s in speakers].count("val") >= 1
    train_voices = {(s.voice.language, s.voice.variant) for s in train}
    assert all(s.voice.language not in {v[0] for v in train_voices} for s in held)
    assert all(s.voice.variant not in {v[1] for v in train_voices} for s in held)


def test_same_seed_same_clip(speakers):
    a = plan_clip("set red with q one soon", speakers[2], seed=5)
    b = plan_clip("set red with q one soon", speakers[2], seed=5)
    c = plan_clip("set red with q one soon", speakers[2], seed=6)
    np.testing.assert_array_equal(a.audio, b.audio)
    assert a.states == b.states and a.states != c.states
    renderer = FaceRenderer(speakers[2].identity, size=64)
    for sa, sb in zip(a.states[::10], b.states[::10]):
        np.testing.assert_array_equal(renderer.render(sa).image, renderer.render(sb).image)


def _read_corpus(root):
    files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".npy", ".wav", ".align", ".npz"))
    return {str(p.relative_to(root)): p.read_bytes() for p in files}


def test_corpus_layout_and_determinism_across_workers(tmp_path):
    from talkinghead.io import read_video

    one = generate_corpus(tmp_path / "a", speakers=3, per_speaker=2, size=64, seed=11, workers=1, progress=False)
    two = generate_corpus(tmp_path / "b", speakers=3, per_speaker=2, size=64, seed=11, workers=2, progress=False)
    assert one["speakers"] == two["speakers"] and one["utterances"] == two["utterances"]
    a, b = _read_corpus(tmp_path / "a"), _read_corpus(tmp_path / "b")
    assert a.keys() == b.keys() and len(a) == 3 * 2 * 4
    assert all(a[k] == b[k] for k in a), [k for k in a if a[k] != b[k]]

    corpus = json.loads((tmp_path / "a" / "corpus.json").read_text())
    assert corpus["split"] == {"train": ["s1"], "val": ["s2"], "test": ["s3"]}
    speaker, utt = "s1", corpus["utterances"]["s1"][0]
    base = tmp_path / "a" / speaker
    frames, fps, audio = read_video(base / "video" / f"{utt}.mp4")
    lmk = np.load(base / "landmarks" / f"{utt}.npy")
    truth = np.load(base / "truth" / f"{utt}.npz")
    assert fps == FPS and frames.shape == (len(lmk), 64, 64, 3) and lmk.shape[1:] == (68, 2)
    assert len(truth["mouth_open"]) == len(lmk) and truth["pose"].shape == (len(lmk), 3)
    assert abs(len(audio) / 16000 - len(lmk) / FPS) < 0.04
    # GRID .align: contiguous, in 1/25000 s, starting and ending with silence, the sentence's words in order.
    rows = [line.split() for line in (base / "align" / f"{utt}.align").read_text().splitlines()]
    assert rows[0][2] == "sil" and rows[-1][2] == "sil" and int(rows[0][0]) == 0
    assert all(int(r[1]) == int(s[0]) for r, s in zip(rows, rows[1:]))
    assert math.isclose(int(rows[-1][1]) / 25000, len(lmk) / FPS, abs_tol=0.001)
    words = [r[2] for r in rows if r[2] not in ("sil", "sp")]
    assert " ".join(words) == corpus["texts"][f"{speaker}/{utt}"]
