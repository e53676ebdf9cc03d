"""The evaluation harness: every metric over a split of a prepared corpus, for any system, beside two baselines.

    python -m talkinghead eval --data data/prepared128 --split test --model NAME_OR_FOLDER --out docs/eval_test

For every clip of the split (streamed one at a time, so memory does not grow with the split), every system makes
frames from the clip's identity frame (its first frame) and audio, and is scored against the real frames:

- image: PSNR and SSIM over the whole crop and its upper half (eyes, brows: identity), CPBD sharpness over the
  whole crop and its lower half (mouth and jaw: where SDA's L1 acts and the papers' "adversarial loss sharpens"
  claim is meant; undefined below 128 px crops, whose half is smaller than CPBD's 64 px block);
- landmarks: LMD over the mouth and over the whole face, mouth-opening correlation, blink rate and duration;
- sync: LSE-D, LSE-C and the AV offset (and whether it is 0 ± 1 frame) from our SyncNet.

Landmarks of the generated frames *and* of the reference frames are measured by the same SynthGRID landmark
network, so the network's own bias cancels in LMD (the ``ground truth`` row has LMD 0 by construction). The
network's own error is reported too: ``lmd_exact`` compares its landmarks with the exact SynthGRID landmarks
of the reference frames, which for ``ground truth`` is the detector's error and bounds what LMD can resolve; the
report also gives the blink rate and duration of the real frames by their exact landmarks, which the ground
truth row's blink figures should match. ("Exact" are the landmarks the corpus was prepared with: SynthGRID's own,
or a detector's for a real corpus, named in the report as ``reference_landmarks``.)

Frame 0 is the identity frame every system is given (``static`` repeats it), so the reference-based per-frame
metrics (PSNR, SSIM, LMD) score frames 1 … T-1; sequence metrics (sync, blinks, mouth correlation) and CPBD use
every frame. Per clip, per-frame values are averaged; the table gives mean ± std over clips and the number of
clips with a value (blink duration is undefined for a clip without blinks).

Systems (``FrameSource``: ``EvalClip -> frames (T, S, S, 3) uint8``):
``SYSTEMS["static"]`` (the identity frame repeated), ``SYSTEMS["ground truth"]`` (the real frames, the reference
for sync and blinks), any generator ``System(identity, audio, n_frames) -> frames`` wrapped by ``from_system``
(pipelines add themselves with ``register_system``), and a folder of videos ``<folder>/<speaker>/<utt>.mp4``
through ``from_folder``. Systems are scored with the corpus audio of each clip.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from talkinghead.io import write_text_atomic
from talkinghead.metrics.image import CPBD_BLOCK, PSNR_CAP, cpbd, crop_region, psnr, ssim
from talkinghead.metrics.landmarks import FACE, MOUTH, blink_metrics, lmd, mouth_opening_correlation

__all__ = [
    "System", "FrameSource", "EvalClip", "METRICS", "BASELINES", "SYSTEMS", "static", "ground_truth", "from_system",
    "from_folder", "register_system", "resolve_system", "load_metric_nets", "score_clip", "evaluate", "markdown_table",
    "means_table", "write_report", "add_eval_parser", "main_eval",
]

System = Callable[[np.ndarray, np.ndarray, int], np.ndarray]  # (identity (S,S,3) uint8, audio (N,) float32, n_frames) -> (T,S,S,3) uint8


@dataclass(frozen=True)
class EvalClip:
    """One clip of the split, as the harness hands it to a ``FrameSource``."""

    speaker: str
    utt: str
    identity: np.ndarray  # (S, S, 3) uint8: the clip's first frame, every system's input
    audio: np.ndarray  # (n_frames * 640,) float32, 16 kHz
    frames: np.ndarray  # (T, S, S, 3) uint8: the real frames (only the ground truth row may look at them)
    landmarks: np.ndarray  # (T, 68, 2) exact landmarks of the real frames, crop pixels

    @property
    def n_frames(self) -> int:
        return len(self.frames)


FrameSource = Callable[[EvalClip], np.ndarray]


@dataclass(frozen=True)
class Metric:
    label: str  # column header
    higher_is_better: bool | None  # None: neither (a signed offset, a rate to compare with ground truth)
    digits: int
    table: str  # which Markdown table: "image" or "motion"
    spread: bool = True  # show ± std (not for a share of clips, whose std says nothing more)


METRICS: dict[str, Metric] = {
    "psnr": Metric("PSNR (dB)", True, 2, "image"),
    "ssim": Metric("SSIM", True, 3, "image"),
    "psnr_upper": Metric("PSNR upper (dB)", True, 2, "image"),
    "ssim_upper": Metric("SSIM upper", True, 3, "image"),
    "cpbd": Metric("CPBD", True, 3, "image"),
    "cpbd_lower": Metric("CPBD lower", True, 3, "image"),
    "lmd": Metric("LMD mouth (px)", False, 2, "motion"),
    "lmd_face": Metric("LMD face (px)", False, 2, "motion"),
    "lmd_exact": Metric("LMD vs exact (px)", False, 2, "motion"),
    "mouth_corr": Metric("mouth corr", True, 2, "motion"),
    "lse_d": Metric("LSE-D", False, 3, "motion"),
    "lse_c": Metric("LSE-C", True, 3, "motion"),
    "offset": Metric("AV offset (frames)", None, 1, "motion"),
    "offset_ok": Metric("offset 0±1 (%)", True, 0, "motion", spread=False),
    "blink_rate": Metric("blinks/s", None, 3, "motion"),
    "blink_duration": Metric("blink (s)", None, 3, "motion"),
}
BASELINES = ("ground truth", "static")


# --------------------------------------------------------------------------- systems


def static(identity: np.ndarray, audio: np.ndarray, n_frames: int) -> np.ndarray:
    """The ``static`` baseline: the identity frame repeated ``n_frames`` times, (T, S, S, 3) uint8."""
    return np.repeat(np.asarray(identity)[None], n_frames, axis=0)


def ground_truth(clip: EvalClip) -> np.ndarray:
    """The ``ground truth`` row: the clip's real frames."""
    return clip.frames


