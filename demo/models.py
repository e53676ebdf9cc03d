"""The demo's side of the pipeline registry: which weights each pipeline loads, loading them once, its model card,
and the controls the page offers.

A new architecture needs no change here: it adds one line to ``talkinghead.pipelines.REGISTRY`` and lists the controls
it supports in its ``card["controls"]`` by the names of ``CONTROLS`` (``"mouth_amplitude"``, ``"trajectory_scale"``,
``"inversion_steps"``…). The page enables exactly those sliders and passes their values to the pipeline as keyword
arguments; the others stay disabled with a note. What a StyleGAN pipeline shows in its tab it returns in the
``extras`` of ``PreparedInput`` (``prepared.extras``, when it has that attribute): ``"trajectory"`` (T, D) latent
path, and ``"inversion"`` ``{"before": (H, W, 3) uint8, "after": (H, W, 3) uint8, "scores": {name: value}}``.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from talkinghead.hub import HUB_REPO_ENV, WEIGHTS_DIR, WeightsError
from talkinghead.pipelines import REGISTRY, TalkingHeadPipeline

__all__ = ["CONTROLS", "Control", "PipelineStore", "card_markdown", "format_number", "supported_controls", "weights_from_env"]

WEIGHTS_ENV = "TALKINGHEAD_DEMO_WEIGHTS"  # "sda=/path/to/sda.safetensors,other=name.safetensors": override the defaults
MAX_SECONDS_ENV = "TALKINGHEAD_DEMO_MAX_SECONDS"  # longest speech clip the demo accepts (default 600 s)
DEVICE_ENV = "TALKINGHEAD_DEVICE"  # torch device; default CUDA when there is one


@dataclass(frozen=True)
class Control:
    """One slider of the page; a pipeline supports it by listing ``name`` in ``card["controls"]``."""

    name: str      # keyword argument the pipeline takes
    label: str     # what the page calls it
    minimum: float
    maximum: float
    step: float
    value: float   # the slider's starting position
    info: str      # one line for the page when it is supported
    group: str     # "motion" (main tab), "trajectory" or "tuning" (the StyleGAN tab)


CONTROLS: tuple[Control, ...] = (
    Control("mouth_amplitude", "Mouth motion", 0.0, 2.0, 0.05, 1.0, "how far the mouth opens: 1 = as trained", "motion"),
    Control("blink_rate", "Blink rate (per second)", 0.0, 1.0, 0.05, 0.3, "how often the eyes blink", "motion"),
    Control("head_motion", "Head motion", 0.0, 2.0, 0.05, 1.0, "how much the head moves: 0 = still", "motion"),
    Control("trajectory_scale", "Trajectory scale", 0.0, 2.0, 0.05, 1.0,
            "scales the speech-driven step away from the identity latent", "trajectory"),
    Control("temporal_smoothing", "Temporal smoothing (frames)", 0.0, 10.0, 0.5, 2.0,
            "Gaussian smoothing of the latent path over time", "trajectory"),
    Control("truncation", "Truncation ψ", 0.3, 1.0, 0.05, 1.0, "pull latents towards the average face", "trajectory"),
    Control("edit_smile", "Edit: smile", -3.0, 3.0, 0.1, 0.0, "move along the smile direction", "trajectory"),
    Control("edit_age", "Edit: age", -3.0, 3.0, 0.1, 0.0, "move along the age direction", "trajectory"),
    Control("edit_yaw", "Edit: head turn", -3.0, 3.0, 0.1, 0.0, "move along the head-yaw direction", "trajectory"),
    Control("inversion_steps", "Inversion steps", 0, 1000, 50, 400, "optimisation steps to find the photo's latent", "tuning"),
    Control("tuning_steps", "Pivotal tuning steps", 0, 1000, 50, 300, "generator fine-tuning steps around that latent", "tuning"),
    Control("tuning_lr", "Tuning learning rate", 1e-5, 1e-2, 1e-5, 3e-4, "Adam learning rate of pivotal tuning", "tuning"),
    Control("tuning_regulariser", "Locality regulariser", 0.0, 1.0, 0.05, 0.1,
            "keeps tuning from changing faces far from the pivot", "tuning"),
)
UNSUPPORTED = {
    "motion": "not supported by this model",
    "trajectory": "arrives with the StyleGAN pipelines (issues 7/8); not supported by this model",
    "tuning": "arrives with the StyleGAN pipelines (issues 7/8); not supported by this model",
}


def supported_controls(card: Mapping[str, Any] | None) -> set[str]:
    """Names from ``CONTROLS`` the pipeline with this card takes (``seed`` is always offered)."""
    return set((card or {}).get("controls", ())) & {c.name for c in CONTROLS}


def weights_from_env() -> dict[str, str]:
    """Per-pipeline weights from ``TALKINGHEAD_DEMO_WEIGHTS`` (``name=path`` pairs, comma-separated)."""
    pairs = [item.split("=", 1) for item in os.environ.get(WEIGHTS_ENV, "").split(",") if item.strip()]
    bad = [pair[0] for pair in pairs if len(pair) != 2 or pair[0].strip() not in REGISTRY]
    if bad:
        raise ValueError(f"{WEIGHTS_ENV} has {', '.join(bad)}: write name=path pairs with names from {', '.join(REGISTRY)}")
    return {name.strip(): path.strip() for name, path in pairs}


def _device() -> str:
    import torch

    return os.environ.get(DEVICE_ENV) or ("cuda" if torch.cuda.is_available() else "cpu")


class PipelineStore:
    """Every registered pipeline, loaded once on first use and shared by all calls.

    Args:
        weights: pipeline name -> weights (a name in ``weights/``, or a path to a ``.safetensors`` with its manifest);
            default: ``TALKINGHEAD_DEMO_WEIGHTS``, else each registry entry's shipped file.
        max_seconds: longest speech clip accepted.
    """

    def __init__(self, weights: Mapping[str, str | os.PathLike] | None = None, *, max_seconds: float | None = None):
        weights = weights_from_env() if weights is None else dict(weights)
        self.weights = {name: str(weights.get(name, default)) for name, (_, _, default) in REGISTRY.items()}
        self.max_seconds = float(max_seconds or os.environ.get(MAX_SECONDS_ENV, 600))
        self._loaded: dict[str, TalkingHeadPipeline] = {}
        self._lock = threading.Lock()

    @property
    def names(self) -> list[str]:
        return list(self.weights)

    def missing(self, name: str) -> str | None:
        """Why ``name`` cannot load without the network, or None when its weights file is here (or on the Hub)."""
        weights = self.weights[name]
        if Path(weights).is_file() or (WEIGHTS_DIR / weights).is_file() or os.environ.get(HUB_REPO_ENV):
            return None
        return _missing_message(name, weights)

    def get(self, name: str) -> TalkingHeadPipeline:
        """The loaded pipeline. Raises ``WeightsError`` (with what to do) when its weights cannot be found."""
        from talkinghead.pipelines import load_pipeline

        if name not in self.weights:
            raise ValueError(f"unknown pipeline {name!r}: pick one of {', '.join(self.weights)}")
        with self._lock:  # two first calls at once load it once
            if name not in self._loaded:
                reason = self.missing(name)
                if reason:
                    raise WeightsError(reason)
                self._loaded[name] = load_pipeline(name, self.weights[name], device=_device(), max_seconds=self.max_seconds)
            return self._loaded[name]

    def card(self, name: str) -> tuple[dict, str | None]:
        """(card, problem): the loaded pipeline's card, or an empty card and why it could not load."""
        try:
            return dict(self.get(name).card), None
        except WeightsError as err:
            return {}, str(err)


