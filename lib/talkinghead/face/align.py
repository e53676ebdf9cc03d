"""Alignment of a face to the canonical crop, and back.

Every model in the project works on canonical crops: a similarity transform (rotation, uniform scale,
translation) puts the two eye centres and the mouth centre of the face as close as possible (least squares,
Umeyama 1991) to fixed positions in an S×S square. The same transform, inverted, pastes generated crops back
into the original photo (``paste_back``, ``PasteBack``) through a feathered elliptical mask, so no seam shows.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

__all__ = [
    "CANONICAL_POINTS",
    "Alignment",
    "similarity_transform",
    "estimate_alignment",
    "warp",
    "anchor_points",
    "crop_mask",
    "PasteBack",
    "paste_back",
]

# Canonical positions, as fractions of the crop size, of the right eye's centre (image left), the left eye's
# centre (image right) and the mouth's centre, at margin 0.
CANONICAL_POINTS = np.array([[0.39, 0.40], [0.61, 0.40], [0.5, 0.66]])


def anchor_points(lmk: np.ndarray) -> np.ndarray:
    """The three alignment anchors of (..., 68, 2) landmarks: right eye centre, left eye centre, mouth centre."""
    lmk = np.asarray(lmk, dtype=np.float64)
    return np.stack([lmk[..., 36:42, :].mean(-2), lmk[..., 42:48, :].mean(-2), lmk[..., 48:60, :].mean(-2)], axis=-2)


def similarity_transform(src: np.ndarray, dst: np.ndarray, *, scale: bool = True) -> np.ndarray:
    """Least-squares similarity transform taking ``src`` points to ``dst`` (Umeyama, 1991; no reflection).

    Args:
        src, dst: (..., N, 2) corresponding points, N ≥ 2; leading dimensions broadcast, so one call aligns a
            batch of shapes.
        scale: False for a rigid transform (rotation and translation only).
    Returns:
        (..., 2, 3) matrix M with dst ≈ src @ M[:, :2].T + M[:, 2].
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(-2, keepdims=True), dst.mean(-2, keepdims=True)
    s, d = src - mu_s, dst - mu_d
    cov = np.swapaxes(d, -1, -2) @ s / src.shape[-2]  # (..., 2, 2)
    u, sig, vt = np.linalg.svd(cov)
    # Flip the weakest axis when the best orthogonal map would be a reflection.
    sign = np.where(np.linalg.det(u @ vt) < 0, -1.0, 1.0)
    fix = np.stack([np.ones_like(sign), sign], axis=-1)  # (..., 2) diagonal of the correction
    rot = (u * fix[..., None, :]) @ vt
    if scale:
        var = (s**2).sum((-1, -2)) / src.shape[-2]
        factor = (sig * fix).sum(-1) / np.maximum(var, 1e-12)
        rot = rot * factor[..., None, None]
    shift = mu_d[..., 0, :] - (rot @ mu_s[..., 0, :, None])[..., 0]
    return np.concatenate([rot, shift[..., None]], axis=-1)


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


def crop_mask(size: int, *, feather: float = 0.1) -> np.ndarray:
    """The paste-back mask in crop pixels: 1 inside the ellipse inscribed in the crop, falling smoothly to 0 at
    its edge over a band ``feather`` × ``size`` wide (0 gives a hard edge). Being 0 all along the crop's border,
    it leaves no seam where the crop ends.

    Returns:
        (size, size) float32 in [0, 1].
    """
    if not 0.0 <= feather <= 0.5:
        raise ValueError(f"feather must be in [0, 0.5] (a fraction of the crop size), got {feather}")
    centres = (np.arange(size) + 0.5) / size - 0.5  # pixel centres, crop fractions around the middle
    # Distance inside the ellipse's edge, in crop fractions (0.5 at the centre, 0 on the edge).
    depth = 0.5 - np.hypot(centres[None, :], centres[:, None])
    if feather == 0.0:
        return (depth > 0).astype(np.float32)
    t = np.clip(depth / feather, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)  # smoothstep: no kink where the band begins


