"""Alignment of a face to the canonical crop, and back.

Every model in the project works on canonical crops: a similarity transform (rotation, uniform scale,
translation) puts the two eye centres and the mouth centre of the face as close as possible (least squares,
Umeyama 1991) to fixed positions in an S×S square. The same transform, inverted, pastes generated crops back
into the original photo.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = ["CANONICAL_POINTS", "Alignment", "similarity_transform", "estimate_alignment", "warp", "anchor_points"]

# Canonical positions, as fractions of the crop size, of the right eye's centre (image left), the left eye's
# centre (image right) and the mouth's centre, at margin 0.
CANONICAL_POINTS = np.array([[0.39, 0.40], [0.61, 0.40], [0.5, 0.66]])


def anchor_points(lmk: np.ndarray) -> np.ndarray:
    """The three alignment anchors of (..., 68, 2) landmarks: right eye centre, left eye centre, mouth centre."""
    lmk = np.asarray(lmk, dtype=np.float64)
    return np.stack([lmk[..., 36:42, :].mean(-2), lmk[..., 42:48, :].mean(-2), lmk[..., 48:60, :].mean(-2)], axis=-2)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity transform taking ``src`` points to ``dst`` (Umeyama, 1991; no reflection).

    Args:
        src, dst: (N, 2) corresponding points, N ≥ 2.
    Returns:
        (2, 3) matrix M with dst ≈ src @ M[:, :2].T + M[:, 2].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(0), dst.mean(0)
    s, d = src - mu_s, dst - mu_d
    cov = d.T @ s / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ fix @ vt
    var = (s**2).sum() / len(src)
    scale = (sig * np.diag(fix)).sum() / max(var, 1e-12)
    m = np.zeros((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


@dataclass(frozen=True)
class Alignment:
    """A crop of ``size`` pixels: ``matrix`` (2, 3) maps original-image pixels to crop pixels."""

    matrix: np.ndarray
    size: int

    @property
    def inverse(self) -> np.ndarray:
        """(2, 3) matrix mapping crop pixels back to original-image pixels."""
        a = self.matrix[:, :2]
        inv = np.linalg.inv(a)
        return np.concatenate([inv, -(inv @ self.matrix[:, 2:])], axis=1)

    def to_crop(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) original-image pixel points → crop pixels."""
        return np.asarray(points) @ self.matrix[:, :2].T + self.matrix[:, 2]

    def to_image(self, points: np.ndarray) -> np.ndarray:
        """(..., 2) crop pixel points → original-image pixels."""
        inv = self.inverse
        return np.asarray(points) @ inv[:, :2].T + inv[:, 2]


def estimate_alignment(lmk: np.ndarray, *, size: int = 128, margin: float = 0.0) -> Alignment:
    """The canonical crop of a face from its landmarks.

    Args:
        lmk: (68, 2) landmarks in image pixels, or (T, 68, 2) for a clip: the clip gets one transform, from its
            mean anchors, so the head's own motion stays in the crop while the framing does not jitter.
        size: crop width and height in pixels.
        margin: extra context around the face: 0 is the canonical framing, 0.2 shrinks the face by 20 % towards
            the centre.
    """
    anchors = anchor_points(lmk)
    if anchors.ndim == 3:
        anchors = anchors.mean(0)
    target = 0.5 + (CANONICAL_POINTS - 0.5) / (1.0 + margin)
    return Alignment(similarity_transform(anchors, target * size), size)


def warp(image: np.ndarray, alignment: Alignment, *, resample: int = Image.BICUBIC) -> np.ndarray:
    """Cut the canonical crop out of ``image`` (H, W, 3) uint8; returns (size, size, 3) uint8. Where the crop
    reaches a little outside the image (up to an eighth of the crop), the image's border pixels are repeated."""
    pad = max(1, alignment.size // 8)
    padded = np.pad(np.asarray(image), ((pad, pad), (pad, pad), (0, 0)), mode="edge")
    inv = alignment.inverse.copy()  # Pillow wants the crop -> image map, row-major (a, b, c, d, e, f)
    inv[:, 2] += pad
    out = Image.fromarray(padded).transform(
        (alignment.size, alignment.size), Image.AFFINE, data=tuple(inv.ravel()), resample=resample
    )
    return np.asarray(out)
