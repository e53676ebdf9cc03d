"""prepare_corpus: SynthGRID (exact landmarks, parallel = serial), a fake real-GRID tree through a detector
(interpolation between detections, clips without a face skipped), the .npy appender and the CLI entry."""
import argparse
import json
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from talkinghead.data.prepare import (
    HOP,
    PreparedCorpus,
    _NpyAppender,
    add_prepare_parser,
    detect_clip_landmarks,
    main_prepare,
    prepare_corpus,
)
from talkinghead.face.align import CANONICAL_POINTS, anchor_points
from talkinghead.io import InputError, VideoWriter

SIZE = 96  # fake GRID frames: a bright square on grey moving right 1.5 px per frame


def _template() -> np.ndarray:
    """A 68-point face around (0, 0): eye centres at (∓10, -8), mouth centre at (0, 10)."""
    lmk = np.zeros((68, 2))
    lmk[0:17] = np.stack([np.linspace(-16, 16, 17), 12 - 14 * np.cos(np.linspace(0, np.pi, 17))], 1)
    lmk[17:27] = np.stack([np.linspace(-15, 15, 10), np.full(10, -13.0)], 1)
    lmk[27:36] = np.stack([np.zeros(9), np.linspace(-6, 4, 9)], 1)
    ring = lambda n, r: np.stack([r * np.cos(np.linspace(0, 2 * np.pi, n, endpoint=False)),
                                  r * 0.5 * np.sin(np.linspace(0, 2 * np.pi, n, endpoint=False))], 1)
    lmk[36:42], lmk[42:48] = ring(6, 3) + (-10, -8), ring(6, 3) + (10, -8)
    lmk[48:60], lmk[60:68] = ring(12, 7) + (0, 10), ring(8, 4) + (0, 10)
    return lmk


TEMPLATE = _template()


def square_detector(image: np.ndarray) -> np.ndarray:
    """The fake detector: the template placed at the bright square's centroid; no square, no face."""
    bright = image.mean(-1) > 200
    if bright.sum() < 20:
        raise InputError("no face found")
    ys, xs = np.nonzero(bright)
    return TEMPLATE + (xs.mean(), ys.mean())


def square_x(i: int) -> float:
    return 30.0 + 1.5 * i


