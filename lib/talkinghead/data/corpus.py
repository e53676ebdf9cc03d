"""Read GRID-layout corpora: the real GRID corpus (Cooke et al. 2006) and SynthGRID.

GRID ("An audio-visual corpus for speech perception and automatic speech recognition", JASA 2006) has 34
speakers (s1–s34; s21's video was lost, so 33 have video), 1000 sentences each, "bin blue at f two now", 3 s at
25 fps. Its releases unpack into several layouts; every one below is found without configuration (``root`` is
the folder you unpacked into)::

    video   root/s1/*.mpg                     Sheffield site, s1.mpg_vcd.zip (normal quality)
            root/s1/video/mpg_6000/*.mpg      Sheffield site, s1.mpg_6000.part1/2.tar (high quality)
            root/s1/video/*.mpg|*.mp4         SynthGRID (mp4), or videos sorted into a video/ folder
            root/video/s1/*.mpg|*.mp4         one folder per speaker under video/ (or videos/)
    align   root/alignments/s1/*.align        Zenodo release, alignments.zip
            root/s1/align/*.align             Sheffield site, s1/align/s1.tar unpacked into root/s1; SynthGRID
            root/align/s1/*.align             one folder per speaker under align/
    audio   root/s1_50kHz/s1/*.wav            Sheffield site, s1_50kHz.zip (50 kHz)
            root/audio_25k/s1/*.wav           Zenodo release, audio_25k.zip (25 kHz)
            root/s1/audio/*.wav               SynthGRID (16 kHz)
            root/audio/s1/*.wav               one folder per speaker under audio/
            (none)                            the video's own audio track is used

An utterance is one video; its id is the video's file stem (GRID: ``bbaf2n``). Its alignment and audio are the
files of the same stem in the speaker's align/audio folder, when present.

``.align`` files hold one word per line, ``start end word``, in 1/25000 s (1000 units per 25 fps video frame);
``sil`` marks silence and ``sp`` a short pause. SynthGRID (a folder with ``corpus.json``) adds exact landmarks
(``s1/landmarks/<utt>.npy``) and ground truth (``s1/truth/<utt>.npz``) and brings its own split.

Splits are by speaker, so validation and test voices and faces are never seen in training. Real GRID's default
is the "unseen speakers" protocol of LipNet (Assael et al. 2016, arXiv:1611.01599): s1, s2, s20 and s22 held out
for test; we add s3 and s4 as validation (our choice). SDA (Vougioukas et al., BMVC 2018 / IJCV 2019) also splits
GRID by speaker but the material available to this project does not list its speaker ids, so it cannot be
reproduced exactly; give any split as a JSON file (``split_file``).
"""
from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

from talkinghead.io import InputError

__all__ = [
    "ALIGN_UNITS", "GRID_DEFAULT_SPLIT", "NO_VIDEO", "SPLITS", "AlignedWord", "Utterance", "GridCorpus", "read_align",
    "align_text",
]

log = logging.getLogger(__name__)

ALIGN_UNITS = 25000  # .align times are in 1/25000 s
SPLITS = ("train", "val", "test")
# LipNet's unseen-speaker test speakers, plus two validation speakers; every other speaker with video trains.
GRID_DEFAULT_SPLIT: dict[str, tuple[str, ...]] = {"val": ("s3", "s4"), "test": ("s1", "s2", "s20", "s22")}
SILENCES = frozenset({"sil", "sp"})
NO_VIDEO = frozenset({"s21"})  # GRID's speaker 21 has audio and alignments but no video
VIDEO_SUFFIXES = (".mpg", ".mp4")

_SPEAKER = re.compile(r"^s(\d+)$")


@dataclass(frozen=True)
class AlignedWord:
    """One line of a ``.align`` file, times in seconds."""

    start: float
    end: float
    word: str


@dataclass(frozen=True)
class Utterance:
    """One utterance of a GRID-layout corpus: where its files are and what is said."""

    speaker: str             # "s1"
    utt: str                 # "bbaf2n" (the video's file stem)
    video: Path              # .mpg (GRID) or .mp4 (SynthGRID)
    audio: Path | None       # a .wav, or None: use the video's audio track
    align: Path | None       # word timings, or None when the corpus has no .align for this video
    landmarks: Path | None   # (T, 68, 2) exact landmarks (SynthGRID only)
    truth: Path | None       # per-frame ground truth .npz (SynthGRID only)
    text: str                # the words without sil/sp, "" without an alignment

    @property
    def id(self) -> str:
        """``speaker/utt``, unique in a corpus."""
        return f"{self.speaker}/{self.utt}"


