"""Landmark metrics: LMD (landmark distance), blink rate and duration (EAR), mouth-opening correlation.

All take iBUG 68-point landmarks ``(T, 68, 2)`` in pixels of the aligned crop. In the evaluation harness the
landmarks of the generated frames and of the reference frames come from the same detector (the SynthGRID
landmark network), so a bias of the detector appears on both sides and cancels in the distance.

LMD follows Chen et al. ("Lip movements generation at a glance", ECCV 2018): the Euclidean distance between
corresponding mouth points (48–67, outer and inner lips), averaged over points, then over frames. The crops
are already aligned by ``face.align``, so no further registration is done. Pixels are those of the crop
(128 px for the SynthGRID benchmark); ``normalise=True`` divides by the reference's outer-eye-corner distance
(points 36–45) instead, which makes values comparable across crop sizes.
"""
from __future__ import annotations

import numpy as np

from talkinghead.face.landmarks import blink_stats, eye_aspect_ratio, mouth_opening

__all__ = ["MOUTH", "FACE", "landmark_distance", "lmd", "blink_metrics", "mouth_opening_correlation"]

MOUTH = slice(48, 68)  # outer (48–59) and inner (60–67) lips: the 20 points of LMD
FACE = slice(0, 68)


def _check(lmk: np.ndarray, name: str) -> np.ndarray:
    lmk = np.asarray(lmk, dtype=np.float64)
    if lmk.ndim != 3 or lmk.shape[1:] != (68, 2):
        raise ValueError(f"{name} must be (T, 68, 2) landmarks, got {lmk.shape}")
    return lmk


def landmark_distance(lmk: np.ndarray, reference: np.ndarray, *, points: slice = MOUTH, normalise: bool = False) -> np.ndarray:
    """Per-frame mean Euclidean distance between corresponding landmarks.

    Args:
        lmk, reference: ``(T, 68, 2)`` landmarks of the same frames (generated and reference).
        points: which landmarks: ``MOUTH`` (48–67) or ``FACE`` (all 68).
        normalise: divide by the reference's distance between the outer eye corners (36, 45) in each frame.
    Returns:
        ``(T,)`` distances (pixels, or fractions of the eye-corner distance).
    """
    lmk, reference = _check(lmk, "lmk"), _check(reference, "reference")
    if lmk.shape != reference.shape:
        raise ValueError(f"lmk {lmk.shape} and reference {reference.shape} must cover the same frames")
    distance = np.linalg.norm(lmk[:, points] - reference[:, points], axis=-1).mean(-1)
    if normalise:
        distance = distance / np.linalg.norm(reference[:, 36] - reference[:, 45], axis=-1)
    return distance


def lmd(lmk: np.ndarray, reference: np.ndarray, *, points: slice = MOUTH, normalise: bool = False) -> float:
    """Landmark distance (LMD) of a clip: ``landmark_distance`` averaged over frames. Lower is better; 0 when
    the landmarks coincide. Mouth points by default; ``points=FACE`` for the whole face."""
    return float(landmark_distance(lmk, reference, points=points, normalise=normalise).mean())


def blink_metrics(lmk: np.ndarray, *, fps: float = 25.0) -> dict[str, float]:
    """Blinks of a clip from its eye aspect ratio series (``face.landmarks.eye_aspect_ratio`` then
    ``face.landmarks.blink_stats``).

    Args:
        lmk: ``(T, 68, 2)`` landmarks.
        fps: frame rate of the clip.
    Returns:
        ``{"blink_rate": blinks per second, "blink_duration": mean duration in seconds, "blinks": count}``.
    """
    rate, duration, count = blink_stats(eye_aspect_ratio(_check(lmk, "lmk")), fps=fps)
    return {"blink_rate": float(rate), "blink_duration": float(duration), "blinks": float(count)}


def mouth_opening_correlation(lmk: np.ndarray, reference: np.ndarray) -> float:
    """Pearson correlation over time between the mouth opening (``face.landmarks.mouth_opening``) of the
    generated and the reference landmarks: does the mouth open and close when it should, whatever its shape.

    Returns:
        a float in [-1, 1]; 0 when either series is constant (e.g. the ``static`` baseline), which carries no
        information about the other.
    """
    a, b = mouth_opening(_check(lmk, "lmk")), mouth_opening(_check(reference, "reference"))
    if len(a) != len(b):
        raise ValueError(f"lmk ({len(a)} frames) and reference ({len(b)} frames) must cover the same frames")
    # Openings are ~0.0–0.6: a series that only wobbles by float rounding (a network on one repeated frame) is constant.
    if a.std() < 1e-6 or b.std() < 1e-6:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])
