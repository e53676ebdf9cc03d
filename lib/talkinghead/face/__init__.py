"""Faces: the 68-point landmark convention and its measures (``landmarks``), finding a face and its landmarks in
a photo (``detect``), and the canonical crop and paste-back (``align``). See docs/FACES.md."""
from talkinghead.face.align import Alignment, PasteBack, estimate_alignment, paste_back, warp
from talkinghead.face.landmarks import (
    GROUPS,
    ShapePCA,
    blink_stats,
    canonical_shape,
    detect_blinks,
    estimate_yaw,
    eye_aspect_ratio,
    mouth_opening,
    procrustes,
    procrustes_mean,
)

_DETECT = ("FaceDetection", "FaceTooSmallError", "NoFaceError", "ProfileFaceError", "detect_landmarks", "detect_landmarks_batch")

__all__ = [
    "Alignment", "PasteBack", "estimate_alignment", "paste_back", "warp",
    "GROUPS", "ShapePCA", "blink_stats", "canonical_shape", "detect_blinks", "estimate_yaw", "eye_aspect_ratio",
    "mouth_opening", "procrustes", "procrustes_mean", *_DETECT,
]


def __getattr__(name: str):
    # detect pulls in talkinghead.io (ffmpeg, scipy.signal: about a second); crop-only users need not pay for it.
    if name in _DETECT:
        from talkinghead.face import detect

        return getattr(detect, name)
    raise AttributeError(f"module 'talkinghead.face' has no attribute {name!r}")
