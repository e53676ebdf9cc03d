"""Lazy compilation of the CUDA kernels in ``ops/cuda/``.

Nothing compiles at import. The first time an op runs with ``impl='cuda'`` on a CUDA tensor, ``load_extension``
builds its sources with ``torch.utils.cpp_extension.load`` (ninja) into a cache folder named by a hash of the
sources and the torch / CUDA versions, so an edit to a kernel or an upgrade of torch rebuilds and nothing else does.
When the kernels cannot be used (no CUDA tensor, no toolkit, a failed build) the ops run their pure-PyTorch
reference and say so in ONE warning per process. ``TALKINGHEAD_STYLEGAN2_REF=1`` forces the reference silently.

``python -m talkinghead build-ops`` builds them ahead of time and checks that they load, on any machine with a CUDA
build of torch and a toolkit, GPU or not (``--arch`` names the GPUs to build for when there is none to ask).
"""
from __future__ import annotations

import hashlib
import os
import sys
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["REF_ENV", "CACHE_ENV", "OPS", "build", "force_ref", "load_extension"]

REF_ENV = "TALKINGHEAD_STYLEGAN2_REF"  # "1": always use the PyTorch reference ops
CACHE_ENV = "TALKINGHEAD_CACHE"  # root of the build cache (default ~/.cache/talkinghead)
SOURCE_DIR = Path(__file__).resolve().parent / "cuda"
OPS = ("bias_act", "upfirdn2d")

_modules: dict[str, ModuleType | None] = {}  # op name -> compiled module, or None after a failure
_warned = False


def force_ref() -> bool:
    """True when the environment asks for the reference ops (``TALKINGHEAD_STYLEGAN2_REF`` set and not ``0``)."""
    return os.environ.get(REF_ENV, "") not in ("", "0")


def _warn_once(message: str) -> None:
    global _warned
    if not _warned:
        _warned = True
        warnings.warn(message, RuntimeWarning, stacklevel=4)


def _cache_dir(name: str, sources: list[Path]) -> Path:
    digest = hashlib.sha256()
    for path in sources:
        digest.update(path.name.encode())
        digest.update(path.read_bytes())
    digest.update(f"torch {torch.__version__} cuda {torch.version.cuda}".encode())
    root = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "talkinghead"))
    return root / "stylegan2_ops" / f"{name}-{digest.hexdigest()[:16]}"


def build(name: str, *, verbose: bool = False) -> ModuleType:
    """Compile (or find in the cache) and import the kernels of op ``name``; raises when they cannot be built.

    Needs a CUDA build of torch, ninja and a CUDA toolkit, not a GPU (``python -m talkinghead build-ops`` builds
    both ops on a machine without one, given ``TORCH_CUDA_ARCH_LIST``, and checks that their bindings load).
    """
    if torch.version.cuda is None:
        raise RuntimeError(f"this torch ({torch.__version__}) is a CPU build; the CUDA kernels need a CUDA build of torch")
    from torch.utils.cpp_extension import load

    sources = sorted(p for p in SOURCE_DIR.glob(f"{name}.*") if p.suffix in (".cpp", ".cu", ".cuh", ".h"))
    if not sources:
        raise ValueError(f"no CUDA sources for op {name!r} in {SOURCE_DIR}")
    build_dir = _cache_dir(name, sources)
    build_dir.mkdir(parents=True, exist_ok=True)
    return load(
        name=f"talkinghead_{name}_{build_dir.name.rsplit('-', 1)[1][:8]}",
        sources=[str(p) for p in sources if p.suffix in (".cpp", ".cu")],
        extra_include_paths=[str(SOURCE_DIR)],
        build_directory=str(build_dir),
        verbose=verbose,
    )