def from_system(system: System) -> FrameSource:
    """A generator ``system(identity (S,S,3) uint8, audio (N,) float32, n_frames) -> (T,S,S,3) uint8`` as a frame
    source; it sees the identity frame and the audio only, never the real frames."""
    def source(clip: EvalClip) -> np.ndarray:
        return system(clip.identity, clip.audio, clip.n_frames)

    return source


def from_folder(folder: str | os.PathLike) -> FrameSource:
    """Frames read from ``<folder>/<speaker>/<utt>.mp4``: S×S aligned crops at 25 fps, like the prepared corpus."""
    folder = Path(folder)

    def source(clip: EvalClip) -> np.ndarray:
        from talkinghead.io import InputError, read_video

        path = folder / clip.speaker / f"{clip.utt}.mp4"
        if not path.is_file():
            raise InputError(f"{path} is missing: a folder of generated videos needs one <speaker>/<utt>.mp4 per clip of the split")
        frames, _, _ = read_video(path)
        size = clip.identity.shape[0]
        if frames.shape[1:3] != (size, size):
            raise InputError(
                f"{path} is {frames.shape[2]}×{frames.shape[1]}: the harness compares {size}×{size} aligned face crops "
                f"(talkinghead.face.align's canonical crop, as in the prepared corpus); save the model's crops before "
                "paste-back, or warp each frame with face.align.warp"
            )
        return frames

    return source


SYSTEMS: dict[str, FrameSource] = {"ground truth": ground_truth, "static": from_system(static)}


def register_system(name: str, system: System) -> None:
    """Make a generator available to ``eval --model name`` (pipelines register here)."""
    SYSTEMS[name] = from_system(system)