def _missing_message(name: str, weights: str) -> str:
    return (f"the {name!r} pipeline's weights {weights!r} are not in {WEIGHTS_DIR}: copy the file there, or set "
            f"{HUB_REPO_ENV} to a Hugging Face Hub repo that has it, or train them (see the README); the rest of the app "
            "keeps working")


def format_number(value: Any) -> str:
    """A table cell: floats to 3 significant digits, anything else as it is."""
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def card_markdown(name: str, card: Mapping[str, Any], problem: str | None = None) -> str:
    """The model card as markdown: title, paper, data, steps, controls and the measured test table."""
    if problem:
        return f"### {name}\n\n⚠️ **Weights missing.** {problem}."
    steps = f" · {card['steps']:,} steps" if card.get("steps") else ""
    paragraphs = [
        f"### {card.get('title', name)}",
        *([f"**Paper:** {card['paper']}"] if card.get("paper") else []),
        f"**Trained on:** {card.get('data', 'unknown')}{steps}",
        f"**Controls:** {', '.join(card.get('controls', ())) or 'none'}",
    ]
    table = (card.get("metrics") or {}).get("test") or {}
    if isinstance(table, Mapping) and table and all(isinstance(row, Mapping) for row in table.values()):
        # One row per metric, one column per system: fits the narrow side column however many metrics there are.
        from talkinghead.metrics.evaluate import METRICS

        arrows = {True: " ↑", False: " ↓", None: ""}
        systems = list(table)
        present = set(metric for row in table.values() for metric in row)
        metrics = [m for m in METRICS if m in present] + sorted(present - set(METRICS))  # the harness's order
        rows = [f"| metric | {' | '.join(systems)} |", "|---" * (len(systems) + 1) + "|"]
        for metric in metrics:
            known = METRICS.get(metric)
            label = f"{known.label}{arrows[known.higher_is_better]}" if known else metric
            rows.append(f"| {label} | " + " | ".join("–" if table[system].get(metric) is None else format_number(table[system][metric])
                                                for system in systems) + " |")
        paragraphs += ["**Measured on the held-out test speakers** (`docs/RESULTS.md` explains each metric):", "\n".join(rows)]
    else:
        paragraphs.append("*No measured table for these weights yet.*")
    return "\n\n".join(paragraphs)
