"""Lazy compilation of the CUDA kernels in ``ops/cuda/``.

Nothing compiles at import. The first time an op runs with ``impl='cuda'`` on a CUDA tensor, ``load_extension``
builds its sources with ``torch.utils.cpp_extension.load`` (ninja) into a cache folder named by a hash of the
sources and the torch / CUDA versions, so an edit to a kernel or an upgrade of torch rebuilds and nothing else does.
When the kernels cannot be used (no CUDA tensor, no toolkit, a failed build) the ops run their pure-PyTorch
reference and say so in ONE warning per process. ``TALKINGHEAD_STYLEGAN2_REF=1`` forces the reference silently.
"""
from __future__ import annotations

import hashlib
import os
import warnings
from pathlib import Path
from types import ModuleType

import torch

__all__ = ["REF_ENV", "CACHE_ENV", "force_ref", "load_extension"]

REF_ENV = "TALKINGHEAD_STYLEGAN2_REF"  # "1": always use the PyTorch reference ops
CACHE_ENV = "TALKINGHEAD_CACHE"  # root of the build cache (default ~/.cache/talkinghead)
SOURCE_DIR = Path(__file__).resolve().parent / "cuda"

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


def load_extension(name: str, x: torch.Tensor) -> ModuleType | None:
    """The compiled kernels of op ``name`` (sources ``cuda/<name>.{cpp,cu,h}``) for tensor ``x``, or None when the
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
        sources = sorted(p for p in SOURCE_DIR.glob(f"{name}.*") if p.suffix in (".cpp", ".cu", ".h"))
        try:
            from torch.utils.cpp_extension import load

            build_dir = _cache_dir(name, sources)
            build_dir.mkdir(parents=True, exist_ok=True)
            _modules[name] = load(
                name=f"talkinghead_{name}_{build_dir.name.rsplit('-', 1)[1][:8]}",
                sources=[str(p) for p in sources if p.suffix != ".h"],
                extra_include_paths=[str(SOURCE_DIR)],
                build_directory=str(build_dir),
                verbose=False,
            )
        except Exception as err:  # no toolkit, no ninja, compiler error: the reference still gives the right answer
            _modules[name] = None
            _warn_once(
                f"StyleGAN2 ops: could not build the CUDA kernels of {name!r} ({type(err).__name__}: {err}); running the "
                f"slower pure-PyTorch reference. Install ninja and a CUDA toolkit matching torch (CUDA {torch.version.cuda}), "
                f"or set {REF_ENV}=1 to silence this warning"
            )
    return _modules[name]