def resolve_system(name: str) -> FrameSource:
    """A registered name (``SYSTEMS``) or a folder of generated videos."""
    from talkinghead.io import InputError

    if name in SYSTEMS:
        return SYSTEMS[name]
    if Path(name).is_dir():
        return from_folder(name)
    raise InputError(f"unknown system {name!r}: use one of {', '.join(SYSTEMS)} or a folder of videos <folder>/<speaker>/<utt>.mp4")


# --------------------------------------------------------------------------- scoring


def load_metric_nets(*, device: str = "cpu", landmark_weights: str | None = None, syncnet_weights: str | None = None):
    """The shipped landmark network and SyncNet, in eval mode on ``device``.

    Raises:
        talkinghead.hub.WeightsError: a weights file is missing; the message names it and how to make it.
    """
    from talkinghead.hub import WeightsError
    from talkinghead.nn import landmark_net, syncnet

    nets = []
    for module, cls, name, command in (
        (landmark_net, landmark_net.LandmarkNet, landmark_weights, "train landmarks"),
        (syncnet, syncnet.SyncNet, syncnet_weights, "train syncnet"),
    ):
        name = name or module.WEIGHTS_NAME
        try:
            nets.append(cls.from_pretrained(name, device=device))
        except WeightsError as err:
            raise WeightsError(f"the eval harness needs {name}: {err} (make it with `python -m talkinghead {command} --data DIR`)") from err
    return tuple(nets)


def _cpbd_lower(frames: np.ndarray) -> float:
    """CPBD of the lower half of each frame, averaged; NaN when the half is smaller than CPBD's block."""
    lower = crop_region(frames, "lower")
    if min(lower.shape[-3:-1]) < CPBD_BLOCK:
        return float("nan")
    return float(np.mean(cpbd(lower)))


def score_clip(frames: np.ndarray, clip: EvalClip, *, reference_lmk: np.ndarray, landmark_net, sync_net,
               lmk: np.ndarray | None = None, fps: float = 25.0) -> dict[str, float]:
    """Every metric of one system on one clip.

    Args:
        frames: (T, S, S, 3) uint8 frames of the system, T = the clip's frame count.
        clip: the clip (reference frames, exact landmarks, audio).
        reference_lmk: (T, 68, 2) landmarks of the reference frames by ``landmark_net``.
        landmark_net: has ``predict(uint8 (N, S, S, 3)) -> (N, 68, 2)``.
        sync_net: a SyncNet for ``metrics.sync.sync_scores``.
        lmk: (T, 68, 2) landmarks of ``frames`` when already measured (the ground truth row), else measured here.
    Returns:
        {metric name (``METRICS``): value}; NaN where undefined (blink duration without blinks).
    """
    from talkinghead.metrics.sync import sync_scores

    lmk = landmark_net.predict(frames) if lmk is None else lmk
    scored = slice(1, None)  # frame 0 is the identity frame every system was given
    reference = clip.frames[scored]
    sync = sync_scores(sync_net, frames, clip.audio)
    return {
        "psnr": float(np.mean(psnr(frames[scored], reference))),
        "ssim": float(np.mean(ssim(frames[scored], reference))),
        "psnr_upper": float(np.mean(psnr(frames[scored], reference, region="upper"))),
        "ssim_upper": float(np.mean(ssim(frames[scored], reference, region="upper"))),
        "cpbd": float(np.mean(cpbd(frames))),
        "cpbd_lower": _cpbd_lower(frames),
        "lmd": lmd(lmk[scored], reference_lmk[scored], points=MOUTH),
        "lmd_face": lmd(lmk[scored], reference_lmk[scored], points=FACE),
        "lmd_exact": lmd(lmk[scored], clip.landmarks[scored], points=MOUTH),
        "mouth_corr": mouth_opening_correlation(lmk, reference_lmk),
        "lse_d": sync.lse_d,
        "lse_c": sync.lse_c,
        "offset": float(sync.offset),
        "offset_ok": 100.0 * (abs(sync.offset) <= 1),
        **{k: v for k, v in blink_metrics(lmk, fps=fps).items() if k in METRICS},
    }


