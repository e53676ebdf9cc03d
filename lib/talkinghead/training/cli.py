"""The command line every GAN architecture shares: ``python -m talkinghead train <arch> --config … --data … --out …``.

An architecture registers a subcommand with ``add_fit_parser(sub, name, presets=…, make_task=…)``; the options
below map one to one onto ``training.fit``. ``--set field=value`` replaces any field of the preset (a number,
a tuple written ``16,32,64``, or a string), and the run's config is stored with every checkpoint.
``--task-set name=value`` passes a keyword argument to the task (training settings that are not part of the
network's config, e.g. StyleGAN2's ``r1_gamma``); tasks checkpoint them as ``task.settings``.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

__all__ = ["add_fit_parser", "parse_overrides", "parse_task_settings", "run_record", "total_steps"]


def parse_overrides(items: list[str], config_type) -> dict:
    """``["lr_G=2e-4", "T=24", "discriminators=frame"]`` → typed values for ``config_type``'s fields."""
    fields = {f.name: f for f in dataclasses.fields(config_type)}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in fields:
            raise ValueError(f"--set {item!r}: use FIELD=VALUE with FIELD one of {', '.join(fields)}")
        default = getattr(config_type(), key)
        if isinstance(default, tuple):
            parts = [p for p in text.split(",") if p.strip()]
            value = tuple(ast.literal_eval(p) if p.strip()[0].isdigit() or p.strip()[0] in "-." else p.strip() for p in parts)
        elif isinstance(default, str):
            value = text
        else:
            value = type(default)(ast.literal_eval(text))
        out[key] = value
    return out


def parse_task_settings(items: list[str], make_task: Callable) -> dict:
    """``["r1_gamma=1", "augment=color,cutout"]`` → keyword arguments of ``make_task``, typed like their defaults
    (a default of None takes a Python literal, or the text)."""
    import inspect

    params = {k: p for k, p in inspect.signature(make_task).parameters.items() if p.kind is p.KEYWORD_ONLY}
    out = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or key not in params:
            raise ValueError(f"--task-set {item!r}: use NAME=VALUE with NAME one of {', '.join(params) or '(none)'}")
        default = params[key].default
        if isinstance(default, str):
            value = text
        elif isinstance(default, tuple):
            value = tuple(ast.literal_eval(p) for p in text.split(",") if p.strip())
        else:
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                value = text
            if isinstance(default, (int, float)) and not isinstance(default, bool):
                value = type(default)(value)
        out[key] = value
    return out


def run_record(result, args: argparse.Namespace) -> dict:
    """How a shipped model was trained, for its manifest entry: batch, accumulation, seed, EMA, device, seconds."""
    import torch

    return {"batch_size": args.batch_size, "accum": args.accum, "seed": args.seed, "ema_decay": args.ema_decay,
            "device": "cuda" if torch.cuda.is_available() and not args.cpu else "cpu",
            "seconds": result.history[-1]["seconds"] if result.history else None,
            **({"task_settings": args.task_settings} if getattr(args, "task_settings", None) else {}),
            **({"init_from": _init_record(result.init_from)} if getattr(result, "init_from", None) else {})}


def _init_record(init: dict) -> dict:
    """A warm start for a manifest: the source checkpoint, its step, the steps behind it and its config preset."""
    return {"checkpoint": init["checkpoint"], "step": init["step"], "steps_before": total_steps(0, init),
            "config": (init.get("config") or {}).get("name")}


def total_steps(step: int, init: dict | None) -> int:
    """Every optimisation step behind weights: this run's, plus those of the run(s) it was warm-started from."""
    return step + int((init or {}).get("steps_before", (init or {}).get("step", 0)))


