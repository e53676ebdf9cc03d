"""Find the face in a photo and its 68 landmarks: one function, pluggable backends.

Backends (see docs/FACES.md for the trade-offs):

- ``dlib`` (the default, ``auto``): offline. dlib's HOG frontal-face detector (built into dlib) and its 68-point
  shape predictor (Kazemi & Sullivan, 2014), whose model file ships in the ``face_recognition_models`` package.
- ``fan``: the ``face-alignment`` package (Bulat & Tzimiropoulos, 2017): the S3FD detector and the 2D-FAN
  network. Its weights download on first use into the torch hub cache; offline, place them there by hand
  (``fan_weights`` lists the URLs and paths).
- ``synthgrid``: our small network trained on SynthGRID's exact landmarks (``talkinghead.nn.landmark_net``), for
  canonical crops only: the whole image is the face, there is no detector. It measures generated frames.

For photographs (``dlib``, ``fan``) the checks are the same: no face, a face smaller than ``min_face`` pixels and
a face turned more than ``max_yaw`` degrees are errors that say what photo to use instead; when there are several
faces the largest is taken (faces within 10 % of its area count as ties, broken by the detector's score) and
``FaceDetection.n_faces`` tells the caller there were more.
"""
from __future__ import annotations

import functools
import importlib.util
import inspect
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import numpy as np
from PIL import Image

from talkinghead.face.landmarks import estimate_yaw
from talkinghead.hub import WeightsError
from talkinghead.io import InputError, load_image

__all__ = [
    "BACKENDS",
    "FaceDetection",
    "NoFaceError",
    "FaceTooSmallError",
    "ProfileFaceError",
    "detect_landmarks",
    "detect_landmarks_batch",
    "dlib_predictor_path",
    "fan_weights",
]

BACKENDS = ("dlib", "fan", "synthgrid")
RECOMMENDED_FACE = 64  # px: the face width the error messages ask for; min_face is the hard limit
_TIE = 0.9  # faces with at least this fraction of the largest face's area tie with it
_DETECT_SIDE = 1280  # px: larger photos are searched for faces at this size (landmarks use the full size)


class NoFaceError(InputError):
    """No face in the photo."""


class FaceTooSmallError(InputError):
    """The face is smaller than the models can use."""


class ProfileFaceError(InputError):
    """The face is turned too far from the camera."""


@dataclass(frozen=True)
class FaceDetection:
    """The face found in one image."""

    lmk: np.ndarray  # (68, 2) float32 iBUG landmarks in image pixels
    box: tuple[float, float, float, float]  # x0, y0, x1, y1 in image pixels (the whole image for ``synthgrid``)
    score: float  # the detector's confidence (its own scale; NaN for ``synthgrid``, which has no detector)
    n_faces: int  # faces found; more than 1 means the largest was taken
    backend: str  # the backend that found it


# --------------------------------------------------------------------------- dlib


def dlib_predictor_path() -> Path:
    """The 68-point shape predictor file of the ``face_recognition_models`` package (found without importing it:
    its ``__init__`` needs ``pkg_resources``, which recent setuptools no longer ships)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            "the dlib landmark backend needs the 68-point model from the face_recognition_models package: "
            "pip install face_recognition_models",
            name="face_recognition_models",
        )
    path = Path(spec.submodule_search_locations[0]) / "models" / "shape_predictor_68_face_landmarks.dat"
    if not path.is_file():
        raise WeightsError(f"{path} is missing: reinstall it with pip install --force-reinstall face_recognition_models")
    return path


@functools.cache
def _dlib_models() -> tuple[Any, Any]:
    """dlib's HOG face detector and the 68-point predictor, loaded once (the predictor file is 100 MB)."""
    try:
        import dlib
    except ImportError as err:
        raise ModuleNotFoundError(
            f"the dlib landmark backend needs dlib ({err}): pip install dlib-bin", name="dlib"
        ) from err
    return dlib.get_frontal_face_detector(), dlib.shape_predictor(str(dlib_predictor_path()))


def _dlib_boxes(image: np.ndarray, device: str | None) -> list[tuple[tuple[float, ...], float]]:
    """(box, score) of every face dlib's HOG detector finds in an (H, W, 3) uint8 image (CPU only)."""
    detector, _ = _dlib_models()
    h, w = image.shape[:2]
    factor = min(1.0, _DETECT_SIDE / max(h, w))
    small = image if factor == 1.0 else np.asarray(Image.fromarray(image).resize((round(w * factor), round(h * factor)), Image.BILINEAR))
    # The HOG window is 80 px; one upsampling finds faces down to about 40 px. On small images look once more at
    # 4× so that a tiny face is reported as too small rather than as no face.
    rects, scores, _ = detector.run(small, 1, 0.0)
    if not rects and max(small.shape[:2]) <= 800:
        rects, scores, _ = detector.run(small, 2, 0.0)
    return [
        (tuple(v / factor for v in (r.left(), r.top(), r.right() + 1, r.bottom() + 1)), float(score))
        for r, score in zip(rects, scores)
    ]


