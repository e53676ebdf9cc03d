"""The iBUG 68-point landmark convention and the measures built on it.

Point order (0-based), as in the 300-W / iBUG annotation: jaw 0–16 (from the subject's right, i.e. image left),
right brow 17–21, left brow 22–26, nose bridge 27–30, nostrils 31–35, right eye 36–41, left eye 42–47,
outer lips 48–59, inner lips 60–67. "Right" and "left" are the subject's; in a frontal image the subject's right
is on the image's left.

Built on the convention: the eye aspect ratio and blink detection (``detect_blinks``, ``blink_stats``), the
inner-lip opening, head yaw from the landmarks (``estimate_yaw``), Procrustes alignment of landmark sets, their
generalised Procrustes mean and a PCA shape model (``ShapePCA``).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from talkinghead.face.align import similarity_transform

__all__ = [
    "GROUPS",
    "STABLE_POINTS",
    "LIPS",
    "eye_aspect_ratio",
    "mouth_opening",
    "estimate_yaw",
    "Blink",
    "detect_blinks",
    "blink_stats",
    "procrustes",
    "procrustes_mean",
    "canonical_shape",
    "ShapePCA",
]

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


# A generic adult head at six landmarks (nose tip 30, chin 8, outer eye corners 36 and 45, mouth corners 48 and
# 54), in millimetres from the nose tip: x to the image right, y down, z towards the camera. Rounded adult mean
# proportions (Farkas, "Anthropometry of the Head and Face", 1994).
_HEAD_POINTS = np.array([30, 8, 36, 45, 48, 54])
_HEAD_MODEL = np.array(
    [[0.0, 0.0, 0.0], [0.0, 75.0, -30.0], [-45.0, -40.0, -45.0], [45.0, -40.0, -45.0], [-25.0, 32.0, -30.0], [25.0, 32.0, -30.0]]
)


def estimate_yaw(lmk: np.ndarray) -> np.ndarray:
    """Head yaw from 2-D landmarks: the scaled-orthographic pose of a generic 3-D head fitted to six landmarks.

    The nose tip stands well in front of the eye and mouth corners, so turning the head shifts it towards one
    side of them; the least-squares affine camera that maps the 3-D head onto the landmarks, made a rotation,
    says by how much. Accurate to about ±10° up to 60° on SynthGRID faces (it over-reads them a little: their
    noses stand out more than the generic head's); beyond that the landmarks themselves become guesses.

    Args:
        lmk: (..., 68, 2) landmarks in pixels.
    Returns:
        (...,) yaw in degrees, positive when the face turns towards the image's right (the nose moves right).
    """
    points = np.asarray(lmk, dtype=np.float64)[..., _HEAD_POINTS, :]
    points = points - points.mean(-2, keepdims=True)  # (..., 6, 2)
    model = _HEAD_MODEL - _HEAD_MODEL.mean(0)
    camera = np.swapaxes(np.linalg.pinv(model) @ points, -1, -2)  # (..., 2, 3): points ≈ model @ camera.T
    u, _, vt = np.linalg.svd(camera, full_matrices=False)
    rows = u @ vt  # the nearest two orthonormal rows: the rotation's first two rows
    depth = np.cross(rows[..., 0, :], rows[..., 1, :])  # its third row; for yaw θ alone, (-sin θ, 0, cos θ)
    return np.degrees(np.arctan2(-depth[..., 0], depth[..., 2]))


# --------------------------------------------------------------------------- blinks


@dataclass(frozen=True)
class Blink:
    """One blink: frames ``start`` … ``end - 1`` of the clip (``end`` exclusive), from the first frame the lids
    leave the open-eye level to the first frame they are back."""

    start: int
    end: int


def detect_blinks(
    ear: np.ndarray,
    *,
    fps: float = 25.0,
    closed_ratio: float = 0.6,
    open_ratio: float = 0.9,
    max_duration: float = 1.0,
) -> list[Blink]:
    """Blinks in an eye-aspect-ratio series, as sharp drops below the clip's own open-eye level.

    The open-eye reference is the clip's median EAR (eyes are open most of the time), so the thresholds are
    relative and work for any face shape, landmark detector or head pose. A blink is a run of frames below
    ``open_ratio`` × reference that reaches below ``closed_ratio`` × reference; the two thresholds (hysteresis)
    keep landmark jitter from splitting or inventing blinks. Runs longer than ``max_duration`` are eyes held
    shut (or a lost face), not blinks.

    Args:
        ear: (T,) EAR per frame (``eye_aspect_ratio``); NaN frames (no face) count as open.
        fps: frame rate, for ``max_duration``.
        closed_ratio: fraction of the open-eye EAR the lids must reach (Soukupová & Čech's fixed 0.2 on an
            open EAR of about 0.3 is ≈ 0.65).
        open_ratio: fraction of the open-eye EAR that marks the blink's start and end.
        max_duration: longest blink, seconds.
    Returns:
        blinks in time order.
    """
    ear = np.asarray(ear, dtype=np.float64)
    if ear.ndim != 1:
        raise ValueError(f"ear must be a (T,) series, got shape {ear.shape}")
    if not 0.0 < closed_ratio < open_ratio <= 1.0:
        raise ValueError(f"need 0 < closed_ratio < open_ratio <= 1, got {closed_ratio}, {open_ratio}")
    if ear.size == 0 or np.isnan(ear).all():
        return []
    reference = np.nanmedian(ear)
    with np.errstate(invalid="ignore"):  # NaN compares False: a frame without a face is not a closed eye
        down = ear < open_ratio * reference
        shut = ear < closed_ratio * reference
    # Runs of `down`: starts where it switches on, ends (exclusive) where it switches off.
    edges = np.diff(np.concatenate([[0], down.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    longest = max_duration * fps
    return [
        Blink(int(s), int(e)) for s, e in zip(starts, ends) if shut[s:e].any() and e - s <= longest
    ]


def blink_stats(ear: np.ndarray, fps: float = 25.0) -> tuple[float, float, int]:
    """Blink rate and duration of a clip from its (T,) EAR series (see ``detect_blinks``).

    Returns:
        (blinks per second, mean blink duration in seconds — NaN when there is none, number of blinks).
    """
    blinks = detect_blinks(ear, fps=fps)
    seconds = len(ear) / fps
    rate = len(blinks) / seconds if seconds > 0 else float("nan")
    duration = float(np.mean([b.end - b.start for b in blinks]) / fps) if blinks else float("nan")
    return rate, duration, len(blinks)


# --------------------------------------------------------------------------- shapes: Procrustes, mean, PCA

# Points that move neither with speech nor with blinks: nose bridge and nostrils, eye corners. Aligning on them
# keeps lip and jaw motion in the aligned shapes instead of spreading it over the alignment.
STABLE_POINTS = np.r_[27:36, 36, 39, 42, 45]
LIPS = np.arange(48, 68)  # outer and inner lips: the 20 points of lip-motion models (Das et al., 2019)


def _normalise(shape: np.ndarray) -> np.ndarray:
    """(..., 68, 2) → centred on the centroid, eye centres on a horizontal line, unit inter-ocular distance."""
    shape = np.asarray(shape, dtype=np.float64)
    shape = shape - shape.mean(-2, keepdims=True)
    eyes = shape[..., 42:48, :].mean(-2) - shape[..., 36:42, :].mean(-2)  # (..., 2) right eye → left eye
    square = np.maximum((eyes**2).sum(-1), 1e-24)[..., None, None]
    c, s = eyes[..., 0, None, None], eyes[..., 1, None, None]
    # [[c, s], [-s, c]] rotates by minus the eye line's angle and scales by |eyes|; divide by |eyes|² for unit length.
    x, y = shape[..., 0:1], shape[..., 1:2]
    return np.concatenate([c * x + s * y, -s * x + c * y], axis=-1) / square


def procrustes(src: np.ndarray, dst: np.ndarray, *, scale: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """Align landmark sets ``src`` to ``dst`` by a least-squares similarity (or, with ``scale=False``, rigid)
    transform (``face.align.similarity_transform``).

    Args:
        src: (..., P, 2) shapes; dst: (P, 2) or (..., P, 2), broadcast against ``src``.
    Returns:
        aligned (..., P, 2) ``src`` in ``dst``'s frame, and the (..., 2, 3) transforms.
    """
    src = np.asarray(src, dtype=np.float64)
    transform = similarity_transform(src, dst, scale=scale)
    aligned = src @ np.swapaxes(transform[..., :2], -1, -2) + transform[..., None, :, 2]
    return aligned, transform


def procrustes_mean(shapes: np.ndarray, *, iterations: int = 10, tol: float = 1e-8) -> np.ndarray:
    """Generalised Procrustes analysis: the mean shape that all shapes, each similarity-aligned to it, agree on.

    Args:
        shapes: (N, 68, 2) landmarks in any pixel frames.
        iterations: most align-then-average rounds (it converges in a few).
        tol: stop when the mean moves less than this (inter-ocular units).
    Returns:
        (68, 2) mean shape, normalised: centroid at 0, eye centres on a horizontal line one unit apart
        (subject's right eye at negative x).
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    mean = _normalise(shapes[0])
    for _ in range(iterations):
        aligned, _ = procrustes(shapes, mean)
        new = _normalise(aligned.mean(0))
        moved = np.abs(new - mean).max()
        mean = new
        if moved < tol:
            break
    return mean


def canonical_shape() -> np.ndarray:
    """The canonical mean 68-point shape, (68, 2) float64, normalised as in ``procrustes_mean``.

    It is SynthGRID's: the Procrustes mean of 500 neutral faces (``sample_identity`` seed 0, mouth closed, eyes
    open, frontal), so its proportions are the procedural face's, close to but not those of real faces. For real
    photographs compute ``procrustes_mean`` of their own landmarks.
    """
    return _SYNTHGRID_MEAN.copy()


class ShapePCA:
    """A linear shape model (point distribution model): PCA of Procrustes-aligned landmarks.

    Shapes are aligned to their Procrustes mean on ``align_points`` (by default points that do not move with
    speech), then the model is fitted on ``points`` only, e.g. ``LIPS`` for a lip-motion model with 33
    components as in Das et al. (2019). Coefficients are in inter-ocular units.

    Args:
        n_components: number of principal components kept.
        points: indices (or a slice) of the modelled points; None for all 68.
        align_points: indices of the points the alignment uses.
        scale: align with a similarity (True) or a rigid (False) transform.
    """

    def __init__(
        self,
        *,
        n_components: int = 33,
        points: np.ndarray | slice | None = None,
        align_points: np.ndarray | slice = STABLE_POINTS,
        scale: bool = True,
    ) -> None:
        self.n_components = n_components
        self.points = np.arange(68)[points] if points is not None else np.arange(68)
        self.align_points = np.arange(68)[align_points]
        self.scale = scale

    def align(self, shapes: np.ndarray) -> np.ndarray:
        """(..., 68, 2) shapes → (..., 68, 2) in the model's frame (aligned to ``reference_`` on ``align_points``)."""
        shapes = np.asarray(shapes, dtype=np.float64)
        _, transform = procrustes(shapes[..., self.align_points, :], self.reference_[self.align_points], scale=self.scale)
        return shapes @ np.swapaxes(transform[..., :2], -1, -2) + transform[..., None, :, 2]

    def fit(self, shapes: np.ndarray) -> "ShapePCA":
        """Fit on (N, 68, 2) landmarks; returns self with ``reference_`` (68, 2) the Procrustes mean,
        ``mean_`` (P, 2), ``components_`` (K, P·2) orthonormal rows, ``explained_variance_`` (K,) and
        ``explained_variance_ratio_`` (K,)."""
        shapes = np.asarray(shapes, dtype=np.float64)
        if shapes.ndim != 3 or shapes.shape[1:] != (68, 2):
            raise ValueError(f"shapes must be (N, 68, 2), got {shapes.shape}")
        dims = 2 * len(self.points)
        if not 1 <= self.n_components <= min(len(shapes) - 1, dims):
            raise ValueError(
                f"n_components={self.n_components} needs at least {self.n_components + 1} shapes and "
                f"{self.n_components} coordinates; got {len(shapes)} shapes of {dims} coordinates"
            )
        self.reference_ = procrustes_mean(shapes)
        data = self.align(shapes)[:, self.points].reshape(len(shapes), dims)  # (N, P·2)
        mean = data.mean(0)
        _, sv, vt = np.linalg.svd(data - mean, full_matrices=False)
        variance = sv**2 / (len(shapes) - 1)
        self.mean_ = mean.reshape(-1, 2)
        self.components_ = vt[: self.n_components]
        self.explained_variance_ = variance[: self.n_components]
        self.explained_variance_ratio_ = self.explained_variance_ / max(variance.sum(), 1e-300)
        return self

    def transform(self, shapes: np.ndarray) -> np.ndarray:
        """(..., 68, 2) landmarks (any pixel frame) → (..., K) shape coefficients."""
        data = self.align(shapes)[..., self.points, :] - self.mean_
        return data.reshape(*data.shape[:-2], -1) @ self.components_.T

    def inverse_transform(self, coeffs: np.ndarray) -> np.ndarray:
        """(..., K) coefficients → (..., P, 2) modelled points in the model's (normalised) frame."""
        flat = np.asarray(coeffs, dtype=np.float64) @ self.components_
        return flat.reshape(*flat.shape[:-1], -1, 2) + self.mean_


# procrustes_mean of 500 neutral SynthGRID faces, see canonical_shape (tests/test_face_landmarks.py recomputes it).
_SYNTHGRID_MEAN = np.array(
    [
        [-1.0899, -0.7062], [-1.0760, -0.2185], [-1.0336, 0.1148], [-0.9584, 0.3989],
        [-0.8433, 0.6438], [-0.6852, 0.8482], [-0.4936, 1.0043], [-0.2823, 1.1031],
        [0.0000, 1.1394], [0.2823, 1.1031], [0.4936, 1.0043], [0.6852, 0.8482],
        [0.8433, 0.6438], [0.9584, 0.3989], [1.0336, 0.1148], [1.0760, -0.2185],
        [1.0899, -0.7062], [-0.7871, -0.9107], [-0.6629, -0.9411], [-0.5377, -0.9517],
        [-0.4117, -0.9370], [-0.2852, -0.9001], [0.2852, -0.9001], [0.4117, -0.9370],
        [0.5377, -0.9517], [0.6629, -0.9411], [0.7871, -0.9107], [0.0000, -0.6390],
        [0.0000, -0.4671], [0.0000, -0.2920], [0.0000, -0.1126], [-0.2489, -0.0238],
        [-0.1253, 0.0298], [0.0000, 0.0492], [0.1253, 0.0298], [0.2489, -0.0238],
        [-0.7252, -0.5735], [-0.5772, -0.6640], [-0.4244, -0.6640], [-0.2715, -0.5570],
        [-0.4244, -0.4907], [-0.5772, -0.4907], [0.2715, -0.5570], [0.4244, -0.6640],
        [0.5772, -0.6640], [0.7252, -0.5735], [0.5772, -0.4907], [0.4244, -0.4907],
        [-0.4175, 0.4840], [-0.2525, 0.4246], [-0.0931, 0.3713], [0.0000, 0.3916],
        [0.0931, 0.3713], [0.2525, 0.4246], [0.4175, 0.4840], [0.2525, 0.6095],
        [0.1058, 0.6508], [0.0000, 0.6556], [-0.1058, 0.6508], [-0.2525, 0.6095],
        [-0.3610, 0.4864], [-0.1640, 0.4948], [0.0000, 0.4940], [0.1640, 0.4948],
        [0.3610, 0.4864], [0.1640, 0.5028], [0.0000, 0.5040], [-0.1640, 0.5028],
    ]
)
_SYNTHGRID_MEAN.flags.writeable = False