def add_fit_parser(
    sub: argparse._SubParsersAction,
    name: str,
    *,
    help: str,
    config_type,
    make_task: Callable,
    default_config: str = "synth128",
    ship: Callable | None = None,
) -> argparse.ArgumentParser:
    """Add ``name`` to ``python -m talkinghead train`` with the shared options; ``make_task(cfg)`` builds the task
    and ``ship(result, args)`` (optional, with ``--ship``) measures and writes the weights."""
    p = sub.add_parser(name, help=help)
    p.add_argument("--data", required=True, help="prepared corpus (python -m talkinghead prepare)")
    p.add_argument("--out", required=True, help="run folder: log.jsonl, checkpoints/, samples/")
    p.add_argument("--config", default=default_config, help=f"preset ({default_config}, tiny, paper, …)")
    p.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE", help="replace a field of the preset (repeatable)")
    p.add_argument("--task-set", action="append", default=[], metavar="NAME=VALUE",
                   help="a training setting of the task outside the config (repeatable; see the task's docstring)")
    p.add_argument("--steps", type=int, required=True, help="total optimisation steps")
    p.add_argument("--batch-size", type=int, default=8, help="windows per micro-batch per process")
    p.add_argument("--accum", type=int, default=1, help="micro-batches per optimiser step")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mixed-precision", default="no", choices=["no", "bf16", "fp16"], help="GPU only")
    p.add_argument("--grad-clip", type=float, default=None)
    p.add_argument("--ema-decay", type=float, default=0.999)
    p.add_argument("--eval-every", type=int, default=0, help="steps between evaluations on --eval-clips val clips (0: never)")
    p.add_argument("--eval-clips", type=int, default=8)
    p.add_argument("--sample-every", type=int, default=0, help="steps between sample videos (0: never)")
    p.add_argument("--checkpoint-every", type=int, default=500)
    p.add_argument("--log-every", type=int, default=10)
    p.add_argument("--max-seconds", type=float, default=None, help="stop (with a checkpoint) after this long; resume later")
    p.add_argument("--no-resume", action="store_true", help="start over even if --out has a checkpoint")
    p.add_argument("--init-from", default=None, metavar="RUN",
                   help="start a new run from another run's networks and EMA (its --out or a checkpoint folder); "
                        "fresh optimisers, step 0; --set may change what keeps the shapes (e.g. T)")
    p.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    p.add_argument("--cpu", action="store_true", help="train on the CPU even where a GPU is present")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    if ship is not None:
        p.add_argument("--ship", default=None, metavar="NAME", help="when done, measure on the test split and write weights/NAME")
    p.set_defaults(func=lambda args: _run(args, config_type=config_type, make_task=make_task, ship=ship))
    return p


def _run(args: argparse.Namespace, *, config_type, make_task: Callable, ship: Callable | None) -> int:
    import torch

    from talkinghead.training import fit

    if args.threads:
        torch.set_num_threads(args.threads)
    cfg = config_type.preset(args.config, **parse_overrides(args.set, config_type))
    print("config:", json.dumps(cfg.to_dict()), flush=True)
    task = make_task(cfg, **parse_task_settings(args.task_set, make_task))
    args.task_settings = getattr(task, "settings", {})
    if args.task_settings:
        print("task settings:", json.dumps(args.task_settings), flush=True)
    result = fit(
        task, args.data, out=args.out, steps=args.steps, batch_size=args.batch_size, accum=args.accum,
        seed=args.seed, mixed_precision=args.mixed_precision, grad_clip=args.grad_clip, ema_decay=args.ema_decay,
        eval_every=args.eval_every, eval_clips=args.eval_clips, sample_every=args.sample_every,
        checkpoint_every=args.checkpoint_every, log_every=args.log_every, resume=not args.no_resume,
        init_from=args.init_from, max_seconds=args.max_seconds, progress=not args.quiet, cpu=args.cpu,
        callbacks=[lambda row: print(json.dumps(row), flush=True)] if args.quiet else (),
    )
    print(f"stopped at step {result.step}; checkpoint {result.checkpoint}")
    if ship is not None and getattr(args, "ship", None):
        if result.step < args.steps:
            print("not shipping: the run stopped before --steps; resume it first")
            return 1
        ship(result, args, cfg)
    return 0