def _frames_of(source: FrameSource, clip: EvalClip, name: str) -> np.ndarray:
    from talkinghead.io import InputError

    frames = np.asarray(source(clip))
    expected = (clip.n_frames, *clip.frames.shape[1:])
    if frames.dtype != np.uint8 or frames.shape != expected:
        raise InputError(f"system {name!r} gave {frames.dtype} frames of shape {frames.shape} for {clip.speaker}/{clip.utt}: "
                         f"it must return uint8 {expected}, one aligned crop per frame of the clip")
    return frames


def _summary(values: list[float]) -> dict[str, float | int | None]:
    finite = np.array([v for v in values if np.isfinite(v)])
    if not len(finite):
        return {"mean": None, "std": None, "n": 0}
    return {"mean": float(finite.mean()), "std": float(finite.std()), "n": int(len(finite))}


def evaluate(
    data,
    *,
    split: str = "test",
    systems: Mapping[str, FrameSource] | None = None,
    landmark_net=None,
    sync_net=None,
    max_clips: int | None = None,
    progress: bool = True,
) -> dict:
    """Score the baselines and ``systems`` on every clip of a split.

    Args:
        data: a ``PreparedCorpus`` or its folder.
        split: "train", "val" or "test".
        systems: name -> ``FrameSource`` to score beside the baselines ``ground truth`` and ``static`` (always in).
        landmark_net, sync_net: the measuring networks; default the shipped ones (``load_metric_nets``, CPU).
        max_clips: score only the first clips of the split (quick checks).
        progress: show a progress bar over clips.
    Returns:
        the report: ``{"data", "split", "size", "n_clips", "seconds", "psnr_cap", "metrics", "systems": {name:
        {metric: {"mean", "std", "n"}}}, "exact": blink rate and duration of the real frames by their exact
        landmarks, "clips": [{"speaker", "utt", "n_frames", "scores": {name: {metric: value}}, "exact"}]}``.
    """
    from tqdm.auto import tqdm

    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.io import InputError

    corpus = data if isinstance(data, PreparedCorpus) else PreparedCorpus.open(data)
    if landmark_net is None or sync_net is None:
        shipped_landmark_net, shipped_sync_net = load_metric_nets()
        landmark_net = shipped_landmark_net if landmark_net is None else landmark_net
        sync_net = shipped_sync_net if sync_net is None else sync_net
    clips = corpus.clips(split)[:max_clips]
    if not clips:
        raise InputError(f"{corpus.root} has no clips in split {split!r}: use one of "
                         f"{', '.join(sorted({c['split'] for c in corpus.meta['clips']}))}")
    sources = {name: SYSTEMS[name] for name in BASELINES} | dict(systems or {})
    fps = float(corpus.meta["fps"])
    per_clip, start = [], time.perf_counter()
    for meta in tqdm(clips, desc=f"eval {split}", unit="clip", disable=not progress):
        reference = np.asarray(corpus.clip_frames(meta))  # one clip in memory at a time
        clip = EvalClip(meta["speaker"], meta["utt"], reference[0], corpus.clip_audio(meta), reference,
                        np.asarray(corpus.clip_landmarks(meta)))
        # Every system's frames first: a system that fails does so before any scoring.
        outputs = {name: _frames_of(source, clip, name) for name, source in sources.items()}
        reference_lmk = landmark_net.predict(reference)
        scores = {}
        for name, frames in outputs.items():
            # The ground truth row's frames are the reference: reuse their landmarks instead of measuring twice.
            lmk = reference_lmk if frames is reference else None
            scores[name] = score_clip(frames, clip, reference_lmk=reference_lmk, landmark_net=landmark_net,
                                      sync_net=sync_net, lmk=lmk, fps=fps)
        # Blinks of the real frames by their exact landmarks: what the landmark network's blink counts should find.
        exact_blinks = blink_metrics(clip.landmarks, fps=fps)
        per_clip.append({"speaker": clip.speaker, "utt": clip.utt, "n_frames": clip.n_frames, "scores": scores,
                         "exact": {k: exact_blinks[k] for k in ("blink_rate", "blink_duration")}})
    return {
        "data": str(corpus.root),
        "split": split,
        "size": int(corpus.meta["size"]),
        "n_clips": len(per_clip),
        "seconds": round(time.perf_counter() - start, 1),
        "psnr_cap": PSNR_CAP,
        "reference_landmarks": corpus.meta.get("landmarks", "unknown"),
        "metrics": {k: m.label for k, m in METRICS.items()},
        "systems": {
            name: {k: _summary([c["scores"][name][k] for c in per_clip]) for k in METRICS} for name in sources
        },
        "exact": {k: _summary([c["exact"][k] for c in per_clip]) for k in ("blink_rate", "blink_duration")},
        "clips": per_clip,
    }


