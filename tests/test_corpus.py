"""GridCorpus on tiny fake GRID trees (real .mpg files, two release layouts, an s21 without video) and SynthGRID."""
import json
import logging
import subprocess

import imageio_ffmpeg
import numpy as np
import pytest

from talkinghead.data.corpus import GRID_DEFAULT_SPLIT, GridCorpus, align_text, read_align
from talkinghead.io import InputError, VideoWriter, load_audio

ALIGN = "0 23750 sil\n23750 29500 bin\n29500 34000 blue\n34000 35500 sp\n35500 41750 at\n41750 47250 f\n" \
        "47250 53000 two\n53000 61000 now\n61000 74500 sil\n"


def write_mpg(path, n_frames=10, tone_hz=440.0, size=48):
    """An MPEG-1 video with an MP2 audio track, like GRID's mpg_vcd files (our VideoWriter, then ffmpeg)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    mp4 = path.with_suffix(".mp4")
    t = np.arange(n_frames * 640) / 16000
    with VideoWriter(mp4, 25, audio=(0.3 * np.sin(2 * np.pi * tone_hz * t)).astype(np.float32)) as writer:
        for i in range(n_frames):
            writer.write(np.full((size, size, 3), 10 * i, np.uint8))
    subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-v", "error", "-y", "-i", str(mp4), "-c:v", "mpeg1video",
                    "-q:v", "2", "-c:a", "mp2", "-ar", "44100", str(path)], check=True)
    mp4.unlink()


@pytest.fixture(scope="module")
def mpg(tmp_path_factory):
    """One .mpg to copy around (encoding is the slow part)."""
    path = tmp_path_factory.mktemp("mpg") / "x.mpg"
    write_mpg(path)
    return path.read_bytes()


def put(path, data):
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.write_bytes if isinstance(data, bytes) else path.write_text)(data)


def test_read_align_converts_units_and_text_drops_silences(tmp_path):
    put(tmp_path / "a.align", ALIGN)
    words = read_align(tmp_path / "a.align")
    assert [w.word for w in words][:3] == ["sil", "bin", "blue"]
    assert words[1].start == pytest.approx(23750 / 25000) and words[-1].end == pytest.approx(2.98)
    assert align_text(words) == "bin blue at f two now"
    put(tmp_path / "bad.align", "0 100 sil\n100 oops bin\n")
    with pytest.raises(InputError, match=r"bad.align:2"):
        read_align(tmp_path / "bad.align")


def test_sheffield_layout_with_s21_without_video(tmp_path, mpg, caplog):
    # s1.mpg_vcd.zip -> s1/*.mpg ; s1/align/s1.tar unpacked in s1 -> s1/align/*.align ; s21: alignments only.
    for spk in ("s1", "s2", "s10", "s21"):
        if spk != "s21":
            for utt in ("bbaf2n", "lgaz8p"):
                put(tmp_path / spk / f"{utt}.mpg", mpg)
        put(tmp_path / spk / "align" / "bbaf2n.align", ALIGN)
    with caplog.at_level(logging.INFO, logger="talkinghead.data.corpus"):
        corpus = GridCorpus(tmp_path)
    assert corpus.kind == "grid"
    assert corpus.speakers == ["s1", "s2", "s10"]  # numeric order, s21 left out
    assert "s21" in corpus.skipped and "s21" in caplog.text
    assert len(corpus) == 6
    u = corpus.utterances(speaker="s2")[0]
    assert (u.speaker, u.utt, u.video.suffix) == ("s2", "bbaf2n", ".mpg")
    assert u.align == tmp_path / "s2" / "align" / "bbaf2n.align" and u.text == "bin blue at f two now"
    assert u.audio is None and u.landmarks is None  # audio comes from the video's own track
    other = corpus.utterances(speaker="s2")[1]
    assert other.align is None and other.text == ""
    # The default split: LipNet's unseen test speakers, s3/s4 validation, the rest train.
    assert corpus.split == {"s1": "test", "s2": "test", "s10": "train"}
    assert set(GRID_DEFAULT_SPLIT["test"]) == {"s1", "s2", "s20", "s22"}
    assert [u.speaker for u in corpus.utterances(split="test")] == ["s1", "s1", "s2", "s2"]
    # The video's audio track decodes (load_audio on the .mpg).
    audio = load_audio(u.video)
    spectrum = np.abs(np.fft.rfft(audio))
    assert abs(np.argmax(spectrum) * 16000 / len(audio) - 440) < 10


def test_zenodo_and_high_quality_layouts(tmp_path, mpg):
    # Zenodo: alignments/s1/*.align, audio_25k/s1/*.wav; high-quality video: s1/video/mpg_6000/*.mpg;
    # Sheffield 50 kHz audio: s3_50kHz/s3/*.wav.
    wav = (tmp_path / "tone.wav")
    import soundfile
    soundfile.write(wav, np.zeros(2500, np.float32), 25000)
    for spk in ("s1", "s3"):
        put(tmp_path / spk / "video" / "mpg_6000" / "pbai5a.mpg", mpg)
        put(tmp_path / "alignments" / spk / "pbai5a.align", ALIGN)
    put(tmp_path / "alignments" / "s21" / "pbai5a.align", ALIGN)
    put(tmp_path / "audio_25k" / "s1" / "pbai5a.wav", wav.read_bytes())
    put(tmp_path / "s3_50kHz" / "s3" / "pbai5a.wav", wav.read_bytes())
    corpus = GridCorpus(tmp_path)
    assert corpus.speakers == ["s1", "s3"] and list(corpus.skipped) == ["s21"]
    s1, s3 = corpus.utterances()
    assert s1.video == tmp_path / "s1" / "video" / "mpg_6000" / "pbai5a.mpg"
    assert s1.align == tmp_path / "alignments" / "s1" / "pbai5a.align" and s1.text.startswith("bin blue")
    assert s1.audio == tmp_path / "audio_25k" / "s1" / "pbai5a.wav"
    assert s3.audio == tmp_path / "s3_50kHz" / "s3" / "pbai5a.wav"
    assert corpus.split == {"s1": "test", "s3": "val"}


def test_split_file_overrides_and_is_checked(tmp_path, mpg):
    for spk in ("s1", "s2", "s3"):
        put(tmp_path / "video" / spk / "bbaf2n.mpg", mpg)  # one folder per speaker under video/
    split = tmp_path / "split.json"
    split.write_text(json.dumps({"test": ["s3", "s21"], "val": ["s2"]}))
    assert GridCorpus(tmp_path, split_file=split).split == {"s1": "train", "s2": "val", "s3": "test"}
    split.write_text(json.dumps({"train": ["s1"], "test": ["s3"]}))  # unlisted speakers are left out
    corpus = GridCorpus(tmp_path, split_file=split)
    assert corpus.split["s2"] == "unused" and corpus.speakers_in("train") == ["s1"]
    split.write_text(json.dumps({"test": ["s9"]}))
    with pytest.raises(InputError, match="'s9'"):
        GridCorpus(tmp_path, split_file=split)
    split.write_text(json.dumps({"test": ["s1"], "val": ["s1"]}))
    with pytest.raises(InputError, match="both"):
        GridCorpus(tmp_path, split_file=split)
    split.write_text(json.dumps({"holdout": ["s1"]}))
    with pytest.raises(InputError, match="keys among"):
        GridCorpus(tmp_path, split_file=split)


def test_no_video_is_a_clear_error(tmp_path):
    put(tmp_path / "alignments" / "s1" / "x.align", ALIGN)
    with pytest.raises(InputError, match="no speaker with video"):
        GridCorpus(tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        GridCorpus(tmp_path / "missing")


def test_synthgrid_corpus(tmp_path):
    from talkinghead.data.synthgrid import generate_corpus

    desc = generate_corpus(tmp_path, speakers=3, per_speaker=2, size=64, workers=1, progress=False)
    corpus = GridCorpus(tmp_path)
    assert corpus.kind == "synthgrid" and corpus.speakers == ["s1", "s2", "s3"]
    assert corpus.split == {s["id"]: s["split"] for s in desc["speakers"]}
    for u in corpus.utterances():
        assert u.video.suffix == ".mp4" and u.audio.suffix == ".wav"
        assert u.landmarks.exists() and u.truth.exists()
        assert u.text == desc["texts"][u.id] == align_text(read_align(u.align))
    assert [u.utt for u in corpus.utterances(speaker="s1")] == desc["utterances"]["s1"]