def _dlib_landmarks(image: np.ndarray, box: tuple[float, ...], device: str | None) -> np.ndarray:
    """(68, 2) float32 landmarks of the face in ``box`` (x0, y0, x1, y1; dlib's rectangles are inclusive)."""
    import dlib

    _, predictor = _dlib_models()
    x0, y0, x1, y1 = (round(v) for v in box)
    shape = predictor(image, dlib.rectangle(x0, y0, x1 - 1, y1 - 1))
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


# --------------------------------------------------------------------------- fan (face-alignment)


def fan_weights() -> dict[str, tuple[str, Path]]:
    """The files the ``fan`` backend needs: ``{name: (url, path)}``. The URLs are read from the installed
    face-alignment package; the paths are in the torch hub cache (``torch.hub.get_dir()/checkpoints``, i.e.
    ``$TORCH_HOME/hub/checkpoints``), where the package looks before downloading."""
    import torch

    try:
        from face_alignment.api import models_urls
        from face_alignment.detection.sfd.sfd_detector import models_urls as detector_urls
    except ImportError as err:
        raise ModuleNotFoundError(f"the fan landmark backend needs face-alignment ({err}): pip install face-alignment", name="face_alignment") from err
    checkpoints = Path(torch.hub.get_dir()) / "checkpoints"
    urls = {"2DFAN-4": models_urls["2DFAN-4"], "s3fd": detector_urls["s3fd"]}
    return {name: (url, checkpoints / os.path.basename(urlparse(url).path)) for name, url in urls.items()}


def _fan_model(device: str) -> Any:
    """A FaceAlignment for ``device``, made once per device and weights location."""
    return _load_fan(device, tuple(str(path) for _, path in fan_weights().values()))


@functools.cache
def _load_fan(device: str, paths: tuple[str, ...]) -> Any:
    # ``paths`` only keys the cache: another TORCH_HOME means other weight files.
    import face_alignment

    kwargs: dict[str, Any] = {}
    # torch.compile costs minutes on CPU for little gain; versions before 1.5 have no such argument.
    if device.startswith("cpu") and "compile" in inspect.signature(face_alignment.FaceAlignment).parameters:
        kwargs["compile"] = False
    try:
        return face_alignment.FaceAlignment(
            face_alignment.LandmarksType.TWO_D, device=device, face_detector="sfd", flip_input=False, **kwargs
        )
    except Exception as err:  # the download failed (offline, blocked, moved): say what to place where
        missing = [(name, url, path) for name, (url, path) in fan_weights().items() if not path.is_file()]
        if not missing:
            raise
        lines = "; ".join(f"{name}: download {url} and save it as {path}" for name, url, path in missing)
        raise WeightsError(
            f"the fan landmark backend could not download its weights ({type(err).__name__}: {err}). "
            f"On a machine with internet access, {lines} (the torch hub cache; set TORCH_HOME to move it), "
            "or use backend='dlib', which needs no download"
        ) from err


def _fan_boxes(image: np.ndarray, device: str | None) -> list[tuple[tuple[float, ...], float]]:
    """(box, score) of every face S3FD finds in an (H, W, 3) uint8 image."""
    boxes = _fan_model(device or "cpu").face_detector.detect_from_image(image)
    return [(tuple(float(v) for v in box[:4]), float(box[4])) for box in boxes]


def _fan_landmarks(image: np.ndarray, box: tuple[float, ...], device: str | None) -> np.ndarray:
    """(68, 2) float32 landmarks of the face in ``box``: 2D-FAN on that face only (the package would run it on
    every face it finds)."""
    lmks = _fan_model(device or "cpu").get_landmarks_from_image(image, detected_faces=[np.array(box)])
    return np.asarray(lmks[0], dtype=np.float32)[:, :2]


# --------------------------------------------------------------------------- synthgrid


@functools.cache
def _landmark_net(device: str | None) -> Any:
    try:
        from talkinghead.nn.landmark_net import LandmarkNet
    except ModuleNotFoundError as err:
        if not (err.name or "").startswith("talkinghead"):
            raise
        raise ModuleNotFoundError(
            "the synthgrid landmark backend needs talkinghead.nn.landmark_net, which this installation lacks: "
            "update talkinghead, or use backend='dlib' or 'fan' for photographs",
            name=err.name,
        ) from err
    return LandmarkNet.from_pretrained(device=device)  # WeightsError says how to get the weights


def _synthgrid_landmarks(frames: np.ndarray, device: str | None, model: Any) -> np.ndarray:
    """(N, S, S, 3) uint8 canonical crops → (N, 68, 2) float32 landmarks."""
    net = model if model is not None else _landmark_net(device)
    return np.asarray(net.predict(frames), dtype=np.float32)


# --------------------------------------------------------------------------- the public functions


# Photo backends: name → (find the faces' boxes and scores, landmarks of one box).
_PHOTO_BACKENDS = {"dlib": (_dlib_boxes, _dlib_landmarks), "fan": (_fan_boxes, _fan_landmarks)}