def read_align(path: str | os.PathLike) -> list[AlignedWord]:
    """Parse a GRID ``.align`` file (``start end word`` per line, 1/25000 s) into words with times in seconds.

    Raises:
        InputError: a line that is not ``int int word``.
    """
    path = Path(path)
    words = []
    for number, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split()
        try:
            start, end, word = int(parts[0]), int(parts[1]), parts[2]
        except (IndexError, ValueError):
            raise InputError(f"{path}:{number}: expected 'start end word' (integers in 1/25000 s), got {line!r}: "
                             f"is this a GRID .align file?") from None
        words.append(AlignedWord(start / ALIGN_UNITS, end / ALIGN_UNITS, word))
    return words


def align_text(words: list[AlignedWord]) -> str:
    """The sentence of an alignment: its words without ``sil`` and ``sp``."""
    return " ".join(w.word for w in words if w.word not in SILENCES)


def _speaker_number(name: str) -> int:
    return int(_SPEAKER.match(name).group(1))


def _speaker_dirs(parent: Path) -> dict[str, Path]:
    """Sub-folders of ``parent`` named like a speaker (s1, s2, …)."""
    if not parent.is_dir():
        return {}
    return {p.name: p for p in parent.iterdir() if p.is_dir() and _SPEAKER.match(p.name)}