def add_export_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """``python -m talkinghead export RUN OUT.safetensors``: the EMA generator of a run's latest checkpoint as
    shippable weights (fp16, manifest entry with the exact config and steps beside the file; no measurements)."""
    p = sub.add_parser("export", help="a training run's EMA generator as weights (.safetensors + manifest entry)")
    p.add_argument("run", help="run folder (the --out of `train`)")
    p.add_argument("out", help="output .safetensors path; its folder gets a manifest.json entry")
    p.add_argument("--metrics", default=None, metavar="REPORT.json",
                   help="the `python -m talkinghead eval` report of these exact weights (`--model ARCH=FILE`, FILE "
                        "exported from the same checkpoint): its table goes into the manifest entry")
    p.set_defaults(func=_export)
    return p


def _export(args: argparse.Namespace) -> int:
    from safetensors.torch import load_file

    from talkinghead.hub import save_weights
    from talkinghead.io import InputError
    from talkinghead.training import latest_checkpoint

    checkpoint = latest_checkpoint(args.run)
    if checkpoint is None:
        raise InputError(f"{args.run} has no checkpoint: give the --out folder of a `python -m talkinghead train` run")
    state = json.loads((checkpoint / "state.json").read_text())
    weights = {k[len("G_ema."):]: v for k, v in load_file(str(checkpoint / "nets.safetensors")).items() if k.startswith("G_ema.")}
    out = Path(args.out)
    metrics, data = {}, f"{state['data']['root']} (train split)"
    if args.metrics:
        metrics, measured = _report_table(args.metrics, weights)
        data = f"{data}, {measured}"
    path = save_weights(weights, out.name, root=out.parent, config=state["config"].get("name"), config_dict=state["config"],
                        steps=total_steps(state["step"], state.get("init_from")), data=data,
                        training={**{k: state.get(k) for k in ("task", "batch_size", "accum", "seed", "world")},
                                  **({"init_from": _init_record(state["init_from"])} if state.get("init_from") else {})},
                        metrics=metrics)
    print(f"{checkpoint} (step {state['step']}) -> {path} ({path.stat().st_size / 1e6:.2f} MB)")
    return 0


def _report_table(report_path, weights: dict) -> tuple[dict, str]:
    """The measured table of an eval report for a manifest: ``{split: {system: {metric: mean}}}`` with the model
    row named by its architecture, and where it was measured. The report must score exactly one model, given as
    ``ARCH=FILE``, and FILE must hold exactly ``weights`` (as fp16): a table of other weights is refused."""
    import torch
    from safetensors.torch import load_file

    from talkinghead.io import InputError
    from talkinghead.metrics.evaluate import BASELINES, means_table

    try:
        report = json.loads(Path(report_path).read_text())
        systems = report["systems"]
    except (OSError, ValueError, KeyError) as e:
        raise InputError(f"{report_path} is not a report of `python -m talkinghead eval` ({e}): pass the .json it wrote") from e
    models = [name for name in systems if name not in BASELINES]
    if len(models) != 1 or "=" not in models[0]:
        raise InputError(f"{report_path} scores {models or 'no model'}: --metrics needs the report of one model given as "
                         "`--model ARCH=FILE`")
    arch, file = models[0].split("=", 1)
    try:
        measured = load_file(file)
    except OSError as e:
        raise InputError(f"{report_path} measured {file}, which cannot be read ({e})") from e
    same = measured.keys() == weights.keys() and all(
        torch.equal(measured[k], v.to(measured[k].dtype)) for k, v in weights.items())
    if not same:
        raise InputError(f"{report_path} measured {file}, which holds other weights than this checkpoint's EMA "
                         "generator: export the checkpoint, evaluate that file, and pass its report")
    table = means_table(report, rename={models[0]: arch})
    return {report["split"]: table}, f"measured on its {report['split']} split ({report['n_clips']} clips)"