def write_fake_mpg(path, n_frames=24, hidden=()):
    """GRID-like .mpg (MPEG-1 + MP2 audio, a 440 Hz tone) of the moving square; frames in ``hidden`` show none."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mp4 = path.with_suffix(".mp4")
    t = np.arange(n_frames * HOP) / 16000
    with VideoWriter(mp4, 25, audio=(0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)) as writer:
        for i in range(n_frames):
            frame = np.full((SIZE, SIZE, 3), 90, np.uint8)
            if i not in hidden:
                x0 = square_x(i) - 8
                xs = np.arange(SIZE)
                cover = np.clip(np.minimum(xs + 1 - x0, x0 + 16 - xs), 0, 1)  # anti-aliased edges: sub-pixel motion
                frame[40:56] = (90 + 160 * cover[None, :, None]).astype(np.uint8)
            writer.write(frame)
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(mp4), "-c:v", "mpeg1video",
                    "-q:v", "2", "-c:a", "mp2", "-ar", "44100", str(path)], check=True)
    mp4.unlink()


@pytest.fixture(scope="module")
def fake_grid(tmp_path_factory):
    """s1: two clips with the square (one hides it in 3 frames), s2: one clip without any face; s21 no video."""
    root = tmp_path_factory.mktemp("grid")
    write_fake_mpg(root / "s1" / "bbaf2n.mpg")
    write_fake_mpg(root / "s1" / "lgaz8p.mpg", hidden=(5, 6, 7))
    write_fake_mpg(root / "s2" / "pbai5a.mpg", n_frames=12, hidden=tuple(range(12)))
    (root / "alignments" / "s1").mkdir(parents=True)
    (root / "alignments" / "s1" / "bbaf2n.align").write_text("0 5000 sil\n5000 20000 bin\n20000 24000 sil\n")
    (root / "alignments" / "s21").mkdir(parents=True)
    split = root.parent / "split.json"
    split.write_text(json.dumps({"test": ["s2"], "val": []}))
    return root, split


@pytest.fixture(scope="module")
def synthgrid(tmp_path_factory):
    from talkinghead.data.synthgrid import generate_corpus

    root = tmp_path_factory.mktemp("sg")
    generate_corpus(root, speakers=3, per_speaker=2, size=128, workers=1, progress=False)
    return root


def test_detect_clip_landmarks_interpolates_between_detections():
    frames = np.zeros((10, 4, 4, 3), np.uint8)
    calls = []

    def detect(image):  # landmarks move 2 px per frame; frame 6 has no face
        i = len(calls)
        calls.append(i)
        if i == 2:
            raise InputError("no face")
        return TEMPLATE + 2.0 * np.array([0, 3 * i])

    lmk, tried, missing = detect_clip_landmarks(frames, detect, every=3)  # tries 0, 3, 6, 9
    assert (tried, missing) == (4, 1)
    expected = TEMPLATE[None] + 2.0 * np.arange(10)[:, None, None] * np.array([0, 1.0])
    np.testing.assert_allclose(lmk, expected, atol=1e-4)  # frame 6 bridged between 3 and 9
    lmk, tried, missing = detect_clip_landmarks(frames, lambda im: (_ for _ in ()).throw(InputError("x")), every=4)
    assert (tried, missing) == (4, 4) and np.isnan(lmk).all()  # tries 0, 4, 8 and the last, 9


def test_npy_appender_writes_a_normal_npy(tmp_path):
    path = tmp_path / "a.npy"
    writer = _NpyAppender(path, np.float32, (68, 2))
    blocks = [np.random.default_rng(i).normal(size=(n, 68, 2)).astype(np.float32) for i, n in enumerate((3, 0, 5))]
    for block in blocks:
        writer.append(block)
    writer.close()
    np.testing.assert_array_equal(np.load(path, mmap_mode="r"), np.concatenate(blocks))
    with pytest.raises(AssertionError):
        _NpyAppender(tmp_path / "b.npy", np.uint8, (2,)).append(np.zeros((1, 3), np.uint8))


def test_synthgrid_parallel_equals_serial(synthgrid, tmp_path):
    serial = prepare_corpus(synthgrid, tmp_path / "w1", size=64, workers=1, progress=False)
    parallel = prepare_corpus(synthgrid, tmp_path / "w2", size=64, workers=2, progress=False)
    a, b = PreparedCorpus.open(tmp_path / "w1"), PreparedCorpus.open(tmp_path / "w2")
    assert a.meta == b.meta and serial["landmarks"] == "ground truth" and parallel["stats"]["workers"] == 2
    for k in ("frames", "landmarks", "audio"):
        np.testing.assert_array_equal(getattr(a, k), getattr(b, k))
    assert a.frames.shape[1:] == (64, 64, 3) and len(a.frames) == len(a.landmarks) == len(a.audio) // HOP
    assert set(a.truth) == {"mouth_open", "eye_closure", "blink", "brow", "pose"}
    assert len(a.truth["blink"]) == len(a.frames)
    n = sum(len(np.load(p, mmap_mode="r")) for p in synthgrid.glob("s*/landmarks/*.npy"))
    assert serial["stats"]["frames"] == n and serial["stats"]["clips"] == 6
    # Canonical crop: the clip's mean anchors (eyes, mouth) are least-squares fitted to the canonical points, so
    # their centroid lands exactly and each point within a pixel or so.
    for clip in a.clips():
        anchors = anchor_points(a.clip_landmarks(clip)).mean(0)
        np.testing.assert_allclose(anchors.mean(0), CANONICAL_POINTS.mean(0) * 64, atol=0.05)
        np.testing.assert_allclose(anchors, CANONICAL_POINTS * 64, atol=1.5)
    # max_per_speaker and splits select utterances.
    meta = prepare_corpus(synthgrid, tmp_path / "one", size=64, workers=1, max_per_speaker=1, splits=("train",),
                          progress=False)
    assert {c["split"] for c in meta["clips"]} == {"train"} and len(meta["clips"]) == len(meta["speakers"])


def test_real_grid_layout_through_a_detector(fake_grid, tmp_path):
    root, split = fake_grid
    every1 = prepare_corpus(root, tmp_path / "e1", size=64, backend=square_detector, detect_every=1,
                            split_file=split, workers=1, progress=False)
    every3 = prepare_corpus(root, tmp_path / "e3", size=64, backend=square_detector, detect_every=3,
                            split_file=split, workers=1, progress=False)
    assert every3["landmarks"] == "detected" and every3["detector"]["detect_every"] == 3
    assert every3["detector"]["backend"] == "square_detector"
    # s2 never shows a face: skipped and counted; lgaz8p hides it in 3 of 24 frames: kept, gaps bridged.
    assert every1["skipped"] == {"no face": 1}
    assert every1["stats"]["speakers_without_video"] == {"s21": "no video (GRID's s21 has none)"}
    assert [c["utt"] for c in every1["clips"]] == ["bbaf2n", "lgaz8p"] and list(every1["speakers"]) == ["s1"]
    assert every1["clips"][0]["text"] == "bin" and every1["clips"][1]["text"] == ""
    a, b = PreparedCorpus.open(tmp_path / "e1"), PreparedCorpus.open(tmp_path / "e3")
    assert a.truth is None and len(a.frames) == 48
    # Linear motion: landmarks interpolated from every 3rd frame match per-frame detection.
    assert np.abs(a.landmarks - b.landmarks).max() < 0.3
    # Frames 5–7 of lgaz8p had no square; their landmarks continue the motion (1.5 px/frame ≈ 1 px in the crop).
    lmk = a.clip_landmarks(a.clips()[1])
    steps = np.diff(lmk[:, 48:60, 0].mean(1))
    assert np.all(np.abs(steps - steps.mean()) < 0.15) and abs(steps.mean()) > 0.5
    # Audio comes from the .mpg's own track (no .wav): the 440 Hz tone, clip length × 640 samples.
    audio = a.clip_audio(a.clips()[0])
    assert len(audio) == 24 * HOP
    assert abs(np.argmax(np.abs(np.fft.rfft(audio))) * 16000 / len(audio) - 440) < 15
    # A strict max_missing drops the clip with hidden frames too.
    strict = prepare_corpus(root, tmp_path / "strict", size=64, backend=square_detector, max_missing=0.05,
                            split_file=split, workers=1, progress=False)
    assert strict["skipped"] == {"no face": 2} and len(strict["clips"]) == 1


def test_dlib_backend_on_synthgrid_videos(synthgrid, tmp_path):
    """The real-GRID path with the offline detector: SynthGRID's videos without their landmark files."""
    pytest.importorskip("dlib")
    grid = tmp_path / "grid"
    for video in sorted(synthgrid.glob("s1/video/*.mp4")):
        (grid / "s1").mkdir(parents=True, exist_ok=True)
        (grid / "s1" / video.name).write_bytes(video.read_bytes())
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"train": ["s1"]}))
    detected = prepare_corpus(grid, tmp_path / "dlib", size=64, backend="dlib", detect_every=4, split_file=split,
                              workers=1, progress=False)
    prepare_corpus(synthgrid, tmp_path / "exact", size=64, splits=("train", "val", "test"), workers=1,
                           progress=False)
    assert detected["landmarks"] == "detected" and detected["detector"]["backend"] == "dlib"
    a, b = PreparedCorpus.open(tmp_path / "dlib"), PreparedCorpus.open(tmp_path / "exact")
    s1 = [c for c in b.clips() if c["speaker"] == "s1"]
    assert [c["n_frames"] for c in a.clips()] == [c["n_frames"] for c in s1]
    error = np.linalg.norm(a.landmarks - np.concatenate([b.clip_landmarks(c) for c in s1]), axis=-1)
    assert error.mean() < 2.0  # pixels of the 64 px crop (dlib's error on these frames is ~2 px at 128 px)