def load_extension(name: str, x: torch.Tensor) -> ModuleType | None:
    """The compiled kernels of op ``name`` (sources ``cuda/<name>.{cpp,cu,cuh,h}``) for tensor ``x``, or None when the
    reference must run: ``x`` is not on a CUDA device, the reference is forced, or the build failed (warned once)."""
    if force_ref():
        return None
    if x.device.type != "cuda":
        _warn_once(
            f"StyleGAN2 ops: tensors on {x.device.type}, so the pure-PyTorch reference runs instead of the fused CUDA "
            f"kernels (set {REF_ENV}=1 to choose it explicitly and silence this warning)"
        )
        return None
    if name not in _modules:
        try:
            _modules[name] = build(name)
        except Exception as err:  # no toolkit, no ninja, compiler error: the reference still gives the right answer
            _modules[name] = None
            _warn_once(
                f"StyleGAN2 ops: could not build the CUDA kernels of {name!r} ({type(err).__name__}: {err}); running the "
                f"slower pure-PyTorch reference. Install ninja and a CUDA toolkit matching torch (CUDA {torch.version.cuda}), "
                f"or set {REF_ENV}=1 to silence this warning"
            )
    return _modules[name]


def check_build(*, verbose: bool = False) -> dict[str, dict]:
    """Build every op and call each binding with CPU tensors, which the kernels' own argument checks must refuse:
    proof that the sources compile, link against this torch and load, on a machine with or without a GPU.
    Returns, per op, the seconds the build took (about a second when cached) and the refusal message."""
    import time

    probes = {
        "bias_act": lambda m: m.bias_act_forward(torch.zeros(2, 3), torch.zeros(0), 1, 2, 0.2, 1.0, -1.0),
        "upfirdn2d": lambda m: m.upfirdn2d(torch.zeros(1, 1, 4, 4), torch.ones(2, 2), 2, 1, 1, 1, 1, 1, False, 1.0),
    }
    report = {}
    for name in OPS:
        start = time.perf_counter()
        module = build(name, verbose=verbose)
        seconds = time.perf_counter() - start
        try:
            probes[name](module)
        except RuntimeError as err:
            refusal = str(err).splitlines()[0]
        else:
            raise AssertionError(f"{name}: the kernel accepted CPU tensors")
        report[name] = {"build_s": round(seconds, 1), "module": module.__name__, "refusal": refusal}
    return report


def main_build_ops(args) -> int:
    """``python -m talkinghead build-ops``: build the kernels now (they otherwise build on first use) and report."""
    import json
    import shutil
    import subprocess

    if torch.version.cuda is None:
        raise ValueError(f"this torch ({torch.__version__}) is a CPU build, which cannot run CUDA kernels: install a CUDA "
                         f"build of torch (pip install torch from https://download.pytorch.org/whl/) and a matching toolkit")
    if args.arch:
        os.environ["TORCH_CUDA_ARCH_LIST"] = args.arch
    elif not torch.cuda.is_available() and "TORCH_CUDA_ARCH_LIST" not in os.environ:
        raise ValueError("no GPU here to read the architecture from: name the ones to build for, e.g. --arch '7.5;8.0;9.0' "
                         "(T4, A100, H100)")
    nvcc = shutil.which("nvcc", path=str(Path(os.environ.get("CUDA_HOME", "/usr/local/cuda")) / "bin")) or shutil.which("nvcc")
    toolkit = subprocess.run([nvcc, "--version"], capture_output=True, text=True).stdout.strip().splitlines()[-1] if nvcc else None
    try:
        ops = check_build(verbose=args.verbose)
    except Exception as err:  # compiler or linker error: say what failed and how to see why
        print(f"error: the CUDA kernels did not build with nvcc {toolkit} for torch {torch.__version__}: "
              f"{type(err).__name__}: {str(err)[-2000:]}\nrun again with --verbose for the compiler's output; the toolkit's "
              f"CUDA version should match torch's ({torch.version.cuda})", file=sys.stderr)
        return 1
    print(json.dumps({"torch": torch.__version__, "torch CUDA": torch.version.cuda, "nvcc": toolkit,
                      "arch": os.environ.get("TORCH_CUDA_ARCH_LIST"),
                      "GPU": torch.cuda.get_device_name() if torch.cuda.is_available() else None, "ops": ops}, indent=1))
    return 0


def add_build_ops_parser(sub) -> None:
    """Add ``build-ops [--arch LIST] [--verbose]`` to the CLI's subparsers."""
    p = sub.add_parser("build-ops", help="compile the StyleGAN2 CUDA kernels now and check that they load (no GPU needed)")
    p.add_argument("--arch", default=None, help="CUDA architectures, as TORCH_CUDA_ARCH_LIST (default: this machine's GPU)")
    p.add_argument("--verbose", action="store_true", help="show the compiler's commands and output")
    p.set_defaults(func=main_build_ops)