def _pick(faces: list[tuple[tuple[float, ...], float]]) -> tuple[tuple[float, ...], float]:
    """The largest face; faces within 10 % of its area tie, and the detector's score breaks the tie (a false
    detection can be as large as the real face, but scores lower)."""
    areas = np.array([(b[2] - b[0]) * (b[3] - b[1]) for b, _ in faces])
    ties = [f for f, a in zip(faces, areas) if a >= _TIE * areas.max()]
    return max(ties, key=lambda f: f[1])


def _photo_detection(
    image: np.ndarray, name: str, backend: str, device: str | None, min_face: float, max_yaw: float
) -> FaceDetection:
    find_faces, find_landmarks = _PHOTO_BACKENDS[backend]
    faces = find_faces(image, device)
    wanted = max(RECOMMENDED_FACE, min_face)
    if not faces:
        raise NoFaceError(f"no face found in {name}: use a frontal photo where the face is at least {wanted:.0f} px wide")
    box, score = _pick(faces)
    width, height = box[2] - box[0], box[3] - box[1]
    if min(width, height) < min_face:
        raise FaceTooSmallError(
            f"the face in {name} is only {width:.0f}×{height:.0f} px, smaller than the {min_face:.0f} px the models "
            f"need: use a larger photo, or one taken closer, where the face is at least {wanted:.0f} px wide"
        )
    lmk = find_landmarks(image, box, device)
    yaw = float(estimate_yaw(lmk))
    if abs(yaw) > max_yaw:
        raise ProfileFaceError(
            f"the face in {name} is turned about {abs(yaw):.0f}° away from the camera (at most {max_yaw:.0f}° works): "
            "use a photo where the person looks towards the camera"
        )
    return FaceDetection(lmk.astype(np.float32), tuple(float(v) for v in box), score, len(faces), backend)


def _check_backend(backend: str) -> str:
    backend = "dlib" if backend == "auto" else backend
    if backend not in BACKENDS:
        raise ValueError(f"unknown landmark backend {backend!r}: use 'auto' or one of {', '.join(BACKENDS)}")
    return backend


def _name(image: Any) -> str:
    return Path(image).name if isinstance(image, (str, os.PathLike)) else "the photo"


def detect_landmarks(
    image: Any,
    *,
    backend: str = "auto",
    device: str | None = None,
    min_face: float = 40,
    max_yaw: float = 45.0,
    model: Any = None,
) -> FaceDetection:
    """The face in a photo and its 68 landmarks.

    Args:
        image: a photo: path, PIL image or (H, W, 3) uint8 array (anything ``talkinghead.io.load_image`` takes).
            For ``synthgrid``, a canonical square crop.
        backend: ``"auto"`` (= ``"dlib"``), ``"dlib"``, ``"fan"`` or ``"synthgrid"`` (see the module docstring).
        device: torch device for ``fan`` and ``synthgrid`` (default CPU); ``dlib`` runs on the CPU.
        min_face: smallest usable face box side, in pixels.
        max_yaw: largest usable head turn, in degrees (``face.landmarks.estimate_yaw``).
        model: for ``synthgrid``, a loaded ``LandmarkNet`` to use instead of the shipped weights.
    Returns:
        the detection; with several faces, the largest (``n_faces`` says how many there were).
    Raises:
        NoFaceError, FaceTooSmallError, ProfileFaceError (``InputError``s) for unusable photos (not for
        ``synthgrid``, which takes the crop as the face); ``talkinghead.hub.WeightsError`` when a backend's
        weights are missing; ``ModuleNotFoundError`` when its package is.
    """
    backend = _check_backend(backend)
    name = _name(image)
    image = load_image(image)
    if backend == "synthgrid":
        return detect_landmarks_batch(image[None], backend=backend, device=device, model=model)[0]
    return _photo_detection(image, name, backend, device, min_face, max_yaw)


def detect_landmarks_batch(
    images: np.ndarray | Sequence[Any],
    *,
    backend: str = "auto",
    device: str | None = None,
    min_face: float = 40,
    max_yaw: float = 45.0,
    model: Any = None,
) -> list[FaceDetection]:
    """``detect_landmarks`` for many images. ``synthgrid`` runs the network on (N, S, S, 3) uint8 crops in
    batches; the photo backends take each image in turn and raise on the first unusable one, naming its index."""
    backend = _check_backend(backend)
    if backend == "synthgrid":
        frames = np.stack([load_image(im) for im in images]) if not isinstance(images, np.ndarray) else images
        lmks = _synthgrid_landmarks(frames, device, model)
        h, w = frames.shape[1:3]
        return [FaceDetection(lmk, (0.0, 0.0, float(w), float(h)), float("nan"), 1, backend) for lmk in lmks]
    return [
        _photo_detection(load_image(im), f"image {i}" if not isinstance(im, (str, os.PathLike)) else _name(im),
                         backend, device, min_face, max_yaw)
        for i, im in enumerate(images)
    ]
