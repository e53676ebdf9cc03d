"""Inference pipelines: ``load_pipeline(name)(image, audio) -> TalkingHeadOutput``.

Each architecture registers one entry here: its name, its pipeline class, and the weights file it loads by
default. The demo and the notebooks list and load pipelines only through ``list_pipelines``/``load_pipeline``.
"""
from __future__ import annotations

import importlib

from talkinghead.pipelines.base import TalkingHeadOutput, TalkingHeadPipeline

__all__ = ["TalkingHeadOutput", "TalkingHeadPipeline", "REGISTRY", "list_pipelines", "load_pipeline"]

# name -> (module, class, default weights). One line per architecture.
REGISTRY: dict[str, tuple[str, str, str]] = {
    "sda": ("talkinghead.pipelines.sda", "SDAPipeline", "sda_synthgrid.safetensors"),
}


def list_pipelines() -> list[str]:
    """Names ``load_pipeline`` accepts."""
    return list(REGISTRY)


def load_pipeline(name: str, weights: str | None = None, *, device: str = "cpu", **kw) -> TalkingHeadPipeline:
    """A ready pipeline: ``load_pipeline("sda")(photo, speech).save("out.mp4")``.

    Args:
        name: one of ``list_pipelines()``.
        weights: a weights name in ``weights/`` (or on the Hub) or a path to a ``.safetensors`` file;
            default: the shipped one.
        device: torch device.
        kw: pipeline options (``detector``, ``max_seconds``).
    """
    if name not in REGISTRY:
        raise ValueError(f"unknown pipeline {name!r}: use one of {', '.join(REGISTRY)}")
    module, cls, default = REGISTRY[name]
    pipeline_cls = getattr(importlib.import_module(module), cls)
    return pipeline_cls.from_pretrained(weights or default, device=device, **kw)