def test_videos_not_at_25_fps_are_skipped(tmp_path):
    for fps, name in ((25, "a"), (30, "b")):
        (tmp_path / "s1").mkdir(exist_ok=True)
        frames = np.full((10, SIZE, SIZE, 3), 90, np.uint8)
        frames[:, 40:56, 22:38] = 250
        with VideoWriter(tmp_path / "s1" / f"{name}.mp4", fps, audio=np.zeros(6400, np.float32)) as writer:
            writer.write(frames)
    meta = prepare_corpus(tmp_path, tmp_path / "out", size=32, backend=square_detector, splits=("test",),
                          workers=1, progress=False)
    assert [c["utt"] for c in meta["clips"]] == ["a"] and meta["skipped"] == {"not 25 fps": 1}


def test_errors(fake_grid, tmp_path):
    root, split = fake_grid
    with pytest.raises(InputError, match="every clip"):  # the test split is s2, which never shows a face
        prepare_corpus(root, tmp_path / "none", backend=square_detector, splits=("test",), split_file=split,
                       workers=1, progress=False)
    assert not (tmp_path / "none" / "meta.json").exists() and not list((tmp_path / "none").glob(".*.tmp.npy"))
    with pytest.raises(ValueError, match="detect_every"):
        prepare_corpus(root, tmp_path / "x", detect_every=0)
    with pytest.raises(ValueError, match="backend"):
        prepare_corpus(root, tmp_path / "x", backend="opencv")
    with pytest.raises(InputError, match="no speaker in the splits"):
        prepare_corpus(root, tmp_path / "x", splits=("val",), workers=1)


def test_cli_entry(synthgrid, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_prepare_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["prepare", "--corpus", str(synthgrid), "--out", str(tmp_path / "p"), "--size", "64",
                              "--workers", "1", "--max-per-speaker", "1", "--quiet"])
    assert args.func is main_prepare and args.backend == "dlib" and args.detect_every == 1
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "prepared 3 clips" in out and "landmarks: ground truth" in out and "speakers by split" in out
    assert PreparedCorpus.open(tmp_path / "p").meta["size"] == 64