# --------------------------------------------------------------------------- report


def _cell(summary: dict, metric: Metric) -> str:
    if summary["mean"] is None:
        return "–"
    mean = round(summary["mean"], metric.digits) + 0.0  # + 0.0: no "-0.0"
    if not metric.spread:
        return f"{mean:.{metric.digits}f}"
    return f"{mean:.{metric.digits}f} ± {summary['std']:.{metric.digits}f}"


def means_table(report: dict, *, rename: dict[str, str] | None = None) -> dict[str, dict[str, float | None]]:
    """``{system: {metric: mean}}`` of a report, rounded to 4 decimals (None where undefined), for manifests;
    ``rename`` maps system names (e.g. ``"sda=path/file.safetensors"`` → ``"sda"``)."""
    rename = rename or {}
    return {rename.get(name, name): {k: None if v["mean"] is None else round(v["mean"], 4) for k, v in summary.items()}
            for name, summary in report["systems"].items()}


def markdown_table(report: dict) -> str:
    """The report as Markdown: an image-quality table and a motion/sync table, one row per system, mean ± std
    over clips; ↑ / ↓ mark the better direction."""
    lines = [
        f"Split `{report['split']}` of `{report['data']}`: {report['n_clips']} clips, {report['size']}×{report['size']} crops "
        f"(PSNR of identical frames capped at {report['psnr_cap']:.0f} dB; mean ± std over clips).",
    ]
    if report.get("command"):
        lines += ["", f"    {report['command']}"]
    for table, title in (("image", "Image quality"), ("motion", "Motion and sync")):
        keys = [k for k, m in METRICS.items() if m.table == table]
        arrows = {True: " ↑", False: " ↓", None: ""}
        header = ["system", "clips"] + [METRICS[k].label + arrows[METRICS[k].higher_is_better] for k in keys]
        lines += ["", f"**{title}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        for name, summaries in report["systems"].items():
            cells = [name, str(report["n_clips"])] + [_cell(summaries[k], METRICS[k]) for k in keys]
            lines.append("| " + " | ".join(cells) + " |")
    n_blinks = {name: s["blink_duration"]["n"] for name, s in report["systems"].items()}
    exact = report["exact"]
    exact_duration = "–" if exact["blink_duration"]["mean"] is None else f"{exact['blink_duration']['mean']:.3f} s"
    lines += [
        "",
        "LMD: mean distance of the 20 mouth points (face: all 68) between the system's frames and the real ones, both "
        "measured by the SynthGRID landmark network, frames 1 … T-1; LMD vs exact: the network's mouth points against "
        "the exact SynthGRID landmarks (for ground truth: the network's own error). Offset 0±1: share of clips whose AV "
        "offset is within one frame. Blink duration averages the clips with at least one blink "
        f"({', '.join(f'{k}: {v}' for k, v in n_blinks.items())}). The exact landmarks of the real frames give "
        f"{exact['blink_rate']['mean']:.3f} blinks/s and {exact_duration} per blink ({exact['blink_duration']['n']} clips "
        "with blinks): the ground truth row's blink figures should come close.",
    ]
    return "\n".join(lines) + "\n"


def _json_safe(value):
    if isinstance(value, float) and not np.isfinite(value):
        return None  # JSON has no NaN
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_json_safe(v) for v in value]
    return value


