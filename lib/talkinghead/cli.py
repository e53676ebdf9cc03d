"""Command line: ``python -m talkinghead <command>``.

Commands: ``synth`` (generate a SynthGRID corpus), ``prepare`` (aligned crops for training), ``train landmarks|syncnet|sda|stylegan2``,
``eval`` (metrics beside the static and ground-truth baselines), ``generate`` (photo + speech → mp4 with a pipeline), ``say`` (render one SynthGRID clip of any text),
``contact-sheet`` (the SynthGRID picture in docs/), ``bench`` (speed measurements for docs/BENCHMARKS.md).
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
        heldout_languages=tuple(args.heldout_languages.split(",")),
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


def _generate(args: argparse.Namespace) -> int:
    import time

    from talkinghead.pipelines import load_pipeline

    start = time.perf_counter()
    pipeline = load_pipeline(args.model, args.weights, device=args.device, detector=args.detector, max_seconds=args.max_seconds)
    path, extras = pipeline.to_video(args.image, args.audio, args.out, seed=args.seed, paste_back=not args.crop_only)
    timings = "  ".join(f"{k} {v:.2f} s" for k, v in extras["timings"].items())
    note = f" ({extras['n_faces']} faces found: animated the largest)" if extras["n_faces"] > 1 else ""
    print(f"{path}{note}\n{timings}  total {time.perf_counter() - start:.2f} s")
    return 0


def _contact_sheet(args: argparse.Namespace) -> int:
    from talkinghead.data.synthgrid.figures import contact_sheet

    print(contact_sheet(args.out, speakers=args.speakers, seed=args.seed, size=args.size))
    return 0


def _bench(args: argparse.Namespace) -> int:
    if args.seconds is None:
        args.seconds = 10.0 if args.what == "pipeline" else 60.0
    import platform
    import time

    import numpy as np

    if args.what == "dataset":
        from talkinghead.data.datasets import bench_dataset

        if not args.data:
            raise ValueError("bench dataset needs --data DIR: a prepared corpus (python -m talkinghead prepare)")
        return bench_dataset(args)
    if args.what == "pipeline":
        return _bench_pipeline(args)
    if args.what == "stylegan2":
        from talkinghead.stylegan2.bench import main as bench_stylegan2

        return bench_stylegan2(args)
    if args.what == "features":
        from talkinghead.audio.features import frame_features

        audio = np.random.default_rng(0).uniform(-0.5, 0.5, int(args.seconds * 16000)).astype(np.float32)
        for kind in ("raw", "mfcc", "mel"):
            frame_features(audio[:16000], kind)  # warm-up (librosa's first call builds its filters)
        for kind in ("raw", "mfcc", "mel", "all"):
            kinds = ("raw", "mfcc", "mel") if kind == "all" else (kind,)
            best = np.inf
            for _ in range(args.repeats):
                start = time.perf_counter()
                shapes = [frame_features(audio, k).shape for k in kinds]
                best = min(best, time.perf_counter() - start)
            print(f"{kind:5s} {args.seconds:.0f} s of audio: {best * 1000:7.1f} ms  {shapes}")
    else:  # render
        from talkinghead.data.synthgrid import FaceRenderer, make_speakers, plan_clip

        speaker = make_speakers(1, 0)[0]
        clip = plan_clip("place blue at f two now", speaker, seed=0)
        renderer = FaceRenderer(speaker.identity, size=args.size)
        start = time.perf_counter()
        for state in clip.states * args.repeats:
            renderer.render(state)
        seconds = time.perf_counter() - start
        print(f"render {args.size}x{args.size}: {clip.n_frames * args.repeats / seconds:.0f} frames/s on one core")
    print(f"machine: {platform.processor() or platform.machine()}, {__import__('os').cpu_count()} cores, Python {platform.python_version()}")
    return 0


def _bench_pipeline(args: argparse.Namespace) -> int:
    """Seconds of compute per second of speech for a ``--seconds`` clip (face detection, generation, paste-back,
    encoding), then peak memory while streaming a ``--long-seconds`` clip to an mp4."""
    import os
    import platform
    import resource
    import tempfile
    import time

    import numpy as np
    import skimage.data
    import torch

    from talkinghead.audio.tts import Voice, synthesize
    from talkinghead.pipelines import load_pipeline

    photo = skimage.data.astronaut()
    words = "bin blue at f two now place green by j seven soon lay red in q nine again set white with z one please"
    speech = synthesize(words, Voice(language="en-US")).audio
    reps = int(np.ceil(args.seconds * 16000 / len(speech)))
    audio = np.tile(speech, reps)[: int(args.seconds * 16000)]
    pipeline = load_pipeline(args.model, device="cpu", max_seconds=max(args.long_seconds, args.seconds) + 1)
    with tempfile.TemporaryDirectory() as tmp:
        pipeline.to_video(photo, audio[:16000], os.path.join(tmp, "warm.mp4"))  # warm-up: loads dlib, first-call costs
        for paste_back in (True, False):
            start = time.perf_counter()
            _, extras = pipeline.to_video(photo, audio, os.path.join(tmp, "a.mp4"), paste_back=paste_back)
            seconds = time.perf_counter() - start
            stages = "  ".join(f"{k} {v:.2f}" for k, v in extras["timings"].items())
            print(f"{args.model} {args.seconds:.0f} s clip, {'whole photo (512×512)' if paste_back else '128×128 crop'}: "
                  f"{seconds:.2f} s = {seconds / args.seconds:.3f} s per second of speech  [{stages}]  ({torch.get_num_threads()} threads)")
        if args.long_seconds:
            long_audio = np.tile(speech, int(np.ceil(args.long_seconds * 16000 / len(speech))))[: int(args.long_seconds * 16000)]
            before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            start = time.perf_counter()
            pipeline.to_video(photo, long_audio, os.path.join(tmp, "long.mp4"))
            seconds = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            print(f"{args.model} {args.long_seconds:.0f} s clip streamed to mp4: {seconds:.1f} s, peak RSS {peak:.0f} MB "
                  f"(before it {before:.0f} MB; the clip's frames alone would be {args.long_seconds * 25 * 512 * 512 * 3 / 1e6:.0f} MB)")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}")
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
    p.add_argument("--heldout-languages", default="en-GB-scotland,en-029,en-US-nyc",
                   help="espeak-ng voices of the val/test speakers, comma-separated (e.g. fr,de for unseen languages)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=_synth)

    from talkinghead.data.prepare import add_prepare_parser
    from talkinghead.metrics.evaluate import add_eval_parser
    from talkinghead.nn.landmark_net import add_train_landmarks_parser
    from talkinghead.nn.syncnet import add_train_syncnet_parser

    add_prepare_parser(sub)
    train = sub.add_parser("train", help="train a network on a prepared corpus").add_subparsers(dest="what", required=True)
    add_train_landmarks_parser(train)
    add_train_syncnet_parser(train)
    from talkinghead.models.sda import add_train_sda_parser
    from talkinghead.stylegan2.training import add_train_stylegan2_parser

    add_train_sda_parser(train)
    add_train_stylegan2_parser(train)
    from talkinghead.inversion.encoder import add_train_encoder_parser

    add_train_encoder_parser(train)
    add_eval_parser(sub)
    from talkinghead.training.cli import add_export_parser

    add_export_parser(sub)
    from talkinghead.stylegan2.convert import add_convert_parser

    add_convert_parser(sub)
    from talkinghead.stylegan2.ops._build import add_build_ops_parser

    add_build_ops_parser(sub)

    p = sub.add_parser("generate", help="animate the face in a photo with speech: photo + audio -> mp4")
    p.add_argument("--model", default="sda", help="pipeline (python -c 'import talkinghead; print(talkinghead.list_pipelines())')")
    p.add_argument("--image", required=True, help="face photo (jpg, png, …)")
    p.add_argument("--audio", required=True, help="speech (wav, mp3, m4a, or a video's sound track)")
    p.add_argument("--out", required=True, help="output .mp4")
    p.add_argument("--weights", default=None, help="weights name or .safetensors path (default: the shipped ones)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--crop-only", action="store_true", help="write the aligned face crop, not the whole photo")
    p.add_argument("--detector", default="auto", help="face landmarks: auto (dlib), dlib, fan, synthgrid (an aligned crop)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--max-seconds", type=float, default=600.0, help="longest speech accepted")
    p.set_defaults(func=_generate)

    p = sub.add_parser("say", help="render one SynthGRID clip of any text to an mp4")
    p.add_argument("text", help="what to say")
    p.add_argument("--out", required=True, help="output .mp4 path")
    p.add_argument("--speaker", type=int, default=0, help="identity seed")
    p.add_argument("--language", default="en-US", help="espeak-ng voice (e.g. en-US, en, fr, de)")
    p.add_argument("--size", type=int, default=128, help="frame size in pixels (64–256)")
    p.add_argument("--seed", type=int, default=0, help="seed of blinks and head motion")
    p.set_defaults(func=_say)

    p = sub.add_parser("contact-sheet", help="draw the SynthGRID contact sheet (PNG)")
    p.add_argument("--out", default="docs/synthgrid_contact_sheet.png", help="output .png path")
    p.add_argument("--speakers", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=128)
    p.set_defaults(func=_contact_sheet)

    p = sub.add_parser("bench", help="measure speed: audio features, face rendering, the dataset, a whole pipeline, "
                                     "a StyleGAN2 generator")
    p.add_argument("what", choices=["features", "render", "dataset", "pipeline", "stylegan2"])
    p.add_argument("--model", default="sda", help="pipeline to time (pipeline benchmark)")
    p.add_argument("--long-seconds", type=float, default=600.0, help="clip length for the memory figure (pipeline benchmark; 0: skip)")
    p.add_argument("--data", default=None, help="prepared corpus for the dataset benchmark")
    p.add_argument("--split", default="train")
    p.add_argument("--T", type=int, default=16, help="frames per window (dataset benchmark)")
    p.add_argument("--features", default="raw", help="audio features of the dataset benchmark: raw, mfcc or mel")
    p.add_argument("--batches", type=int, default=30, help="batches of 32 timed (dataset benchmark)")
    p.add_argument("--seconds", type=float, default=None, help="audio length (features: 60 s, pipeline: 10 s)")
    p.add_argument("--size", type=int, default=128, help="frame size for the render benchmark")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--presets", default="synth128,ffhq256,ffhq1024", help="StyleGAN2 presets (stylegan2 benchmark)")
    p.add_argument("--batch", type=int, default=32, help="images per batch (stylegan2 benchmark)")
    p.add_argument("--backward", action="store_true", help="time forward + backward (stylegan2 benchmark)")
    p.add_argument("--device", default=None, help="cuda or cpu (stylegan2 benchmark; default: cuda when present)")
    p.add_argument("--peak-tflops", type=float, default=None, help="the device's peak, for the floor (stylegan2 benchmark)")
    p.set_defaults(func=_bench)
    return parser


def main(argv: list[str] | None = None) -> int:
    from talkinghead.io import InputError

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (InputError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
