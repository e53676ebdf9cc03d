"""How fast is a StyleGAN2 generator? Images per second with the fused CUDA ops and with the pure-PyTorch reference,
against the floor that the FLOP count and the device's peak set.

    python -m talkinghead bench stylegan2 --presets synth128,ffhq256,ffhq1024 --batch 32 [--backward]

The FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one forward pass of the reference path
(matrix products and convolutions, 2 FLOPs per multiply-add, the resampling filters included as the depthwise
convolutions the reference runs; bias_act's element-wise work is not counted, so the floor is a lower bound). The floor is ``FLOPs / peak``: the time the device would need at its peak rate for
the dtype the network runs in (float32 here: the presets' fp16 blocks run in float16 only under CUDA when
``num_fp16_res`` > 0, and we report the float32 peak as the conservative floor). ``PEAK_TFLOPS`` holds the vendors'
dense figures for the GPUs we run on; pass ``--peak-tflops`` for another device. Random weights: speed does not
depend on them.
"""
from __future__ import annotations

import contextlib
import os
import time

import torch

from talkinghead.stylegan2.networks import Config, Generator
from talkinghead.stylegan2.ops._build import REF_ENV

__all__ = ["PEAK_TFLOPS", "forward_flops", "peak_tflops", "bench_generator", "main"]

# Dense float32 (non-tensor-core) and TF32 tensor-core peaks, TFLOP/s, from NVIDIA's data sheets (SXM parts).
PEAK_TFLOPS = {
    "H100": {"fp32": 67.0, "tf32": 494.7},
    "H200": {"fp32": 67.0, "tf32": 494.7},
    "A100": {"fp32": 19.5, "tf32": 156.0},
}


def forward_flops(G: Generator, batch: int = 1) -> float:
    """FLOPs of one forward pass of ``G`` (mapping + synthesis) on ``batch`` latents, per image."""
    from torch.utils.flop_counter import FlopCounterMode

    z = torch.zeros(batch, G.z_dim, device=next(G.parameters()).device)
    with _impl("ref"), torch.no_grad(), FlopCounterMode(display=False) as counter:
        G(z, noise_mode="const")
    return counter.get_total_flops() / batch


def peak_tflops(device: torch.device, override: float | None = None) -> tuple[float | None, str]:
    """(peak TFLOP/s, what it is) for ``device``: ``override`` if given, the TF32 peak of a known GPU when TF32
    matmuls are allowed, else its float32 peak; (None, reason) for a CPU or an unknown GPU."""
    if override:
        return override, "given"
    if device.type != "cuda":
        return None, "no peak figure for a CPU"
    name = torch.cuda.get_device_name(device)
    for key, peaks in PEAK_TFLOPS.items():
        if key in name:
            tf32 = torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
            return (peaks["tf32"], f"{key} TF32 dense") if tf32 else (peaks["fp32"], f"{key} FP32 dense")
    return None, f"no peak figure for {name}: pass --peak-tflops"


@contextlib.contextmanager
def _impl(impl: str):
    """Run the StyleGAN2 ops with ``impl``: "fused" (the CUDA kernels) or "ref" (the pure-PyTorch reference)."""
    old = os.environ.get(REF_ENV)
    os.environ[REF_ENV] = "1" if impl == "ref" else "0"
    try:
        yield
    finally:
        if old is None:
            os.environ.pop(REF_ENV, None)
        else:
            os.environ[REF_ENV] = old


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_generator(
    G: Generator,
    *,
    batch: int,
    impl: str = "ref",
    backward: bool = False,
    warmup: int = 2,
    repeats: int = 5,
) -> dict:
    """Time ``G`` on random latents: forward (no grad) or forward + backward of the mean output.

    Returns {"impl", "batch", "backward", "seconds_per_batch" (best of ``repeats``), "images_per_s"}.
    """
    if impl not in ("fused", "ref"):
        raise ValueError(f"impl must be 'fused' or 'ref', not {impl!r}")
    device = next(G.parameters()).device
    z = torch.randn(batch, G.z_dim, device=device, generator=torch.Generator(device).manual_seed(0))

    def once() -> None:
        if backward:
            G.zero_grad(set_to_none=True)
            G(z, noise_mode="const").mean().backward()
        else:
            with torch.no_grad():
                G(z, noise_mode="const")

    best = float("inf")
    with _impl(impl):
        for i in range(warmup + repeats):
            _sync(device)
            start = time.perf_counter()
            once()
            _sync(device)
            if i >= warmup:
                best = min(best, time.perf_counter() - start)
    return {"impl": impl, "batch": batch, "backward": backward, "seconds_per_batch": best, "images_per_s": batch / best}


def main(args) -> int:
    """``bench stylegan2``: a markdown table, one row per preset and implementation."""
    import platform

    device = torch.device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"))
    impls = ["fused", "ref"] if device.type == "cuda" else ["ref"]
    peak, peak_what = peak_tflops(device, args.peak_tflops)
    print(f"device: {torch.cuda.get_device_name(device) if device.type == 'cuda' else platform.processor() or platform.machine()}"
          f" ({device.type}), torch {torch.__version__}, {torch.get_num_threads()} CPU threads; peak: "
          f"{f'{peak} TFLOP/s ({peak_what})' if peak else peak_what}")
    pass_name = "forward + backward" if args.backward else "forward"
    print(f"\n| preset | px | batch | ops | {pass_name} s / batch | images / s | GFLOP / image (fwd) | achieved TFLOP/s | floor images / s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for name in args.presets.split(","):
        G = Generator(Config.preset(name)).to(device)
        flops = forward_flops(G)
        work = flops * (3 if args.backward else 1)         # backward ≈ 2 × forward (gradients of inputs and weights)
        for impl in impls:
            row = bench_generator(G, batch=args.batch, impl=impl, backward=args.backward, repeats=args.repeats)
            achieved = work * row["images_per_s"] / 1e12
            floor = f"{peak * 1e12 / work:,.0f}" if peak else "–"
            print(f"| {name} | {G.img_resolution} | {args.batch} | {impl} | {row['seconds_per_batch']:.3f} | "
                  f"{row['images_per_s']:,.1f} | {flops / 1e9:.2f} | {achieved:.3f} | {floor} |", flush=True)
        del G
    return 0
