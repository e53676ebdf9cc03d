"""The iBUG 68-point landmark convention and the measures built on it.

Point order (0-based), as in the 300-W / iBUG annotation: jaw 0–16 (from the subject's right, i.e. image left),
right brow 17–21, left brow 22–26, nose bridge 27–30, nostrils 31–35, right eye 36–41, left eye 42–47,
outer lips 48–59, inner lips 60–67. "Right" and "left" are the subject's; in a frontal image the subject's right
is on the image's left.
"""
from __future__ import annotations

import numpy as np

__all__ = ["GROUPS", "eye_aspect_ratio", "mouth_opening"]

GROUPS: dict[str, slice] = {
    "jaw": slice(0, 17),
    "right_brow": slice(17, 22),
    "left_brow": slice(22, 27),
    "nose_bridge": slice(27, 31),
    "nostrils": slice(31, 36),
    "right_eye": slice(36, 42),
    "left_eye": slice(42, 48),
    "outer_lips": slice(48, 60),
    "inner_lips": slice(60, 68),
}


def _ear(eye: np.ndarray) -> np.ndarray:
    # eye: (..., 6, 2) in the order corner, upper, upper, corner, lower, lower.
    vertical = np.linalg.norm(eye[..., 1, :] - eye[..., 5, :], axis=-1) + np.linalg.norm(eye[..., 2, :] - eye[..., 4, :], axis=-1)
    horizontal = np.linalg.norm(eye[..., 0, :] - eye[..., 3, :], axis=-1)
    return vertical / (2.0 * np.maximum(horizontal, 1e-8))


def eye_aspect_ratio(lmk: np.ndarray) -> np.ndarray:
    """Eye aspect ratio (Soukupová & Čech, 2016), the mean of both eyes.

    Args:
        lmk: (..., 68, 2) landmarks.
    Returns:
        (...,) EAR: about 0.25–0.35 for an open eye, near 0.05 for a closed one.
    """
    lmk = np.asarray(lmk, dtype=np.float64)
    return 0.5 * (_ear(lmk[..., GROUPS["right_eye"], :]) + _ear(lmk[..., GROUPS["left_eye"], :]))


def mouth_opening(lmk: np.ndarray) -> np.ndarray:
    """Inner-lip opening: the mean distance of the three upper inner-lip points (61–63) from the lower ones (67–65),
    divided by the mouth width (48–54), so it does not depend on the image scale.

    Args:
        lmk: (..., 68, 2) landmarks.
    Returns:
        (...,) opening; 0 for closed lips, about 0.3–0.6 for a wide-open mouth.
    """
    lmk = np.asarray(lmk, dtype=np.float64)
    gap = np.linalg.norm(lmk[..., [61, 62, 63], :] - lmk[..., [67, 66, 65], :], axis=-1).mean(-1)
    width = np.linalg.norm(lmk[..., 48, :] - lmk[..., 54, :], axis=-1)
    return gap / np.maximum(width, 1e-8)