def write_report(report: dict, out: str | os.PathLike) -> tuple[Path, Path]:
    """Write ``<out>.json`` (everything, per clip included) and ``<out>.md`` (the tables), each atomically."""
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    json_path, md_path = out.with_name(out.name + ".json"), out.with_name(out.name + ".md")
    write_text_atomic(json_path, json.dumps(_json_safe(report), indent=1) + "\n")
    write_text_atomic(md_path, markdown_table(report))
    return json_path, md_path


# --------------------------------------------------------------------------- command line


def add_eval_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``python -m talkinghead eval``: add the subcommand to the CLI's subparsers."""
    p = sub.add_parser("eval", help="score systems on a prepared split: PSNR, SSIM, CPBD, LMD, LSE-D/C, AV offset, blinks")
    p.add_argument("--data", required=True, help="a prepared corpus folder (from `prepare`)")
    p.add_argument("--split", default="test", help="train, val or test (held-out speakers)")
    p.add_argument("--model", action="append", default=[], metavar="NAME",
                   help=f"a system to score beside the baselines: a registered name ({', '.join(SYSTEMS)}), a pipeline "
                        "(sda, or sda=WEIGHTS.safetensors) or a folder of videos <folder>/<speaker>/<utt>.mp4 of aligned "
                        "crops; repeat for several")
    p.add_argument("--out", default=None, help="output path without extension: writes OUT.json and OUT.md (default docs/eval_SPLIT)")
    p.add_argument("--max-clips", type=int, default=None, help="only the first N clips of the split (quick checks)")
    p.add_argument("--device", default="cpu", help="device of the measuring networks (cpu, cuda, …)")
    p.add_argument("--landmark-weights", default=None, help="landmark network weights (default: weights/landmarks_synthgrid.safetensors)")
    p.add_argument("--syncnet-weights", default=None, help="SyncNet weights (default: weights/syncnet_synthgrid.safetensors)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=main_eval)
    return p


def _cli_system(spec: str) -> FrameSource:
    """A system named on the command line: a registered name, a folder of videos, or a pipeline — ``sda`` (its
    shipped weights) or ``sda=path/to/weights.safetensors`` — fed the corpus's aligned identity crop directly."""
    name, _, weights = spec.partition("=")
    if spec not in SYSTEMS and not Path(spec).is_dir():
        from talkinghead.pipelines import list_pipelines, load_pipeline

        if name in list_pipelines():
            pipeline = load_pipeline(name, weights or None)

            def system(identity: np.ndarray, audio: np.ndarray, n_frames: int) -> np.ndarray:
                return np.concatenate(list(pipeline.generate_crops(identity, audio, n_frames, seed=0)))

            return from_system(system)
    return resolve_system(spec)


def main_eval(args: argparse.Namespace) -> int:
    """Run the harness from parsed ``eval`` arguments; print the tables and where they were written."""
    from talkinghead.hub import WeightsError

    systems = {name: _cli_system(name) for name in args.model}
    try:
        landmark_net, sync_net = load_metric_nets(device=args.device, landmark_weights=args.landmark_weights,
                                                  syncnet_weights=args.syncnet_weights)
    except WeightsError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = evaluate(args.data, split=args.split, systems=systems, landmark_net=landmark_net, sync_net=sync_net,
                      max_clips=args.max_clips, progress=not args.quiet)
    options = [f"--data {args.data}", f"--split {args.split}", *(f"--model '{m}'" for m in args.model)]
    if args.max_clips is not None:
        options.append(f"--max-clips {args.max_clips}")
    if args.out:
        options.append(f"--out {args.out}")
    report["command"] = "python -m talkinghead eval " + " ".join(options)
    json_path, md_path = write_report(report, args.out or f"docs/eval_{args.split}")
    print(markdown_table(report))
    print(f"wrote {json_path} and {md_path} ({report['seconds']} s)")
    return 0