def _files(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    """{stem: path} of the files in ``folder`` with one of ``suffixes`` (case-insensitive); {} if no folder."""
    if not folder.is_dir():
        return {}
    return {p.stem: p for p in sorted(folder.iterdir()) if p.suffix.lower() in suffixes and p.is_file()}


def _first_nonempty(folders: list[Path], suffixes: tuple[str, ...]) -> dict[str, Path]:
    for folder in folders:
        found = _files(folder, suffixes)
        if found:
            return found
    return {}


class GridCorpus:
    """A GRID-layout corpus on disk: its speakers, their split and their utterances.

    Args:
        root: the corpus folder (real GRID unpacked in any layout of the module docstring, or a SynthGRID folder).
        split_file: optional JSON ``{"val": ["s3"], "test": ["s1", "s2"], "train": [...]}`` overriding the default
            split. Speakers it does not name are "train", unless it has a "train" list: then they are left out.

    Attributes:
        kind: "synthgrid" (has corpus.json) or "grid".
        speakers: ids of the speakers with video, in numeric order ("s1", "s2", …, "s10").
        split: {speaker: "train" | "val" | "test" | "unused"}.
        skipped: {speaker: why} for speakers found without video (GRID's s21).
    """

    def __init__(self, root: str | os.PathLike, *, split_file: str | os.PathLike | None = None):
        self.root = Path(root)
        if not self.root.is_dir():
            raise InputError(f"corpus folder {self.root} does not exist: give the folder the GRID archives were "
                             f"unpacked into (see docs/DATA.md)")
        desc_path = self.root / "corpus.json"
        self.description = json.loads(desc_path.read_text()) if desc_path.exists() else None
        self.kind = "synthgrid" if self.description is not None else "grid"
        self._utterances: dict[str, list[Utterance]] = {}
        self.skipped: dict[str, str] = {}
        for speaker in sorted(self._candidate_speakers(), key=_speaker_number):
            utts = self._scan_speaker(speaker)
            if utts:
                self._utterances[speaker] = utts
        self.speakers = list(self._utterances)
        if not self.speakers:
            raise InputError(f"no speaker with video found in {self.root}: expected folders like s1/*.mpg, "
                             f"s1/video/mpg_6000/*.mpg or video/s1/*.mpg (see docs/DATA.md)")
        for speaker, why in self.skipped.items():
            log.info("%s: skipping speaker %s: %s", self.root, speaker, why)
        self.split = self._load_split(split_file)

    # --------------------------------------------------------------------------------------------- discovery

    def _candidate_speakers(self) -> set[str]:
        names = set(_speaker_dirs(self.root))
        for parent in ("alignments", "align", "audio_25k", "audio", "video", "videos"):
            names |= set(_speaker_dirs(self.root / parent))
        fifty = (p.name.removesuffix("_50kHz") for p in self.root.glob("s*_50kHz"))
        names |= {name for name in fifty if _SPEAKER.match(name)}
        if self.description is not None:
            names |= {s["id"] for s in self.description["speakers"]}
        return names

    def _scan_speaker(self, speaker: str) -> list[Utterance]:
        root, spk = self.root, self.root / speaker
        videos = _first_nonempty(
            [spk, spk / "video" / "mpg_6000", spk / "video", root / "video" / speaker, root / "videos" / speaker],
            VIDEO_SUFFIXES,
        )
        if not videos:
            self.skipped[speaker] = "no video (GRID's s21 has none)" if speaker in NO_VIDEO else "no video found"
            return []
        aligns = _first_nonempty([root / "alignments" / speaker, spk / "align", root / "align" / speaker], (".align",))
        audios = _first_nonempty(
            [root / f"{speaker}_50kHz" / speaker, root / "audio_25k" / speaker, spk / "audio", root / "audio" / speaker,
             spk],
            (".wav",),
        )
        texts = self.description.get("texts", {}) if self.description is not None else {}
        order = list(videos)
        if self.description is not None:  # keep SynthGRID's own utterance order (prepare's output follows it)
            listed = self.description["utterances"].get(speaker, [])
            order = [u for u in listed if u in videos] + sorted(set(videos) - set(listed))
        utts = []
        for utt in order:
            align = aligns.get(utt)
            lmk, truth = spk / "landmarks" / f"{utt}.npy", spk / "truth" / f"{utt}.npz"
            text = texts.get(f"{speaker}/{utt}")
            if text is None:
                text = align_text(read_align(align)) if align is not None else ""
            utts.append(Utterance(
                speaker, utt, videos[utt], audios.get(utt), align,
                lmk if lmk.exists() else None, truth if truth.exists() else None, text,
            ))
        return utts

    def _load_split(self, split_file: str | os.PathLike | None) -> dict[str, str]:
        if split_file is None and self.description is not None:
            given = {s["id"]: s["split"] for s in self.description["speakers"]}
            return {s: given.get(s, "unused") for s in self.speakers}
        if split_file is None:
            lists, default = GRID_DEFAULT_SPLIT, "train"
        else:
            path = Path(split_file)
            try:
                lists = json.loads(path.read_text())
            except (OSError, json.JSONDecodeError) as err:
                raise InputError(f"cannot read split file {path}: {err}: give a JSON file like "
                                 f'{{"val": ["s3", "s4"], "test": ["s1", "s2"]}}') from None
            if not isinstance(lists, dict) or not set(lists) <= set(SPLITS):
                raise InputError(f"split file {path} must be a JSON object with keys among {', '.join(SPLITS)}, "
                                 f'each a list of speakers, e.g. {{"val": ["s3"], "test": ["s1", "s2"]}}')
            default = "unused" if "train" in lists else "train"
        split = dict.fromkeys(self.speakers, default)
        for name, members in lists.items():
            for speaker in members:
                if speaker not in split and (split_file is None or speaker in self.skipped or speaker in NO_VIDEO):
                    continue  # the default split names speakers a partial download lacks; s21 has no video
                if speaker not in split:
                    raise InputError(f"split names speaker {speaker!r}, which {self.root} does not have: "
                                     f"its speakers are {', '.join(self.speakers)}")
                if split[speaker] not in (default, name):
                    raise InputError(f"split puts speaker {speaker} in both {split[speaker]} and {name}: keep one")
                split[speaker] = name
        return split

    # --------------------------------------------------------------------------------------------- access

    def utterances(self, *, speaker: str | None = None, split: str | None = None) -> list[Utterance]:
        """The utterances of one speaker, of one split, or all (speaker by speaker, in the corpus's order)."""
        if speaker is not None and speaker not in self._utterances:
            raise InputError(f"no speaker {speaker!r} with video in {self.root}: "
                             f"choose one of {', '.join(self.speakers)}")
        speakers = [speaker] if speaker is not None else self.speakers
        return [u for s in speakers if split is None or self.split[s] == split for u in self._utterances[s]]

    def speakers_in(self, split: str) -> list[str]:
        """The speakers of one split, in numeric order."""
        return [s for s in self.speakers if self.split[s] == split]

    def __len__(self) -> int:
        return sum(len(u) for u in self._utterances.values())

    def __repr__(self) -> str:
        counts = ", ".join(f"{name} {len(self.speakers_in(name))}" for name in SPLITS)
        return (f"GridCorpus({str(self.root)!r}, kind={self.kind!r}, {len(self.speakers)} speakers ({counts}), "
                f"{len(self)} utterances)")