class PasteBack:
    """Paste crops of one ``alignment`` into one photo. The mask is warped into the photo once, so a whole clip
    costs one crop warp and one blend per frame; only the crop's footprint in the photo is touched.

    Args:
        image: (H, W, 3) uint8, the original photo.
        alignment: the alignment the crops were cut with (``estimate_alignment``).
        feather: width of the mask's soft edge, a fraction of the crop size (see ``crop_mask``).
    """

    def __init__(self, image: np.ndarray, alignment: Alignment, *, feather: float = 0.1) -> None:
        image = np.asarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"image must be (H, W, 3) uint8, got {image.shape} {image.dtype}")
        self.image = image
        self.alignment = alignment
        h, w = image.shape[:2]
        s = alignment.size
        corners = alignment.to_image(np.array([[0.0, 0.0], [s, 0.0], [0.0, s], [s, s]]))
        x0, y0 = np.clip(np.floor(corners.min(0)).astype(int), 0, [w, h])
        x1, y1 = np.clip(np.ceil(corners.max(0)).astype(int), 0, [w, h])
        self.box = (int(x0), int(y0), int(max(x1, x0)), int(max(y1, y0)))  # footprint: x0, y0, x1, y1
        # Pillow wants, for each pixel of the output (the footprint), where to sample the crop.
        to_crop = alignment.matrix.astype(np.float64).copy()
        to_crop[:, 2] += to_crop[:, :2] @ np.array([x0, y0], dtype=np.float64)
        self._data = tuple(to_crop.ravel())
        self._region = (self.box[2] - self.box[0], self.box[3] - self.box[1])
        self.mask = np.zeros((h, w), np.float32)  # (H, W) weight of the crop in the result
        if min(self._region) > 0:
            mask = Image.fromarray(crop_mask(s, feather=feather)).transform(
                self._region, Image.AFFINE, data=self._data, resample=Image.BILINEAR
            )
            self.mask[y0:y1, x0:x1] = np.asarray(mask)

    def __call__(self, crops: np.ndarray) -> np.ndarray:
        """Paste (S, S, 3) or (T, S, S, 3) uint8 crops; returns (H, W, 3) or (T, H, W, 3) uint8 photos."""
        crops = np.asarray(crops)
        s = self.alignment.size
        if crops.shape[-3:] != (s, s, 3) or crops.dtype != np.uint8 or crops.ndim not in (3, 4):
            raise ValueError(f"crops must be ({s}, {s}, 3) or (T, {s}, {s}, 3) uint8, got {crops.shape} {crops.dtype}")
        batch = crops.reshape(-1, s, s, 3)
        out = np.repeat(self.image[None], len(batch), axis=0)  # (T, H, W, 3)
        x0, y0, x1, y1 = self.box
        if x1 > x0 and y1 > y0:
            warped = np.stack([
                np.asarray(Image.fromarray(c).transform(self._region, Image.AFFINE, data=self._data, resample=Image.BICUBIC))
                for c in batch
            ]).astype(np.float32)  # (T, h, w, 3)
            region = self.image[y0:y1, x0:x1].astype(np.float32)
            weight = self.mask[y0:y1, x0:x1, None]
            out[:, y0:y1, x0:x1] = np.clip(np.rint(region + weight * (warped - region)), 0, 255).astype(np.uint8)
        return out.reshape(crops.shape[:-3] + self.image.shape)


def paste_back(image: np.ndarray, crop: np.ndarray, alignment: Alignment, *, feather: float = 0.1) -> np.ndarray:
    """Put a (S, S, 3) uint8 ``crop`` (cut or generated with ``alignment``) back into ``image`` (H, W, 3) uint8
    through a feathered elliptical mask; returns a new (H, W, 3) uint8 image. For many frames of one photo use
    ``PasteBack``, which warps the mask once."""
    return PasteBack(image, alignment, feather=feather)(crop)
