"""Command line: ``python -m talkinghead <command>``.

Commands: ``synth`` (generate a SynthGRID corpus), ``say`` (render one SynthGRID clip of any text).
"""
from __future__ import annotations

import argparse
import sys


def _synth(args: argparse.Namespace) -> int:
    from talkinghead.data.synthgrid import generate_corpus

    corpus = generate_corpus(
        args.out,
        speakers=args.speakers,
        per_speaker=args.per_speaker,
        size=args.size,
        seed=args.seed,
        workers=args.workers,
        progress=not args.quiet,
    )
    stats = corpus["stats"]
    split = ", ".join(f"{k}: {' '.join(v) or '-'}" for k, v in corpus["split"].items())
    print(
        f"SynthGRID: {stats['utterances']} utterances, {stats['frames']} frames in {stats['seconds']:.1f} s "
        f"= {stats['frames_per_second']:.0f} frames/s rendered and encoded ({stats['workers']} workers) -> {args.out}\n"
        f"speakers by split: {split}"
    )
    return 0


def _say(args: argparse.Namespace) -> int:
    from talkinghead.data.synthgrid import render_text

    path, _, _ = render_text(args.text, args.out, speaker_seed=args.speaker, size=args.size, seed=args.seed, language=args.language)
    print(path)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m talkinghead", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("synth", help="generate a SynthGRID corpus (GRID layout, exact ground truth)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--speakers", type=int, default=8, help="number of speakers (split ~75/12.5/12.5 %% train/val/test)")
    p.add_argument("--per-speaker", type=int, default=20, help="utterances per speaker")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels (64–256)")
    p.add_argument("--seed", type=int, default=0, help="same seed, same corpus")
    p.add_argument("--workers", type=int, default=None, help="processes (default: one per core)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    p = sub.add_parser("say", help="render one SynthGRID clip of any text to an mp4")
    p.add_argument("text", help="what to say")
    p.add_argument("--out", required=True, help="output .mp4 path")
    p.add_argument("--speaker", type=int, default=0, help="identity seed")
    p.add_argument("--language", default="en-US", help="espeak-ng voice (e.g. en-US, en, fr, de)")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels (64–256)")
    p.add_argument("--seed", type=int, default=0, help="seed of blinks and head motion")
    p.set_defaults(func=_say)
    return parser


def main(argv: list[str] | None = None) -> int:
    from talkinghead.io import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
