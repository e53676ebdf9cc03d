"""What the demo's pages share: where calls write their files, number checks, and the Spaces GPU decorator."""
from __future__ import annotations

import numbers
import shutil
import tempfile
import time
from pathlib import Path

import gradio as gr

__all__ = ["OUTPUT_ROOT", "OUTPUT_MAX_AGE", "gpu", "new_output_dir", "whole_number"]

OUTPUT_ROOT = Path(tempfile.gettempdir()) / "talkinghead-demo"  # each call gets its own directory under it
OUTPUT_MAX_AGE = 3600.0  # seconds; gradio serves its own copy of each file, ours only has to outlive the call


def new_output_dir() -> Path:
    """A fresh directory for one call's files, after removing those of calls older than ``OUTPUT_MAX_AGE``."""
    root = OUTPUT_ROOT
    root.mkdir(parents=True, exist_ok=True)
    cutoff = time.time() - OUTPUT_MAX_AGE
    for old in root.iterdir():
        try:
            if old.stat().st_mtime < cutoff:
                shutil.rmtree(old, ignore_errors=True)
        except FileNotFoundError:  # another call removed it first
            pass
    return Path(tempfile.mkdtemp(dir=root))


def whole_number(value: float | None, name: str, low: int, high: int) -> int:
    """``value`` as an int in [low, high], or a ``gr.Error`` that says what to enter."""
    if not isinstance(value, numbers.Real) or not float(value).is_integer() or not low <= value <= high:
        raise gr.Error(f"{name} must be a whole number from {low} to {high}, got {value!r}")
    return int(value)


try:  # on Hugging Face ZeroGPU Spaces, `spaces.GPU` lends the decorated call a GPU; elsewhere it is a no-op
    import spaces

    gpu = spaces.GPU(duration=120)
except ImportError:

    def gpu(fn):
        return fn
