"""``fit``: the one training loop every architecture uses.

An architecture describes itself with a *task* object (``models/sda.py``'s ``SDATask`` is one):

    task.cfg                          # its frozen Config (``name``, ``to_dict()``)
    task.generator                    # the key of the net to average (EMA) and ship, e.g. "G"
    task.phases                       # (Phase("D", optimizer="D", nets=("D_frame", …)), Phase("G", …)), in order
    task.build_nets() -> {name: nn.Module}
    task.build_optimizers(nets) -> {name: Optimizer}
    task.dataset(data, split, seed=…) -> a WindowDataset-like dataset (``ds[list of indices]`` is a whole batch)
    task.loss(phase, batch, nets, cache) -> (loss, {name: float})   # cache: shared by the phases of one batch
    task.system(G) -> System           # optional: for the evaluation harness and sample videos
    task.settings -> dict              # optional: training settings outside ``cfg`` (checkpointed; a resume
                                       # with other settings is refused)

One step: ``accum`` micro-batches are drawn; then for each phase in order, every micro-batch's loss is
backpropagated into that phase's nets only (``backward(inputs=…)``, so a phase never touches another's
gradients and a generator graph built in the D phase can be reused by the G phase), gradients are averaged over
processes, clipped if asked, and the phase's optimiser steps. Then the EMA follows the generator.

Distribution goes through Hugging Face Accelerate (``accelerate launch -m talkinghead train …``, or torchrun):
each process draws its own shard of every epoch's batches and gradients are averaged with an all-reduce, so one
CPU, one GPU and many GPUs run the same code. Mixed precision (``bf16`` or ``fp16`` with a gradient scaler per
phase) applies on GPUs.

Everything needed to continue exactly is checkpointed (``training.checkpoint``): nets, EMA, optimisers,
scalers, RNG states, and the data position (epoch, batches consumed). ``resume=True`` continues from
``out/checkpoints/latest``: on the same machine, a run interrupted and resumed ends with bit-identical weights to
one that was never interrupted. ``init_from`` warm-starts a *new* run from another run's networks and EMA (fresh
optimisers, step 0), for a second stage with settings that keep the shapes, e.g. longer windows; every later
checkpoint records where it started.
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from talkinghead.training.checkpoint import latest_checkpoint, load_checkpoint, load_nets, resolve_checkpoint, save_checkpoint
from talkinghead.training.ema import EMA

__all__ = ["Phase", "FitResult", "fit", "BatchStream"]


@dataclass(frozen=True)
class Phase:
    """One optimisation phase of a training step: the loss ``task.loss(name, …)`` trains ``nets`` with
    ``optimizer``, every ``every`` steps (lazy regularisation runs a phase every 16 steps, say)."""

    name: str
    optimizer: str
    nets: tuple[str, ...]
    every: int = 1


@dataclass
class FitResult:
    """What ``fit`` returns: the trained nets (G_ema under ``"G_ema"``), the log rows, and where things are."""

    nets: dict[str, torch.nn.Module]
    history: list[dict]
    step: int
    out: Path
    checkpoint: Path | None
    init_from: dict | None = None     # {"checkpoint", "task", "step", "steps_before", "config"} of a warm start


class BatchStream:
    """Batches of dataset indices in a deterministic order: epoch ``e`` is a permutation seeded by ``(seed, e)``,
    cut into batches of ``batch_size`` (the last partial one dropped) and dealt to ``world`` processes
    round-robin. The position (epoch, batches consumed) is all it takes to continue."""

    def __init__(self, n: int, batch_size: int, *, seed: int, rank: int = 0, world: int = 1):
        per_epoch = n // batch_size // world
        if per_epoch < 1:
            raise ValueError(f"{n} training windows are fewer than one batch of {batch_size} per process "
                             f"({world} processes): lower the batch size or add data")
        self.n, self.batch_size, self.seed, self.rank, self.world = n, batch_size, seed, rank, world
        self.per_epoch = per_epoch
        self.epoch, self.position = 0, 0

    def _epoch_batches(self, epoch: int) -> list[list[int]]:
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n)
        usable = self.per_epoch * self.world * self.batch_size
        batches = order[:usable].reshape(-1, self.batch_size)
        return batches[self.rank :: self.world].tolist()

    def __iter__(self) -> Iterator[tuple[int, list[int]]]:
        """Yields (epoch, indices) forever, from the current position."""
        while True:
            batches = self._epoch_batches(self.epoch)
            while self.position < len(batches):
                self.position += 1
                yield self.epoch, batches[self.position - 1]
            self.epoch, self.position = self.epoch + 1, 0


def _to_device(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def _write_json_line(path: Path, row: dict) -> None:
    with open(path, "a") as f:
        f.write(json.dumps(row) + "\n")


def _truncate_log(path: Path, step: int) -> None:
    """Keep only the rows of ``path`` up to ``step``, the step the run starts from: a fresh start (0) empties
    it, a resume drops the rows logged after its checkpoint (those steps run again). Rewritten atomically."""
    if not path.exists():
        return
    lines = path.read_text().splitlines()
    kept = [line for line in lines if line.strip() and json.loads(line).get("step", 0) <= step]
    if len(kept) != len(lines):
        from talkinghead.io import write_text_atomic

        write_text_atomic(path, "".join(line + "\n" for line in kept))


def fit(
    task,
    data,
    *,
    out: str | os.PathLike,
    steps: int,
    batch_size: int = 8,
    accum: int = 1,
    seed: int = 0,
    mixed_precision: str = "no",
    grad_clip: float | None = None,
    ema_decay: float = 0.999,
    eval_every: int = 0,
    eval_clips: int = 8,
    eval_split: str = "val",
    sample_every: int = 0,
    checkpoint_every: int = 500,
    keep_checkpoints: int = 2,
    log_every: int = 10,
    resume: bool = True,
    init_from: str | os.PathLike | None = None,
    max_seconds: float | None = None,
    callbacks: Sequence[Callable[[dict], None]] = (),
    progress: bool = True,
    cpu: bool = False,
) -> FitResult:
    """Train ``task`` on the train split of a prepared corpus ``data`` until ``steps`` steps are done.

    Args:
        task: the architecture (see the module docstring).
        data: a prepared corpus folder (``python -m talkinghead prepare``) or an open ``PreparedCorpus``.
        out: run folder: ``log.jsonl`` (one row per log / eval), ``checkpoints/``, ``samples/``.
        steps: total optimisation steps (a resumed run counts the steps already done).
        batch_size: windows per micro-batch per process; the effective batch is batch_size · accum · processes.
        accum: micro-batches whose gradients add up before each optimiser step.
        seed: data order, identity frames and initialisation.
        mixed_precision: "no", "bf16" or "fp16" (GPU only; ignored with a note on CPU).
        grad_clip: clip each phase's gradient norm to this (None: no clipping).
        ema_decay: decay of the generator's EMA (``training.ema``).
        eval_every: run the evaluation harness on ``eval_clips`` clips of ``eval_split`` with the EMA generator
            every this many steps and at the end (0: never). Needs ``task.system`` and the shipped metric nets.
        sample_every: write ``samples/step_XXXXXXXX.mp4`` (real | generated, with sound) for the first clip of
            ``eval_split`` every this many steps and at the end (0: never).
        checkpoint_every: checkpoint every this many steps and at the end (0: only at the end).
        log_every: steps per log row (each loss averaged over the steps whose phases produced it).
        resume: continue from ``out/checkpoints/latest`` if there is one.
        init_from: a run folder or checkpoint folder of the same task whose networks and EMA start this run
            (optimisers, RNG and data order start fresh; the step count starts at 0). Used only when the run does
            not resume its own checkpoint; the shapes must match (the config may differ where shapes do not).
        max_seconds: stop (with a checkpoint) after this much wall time, for time-boxed runs; resume later.
        callbacks: called with every log row (``{"step", "seconds", losses…}``) and eval row (``{"step", "eval"}``).
        progress: show a progress bar with the losses (main process only).
        cpu: force the CPU even where a GPU is present.
    Returns:
        ``FitResult`` with the nets (and ``"G_ema"``), the history, the final step and checkpoint.
    """
    from accelerate import Accelerator
    from accelerate.utils import set_seed
    from tqdm.auto import tqdm

    if mixed_precision not in ("no", "bf16", "fp16"):
        raise ValueError(f"mixed_precision must be 'no', 'bf16' or 'fp16', got {mixed_precision!r}")
    if steps < 0 or accum < 1 or batch_size < 1:
        raise ValueError(f"need steps ≥ 0, accum ≥ 1, batch_size ≥ 1; got {steps}, {accum}, {batch_size}")
    accelerator = Accelerator(cpu=cpu)
    device, main = accelerator.device, accelerator.is_main_process
    amp = mixed_precision if device.type == "cuda" else "no"
    amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(amp)
    out = Path(out)
    if main:
        out.mkdir(parents=True, exist_ok=True)
    set_seed(seed, device_specific=False)

    nets = {k: v.to(device) for k, v in task.build_nets().items()}
    for net in nets.values():
        net.train()
    opts = task.build_optimizers(nets)
    phases = tuple(task.phases)
    for phase in phases:
        unknown = [n for n in phase.nets if n not in nets] + ([phase.optimizer] if phase.optimizer not in opts else [])
        if unknown:
            raise ValueError(f"phase {phase.name!r} names {unknown}, which the task did not build")
    ema = EMA(nets[task.generator], decay=ema_decay)
    scalers = {p.name: torch.amp.GradScaler("cuda") for p in phases} if amp == "fp16" else {}

    dataset = task.dataset(data, "train", seed=seed)
    stream = BatchStream(len(dataset), batch_size, seed=seed, rank=accelerator.process_index, world=accelerator.num_processes)
    step, history, init = 0, [], None
    checkpoint = latest_checkpoint(out) if resume else None
    if checkpoint is not None:
        state = load_checkpoint(checkpoint, nets=nets, opts=opts, ema=ema, scalers=scalers)
        init = state.get("init_from")
        changed = task.cfg.changes_from(state["config"]) if state.get("config") is not None else {}
        if changed:
            diff = ", ".join(f"{k}: {a!r} there, {b!r} now" for k, (a, b) in changed.items())
            raise ValueError(f"{checkpoint} was written with another config ({diff}); resume with the same "
                             "--config/--set, or use a new --out or resume=False")
        settings = json.loads(json.dumps(getattr(task, "settings", {})))
        if "task_settings" in state and state["task_settings"] != settings:
            changed = sorted(k for k in set(settings) | set(state["task_settings"])
                             if settings.get(k) != state["task_settings"].get(k))
            raise ValueError(f"{checkpoint} was trained with other task settings ({', '.join(changed)}: "
                             f"{ {k: state['task_settings'].get(k) for k in changed} }); resume with the same ones, "
                             "or use a new --out or resume=False")
        step = int(state["step"])
        stream.epoch, stream.position = state["data"]["epoch"], state["data"]["position"]
        if main:
            accelerator.print(f"resumed from {checkpoint} at step {step}")
    elif init_from is not None:
        source = resolve_checkpoint(init_from)
        source_task = json.loads((source / "state.json").read_text()).get("task")
        if source_task is not None and source_task != type(task).__name__:
            raise ValueError(f"{source} is a {source_task} checkpoint; this run trains {type(task).__name__}")
        state = load_nets(source, nets=nets, ema=ema)
        # steps_before: every optimisation step behind the source, through its own warm start if it had one
        init = {"checkpoint": str(source), "task": source_task, "step": int(state["step"]),
                "steps_before": int(state["step"]) + int((state.get("init_from") or {}).get("steps_before", 0)),
                "config": state.get("config")}
        if main:
            accelerator.print(f"initialised from {source} (step {init['step']})")
    if main:
        _truncate_log(out / "log.jsonl", step)

    def batches() -> Iterator[dict]:
        for epoch, indices in stream:
            dataset.set_epoch(epoch)
            yield dataset[indices]

    batch_iter = batches()

    def extra_state() -> dict:
        return {"config": task.cfg.to_dict(), "task": type(task).__name__, "task_settings": getattr(task, "settings", {}),
                "data": {"epoch": stream.epoch, "position": stream.position, "root": str(dataset.data.root)},
                "batch_size": batch_size, "accum": accum, "seed": seed, "world": accelerator.num_processes,
                **({"init_from": init} if init is not None else {})}

    def autocast():
        return torch.autocast(device.type, dtype=amp_dtype) if amp_dtype is not None else nullcontext()

    def evaluate_now(at: int) -> None:
        G = ema.model
        if eval_every and main:
            row = {"step": at, "eval": _evaluate(task, G, dataset.data, eval_split, eval_clips, device)}
            history.append(row)
            _write_json_line(out / "log.jsonl", row)
            for cb in callbacks:
                cb(row)
        if sample_every and main:
            _write_sample(task, G, dataset.data, eval_split, out / "samples" / f"step_{at:08d}.mp4")

    start_time, sums, counts = time.perf_counter(), defaultdict(float), defaultdict(int)
    bar = tqdm(total=steps, initial=step, desc=f"train {task.cfg.name}", disable=not (progress and main), dynamic_ncols=True)
    last_ckpt = checkpoint
    stopped_early = False
    while step < steps:
        micro = [_to_device(next(batch_iter), device) for _ in range(accum)]
        caches: list[dict] = [{} for _ in micro]
        for phase in phases:
            if step % phase.every:
                continue
            params = [p for name in phase.nets for p in nets[name].parameters() if p.requires_grad]
            opt = opts[phase.optimizer]
            opt.zero_grad(set_to_none=True)
            scaler = scalers.get(phase.name)
            for batch, cache in zip(micro, caches):
                with autocast():
                    loss, logs = task.loss(phase.name, batch, nets, cache)
                if not torch.isfinite(loss):
                    raise FloatingPointError(f"{phase.name} loss is {loss.item()} at step {step}: lower the learning rate "
                                             f"or enable grad_clip; last good checkpoint: {last_ckpt}")
                scaled = loss / accum
                (scaler.scale(scaled) if scaler else scaled).backward(inputs=params)
                for k, v in logs.items():
                    sums[k] += v / accum
            for k in logs:  # a phase that runs every n steps is averaged over the steps it ran
                counts[k] += 1
            if accelerator.num_processes > 1:
                for p in params:
                    if p.grad is not None:
                        p.grad = accelerator.reduce(p.grad, reduction="mean")
            if grad_clip:
                if scaler:
                    scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(params, grad_clip)
            if scaler:
                scaler.step(opt)
                scaler.update()
            else:
                opt.step()
        for cache in caches:
            cache.clear()
        if accelerator.num_processes > 1:
            # Parameters agree across processes (same init, averaged gradients); buffers such as batch-norm
            # statistics saw only local batches: take rank 0's, as DistributedDataParallel does.
            for net in nets.values():
                for buffer in net.buffers():
                    torch.distributed.broadcast(buffer, src=0)
        ema.update(nets[task.generator])
        step += 1
        bar.update(1)
        if step % log_every == 0 or step == steps:
            row = {"step": step, "seconds": round(time.perf_counter() - start_time, 2),
                   **{k: round(v / counts[k], 5) for k, v in sums.items()}}
            sums.clear()
            counts.clear()
            history.append(row)
            bar.set_postfix({k: f"{v:.3g}" for k, v in row.items() if k not in ("step", "seconds")}, refresh=False)
            if main:
                _write_json_line(out / "log.jsonl", row)
            for cb in callbacks:
                cb(row)
        out_of_time = max_seconds is not None and time.perf_counter() - start_time > max_seconds
        if (eval_every and step % eval_every == 0) or (sample_every and step % sample_every == 0):
            evaluate_now(step)
        if (checkpoint_every and step % checkpoint_every == 0) or step == steps or out_of_time:
            accelerator.wait_for_everyone()
            if main:
                last_ckpt = save_checkpoint(out, step=step, nets=nets, opts=opts, ema=ema, scalers=scalers,
                                            extra=extra_state(), keep=keep_checkpoints)
        if out_of_time and step < steps:
            stopped_early = True
            accelerator.print(f"stopping after {max_seconds:.0f} s at step {step}; resume with the same --out")
            break
    bar.close()
    if not stopped_early and steps > 0 and not ((eval_every and step % eval_every == 0) or (sample_every and step % sample_every == 0)):
        evaluate_now(step)
    result_nets = dict(nets)
    result_nets["G_ema"] = ema.model
    return FitResult(result_nets, history, step, out, last_ckpt, init)


def _evaluate(task, G, corpus, split: str, clips: int, device) -> dict:
    """Mean of every harness metric for the EMA generator on ``clips`` clips of ``split``."""
    from talkinghead.metrics.evaluate import evaluate, from_system, load_metric_nets

    landmark_net, sync_net = load_metric_nets(device=str(device))
    was_training = G.training
    G.eval()
    report = evaluate(corpus, split=split, systems={"model": from_system(task.system(G))}, landmark_net=landmark_net,
                      sync_net=sync_net, max_clips=clips, progress=False)
    G.train(was_training)
    return {k: v["mean"] for k, v in report["systems"]["model"].items()}


def _write_sample(task, G, corpus, split: str, path: Path) -> None:
    """Real | generated for the first clip of ``split``, with its sound, as an mp4."""
    from talkinghead.io import write_video

    meta = corpus.clips(split)[0]
    real = np.asarray(corpus.clip_frames(meta))
    audio = corpus.clip_audio(meta)
    fake = task.system(G)(real[0], audio, len(real))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_video(path, np.concatenate([real, fake], axis=2), fps=corpus.meta["fps"], audio=audio, sr=corpus.meta["sr"])
