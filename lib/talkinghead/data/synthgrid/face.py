"""A procedural 3-D face: 68 iBUG landmarks (plus the outline points a renderer needs) from identity and articulation.

Coordinates are "face units": x to the image right, y down, z towards the camera; the eyes are about 0.6 apart
and the chin is about 1.1 below the eyes' line. The mouth is articulatory: the jaw rotates about its hinge,
the lips round, spread, close and tuck under the upper teeth, so every viseme is a point in a small, continuous
parameter space and coarticulation is a smooth path through it (see ``articulation.py``).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import numpy as np

__all__ = ["Identity", "FaceState", "Camera", "sample_identity", "face_points", "project", "landmarks_2d"]

# Realistic skin tones from light to dark (sRGB), hair and iris colours; identities interpolate / pick from these.
SKIN_TONES = np.array(
    [(250, 220, 196), (238, 196, 166), (224, 172, 136), (200, 140, 104), (164, 108, 76), (120, 78, 54), (88, 58, 42)],
    dtype=np.float64,
)
HAIR_COLOURS = np.array(
    [(28, 24, 22), (58, 40, 28), (96, 66, 42), (150, 110, 70), (196, 160, 108), (140, 66, 34), (150, 146, 142)],
    dtype=np.float64,
)
IRIS_COLOURS = np.array([(74, 48, 30), (44, 32, 24), (72, 112, 150), (84, 114, 76), (118, 96, 58), (96, 110, 120)], dtype=np.float64)
HAIR_STYLES = ("short", "fringe", "long", "side", "bald")


@dataclass(frozen=True)
class Identity:
    """Who the face is: shape, colours and lighting. Lengths in face units, colours RGB 0–255."""

    face_width: float = 0.74  # half width of the jaw at ear level
    jaw_square: float = 2.4  # superellipse exponent of the jaw (2 round … 3.2 square)
    chin_length: float = 1.15  # chin below the jaw's top
    chin_width: float = 0.5  # how much the chin is narrowed (0 round … 1 pointed)
    forehead: float = 0.95  # skull height above the jaw's top
    eye_spacing: float = 0.31  # half the distance between the eye centres
    eye_width: float = 0.13  # half width of an eye
    eye_height: float = 0.065  # upper lid height over the eye's centre line
    eye_tilt: float = 0.01  # outer corners this much higher than inner ones
    iris_radius: float = 0.055
    brow_height: float = 0.2  # brows above the eye line
    brow_arch: float = 0.05
    brow_thickness: float = 0.045
    nose_length: float = 0.42  # nose tip below the eye line
    nose_width: float = 0.15
    mouth_y: float = 0.62  # lips' meeting line below the eye line
    mouth_width: float = 0.26  # half width of the mouth
    upper_lip: float = 0.075  # upper lip thickness
    lower_lip: float = 0.095  # lower lip thickness
    skin: tuple[float, float, float] = (224.0, 172.0, 136.0)
    lip: tuple[float, float, float] = (190.0, 110.0, 105.0)
    hair: tuple[float, float, float] = (58.0, 40.0, 28.0)
    iris: tuple[float, float, float] = (74.0, 48.0, 30.0)
    background: tuple[float, float, float] = (70.0, 90.0, 120.0)
    clothes: tuple[float, float, float] = (60.0, 60.0, 70.0)
    hair_style: str = "short"
    hair_length: float = 0.3  # how far the hair falls below the jaw's top (long styles)
    light: float = 0.3  # horizontal light direction: -1 from the image left … 1 from the right

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Identity":
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in d.items() if k in names})


def sample_identity(rng: np.random.Generator) -> Identity:
    """Draw a random plausible identity. Deterministic for a seeded ``rng``."""
    u = rng.uniform
    tone = u(0, len(SKIN_TONES) - 1)
    lo = int(tone)
    skin = SKIN_TONES[lo] + (tone - lo) * (SKIN_TONES[min(lo + 1, len(SKIN_TONES) - 1)] - SKIN_TONES[lo])
    skin = np.clip(skin * u(0.95, 1.05, 3), 0, 255)
    # Lips: the skin, redder and darker; darker skin has relatively darker, browner lips.
    lip = np.clip(skin * np.array([0.86, 0.58, 0.6]) + np.array([18, 0, 4]) * u(0.5, 1.5), 0, 255)
    hair = HAIR_COLOURS[rng.integers(len(HAIR_COLOURS))] * u(0.85, 1.15)
    hue = u(0, 2 * math.pi)
    grey = u(70, 170)
    background = np.clip(grey + u(15, 45) * np.array([math.cos(hue), math.cos(hue - 2.1), math.cos(hue + 2.1)]), 0, 255)
    clothes = np.clip(rng.uniform(20, 200, 3), 0, 255)
    style = HAIR_STYLES[rng.choice(len(HAIR_STYLES), p=[0.3, 0.2, 0.25, 0.18, 0.07])]
    return Identity(
        face_width=u(0.66, 0.8),
        jaw_square=u(2.0, 3.2),
        chin_length=u(1.05, 1.25),
        chin_width=u(0.3, 0.7),
        forehead=u(0.9, 1.02),
        eye_spacing=u(0.28, 0.34),
        eye_width=u(0.13, 0.155),
        eye_height=u(0.06, 0.08),
        eye_tilt=u(-0.01, 0.03),
        iris_radius=u(0.056, 0.066),
        brow_height=u(0.17, 0.24),
        brow_arch=u(0.02, 0.07),
        brow_thickness=u(0.03, 0.06),
        nose_length=u(0.38, 0.47),
        nose_width=u(0.12, 0.18),
        mouth_y=u(0.6, 0.67),
        mouth_width=u(0.22, 0.29),
        upper_lip=u(0.055, 0.09),
        lower_lip=u(0.075, 0.115),
        skin=tuple(float(c) for c in skin),
        lip=tuple(float(c) for c in lip),
        hair=tuple(float(c) for c in np.clip(hair, 0, 255)),
        iris=tuple(float(c) for c in IRIS_COLOURS[rng.integers(len(IRIS_COLOURS))]),
        background=tuple(float(c) for c in background),
        clothes=tuple(float(c) for c in clothes),
        hair_style=style,
        hair_length=u(0.8, 1.7) if style == "long" else u(0.0, 0.35),
        light=u(-0.8, 0.8),
    )


@dataclass(frozen=True)
class FaceState:
    """The face at one instant. Articulation in [0, 1]; angles in degrees; translation in face units."""

    jaw: float = 0.0  # jaw opening
    round: float = 0.0  # lip rounding and protrusion (/u/, /w/)
    spread: float = 0.0  # lip spreading (/i/)
    closure: float = 0.0  # lips pressed together (/p b m/)
    labiodental: float = 0.0  # lower lip under the upper teeth (/f v/)
    tongue: float = 0.0  # tongue tip raised and visible (/θ ð l/)
    eye_closure: float = 0.0  # 0 open … 1 shut
    brow: float = 0.0  # eyebrow raise
    yaw: float = 0.0
    pitch: float = 0.0
    roll: float = 0.0
    tx: float = 0.0
    ty: float = 0.0
    gaze_x: float = 0.0  # -1 … 1 of the available eye travel
    gaze_y: float = 0.0


def _eye(identity: Identity, side: int, closure: float) -> np.ndarray:
    """Six eye points (corner, upper, upper, corner, lower, lower) in iBUG order for the image-left (-1) or
    image-right (+1) eye, with the lids ``closure`` shut."""
    cx, cy = side * identity.eye_spacing, 0.0
    w, h_up, h_low = identity.eye_width, identity.eye_height, identity.eye_height * 0.62
    openness = 1.0 - float(np.clip(closure, 0.0, 1.0))
    shut = cy + 0.3 * h_low  # where the lids meet
    upper = shut + (cy - 0.943 * h_up - shut) * openness
    lower = shut + (cy + 0.943 * h_low - shut) * (0.25 + 0.75 * openness)
    outer, inner = cx + side * w, cx - side * w
    third = w / 3.0
    tilt = identity.eye_tilt
    # Image-left eye (36–41) starts at its outer corner; image-right eye (42–47) at its inner corner.
    if side < 0:
        xs = [outer, cx - third, cx + third, inner, cx + third, cx - third]
        ys = [cy - tilt, upper, upper, cy, lower, lower]
    else:
        xs = [inner, cx - third, cx + third, outer, cx + third, cx - third]
        ys = [cy, upper, upper, cy - tilt, lower, lower]
    zs = [0.04 if x == outer else 0.1 for x in xs]
    return np.stack([xs, ys, zs], axis=1)


def face_points(identity: Identity, state: FaceState) -> dict[str, np.ndarray]:
    """3-D points of the face in face units, before head pose.

    Returns:
        dict with ``"lmk"`` (68, 3) iBUG landmarks and the renderer's extra outlines: ``"forehead"`` (K, 3) skull
        arc from the image-right temple to the image-left one, ``"hairline"`` (K, 3), ``"iris"`` (2, 3) iris centres,
        ``"teeth"`` (4,) upper-teeth top/bottom and lower-teeth top/bottom y, ``"mouth_open"`` the inner-lip gap
        divided by the mouth width (the articulatory truth).
    """
    idt, s = identity, state
    lmk = np.zeros((68, 3))

    # Jaw 0–16: a superellipse from ear level (y = -0.1) around the chin; the lower jaw rotates open about the hinge.
    phi = np.linspace(0.0, math.pi, 17)
    c, sn = np.cos(phi), np.sin(phi)
    e = 2.0 / idt.jaw_square
    x = -idt.face_width * np.sign(c) * np.abs(c) ** e
    y = -0.1 + idt.chin_length * np.abs(sn) ** e
    x *= 1.0 - idt.chin_width * 0.35 * sn**6  # narrow the chin
    z = 0.12 - 0.75 * (x / idt.face_width) ** 2
    jaw_drop = 0.28 * s.jaw
    y += jaw_drop * sn**3
    lmk[0:17] = np.stack([x, y, z], 1)

    # Brows 17–26: outer to inner on the image left, inner to outer on the image right; raised by ``brow``.
    t = np.linspace(0.0, 1.0, 5)
    brow_x = idt.eye_spacing + idt.eye_width * (1.25 - 2.2 * t)  # outer → inner, positive side
    arch = idt.brow_arch * np.sin(np.pi * (0.15 + 0.75 * (1 - t)))
    brow_y = -idt.brow_height - arch - 0.07 * s.brow + 0.015 * t
    brow_z = 0.18 - 0.35 * brow_x**2
    lmk[17:22] = np.stack([-brow_x, brow_y, brow_z], 1)
    lmk[22:27] = np.stack([brow_x[::-1], brow_y[::-1], brow_z[::-1]], 1)

    # Nose 27–35: bridge from between the eyes to the tip; nostrils under the tip, image left to right.
    tip_y = idt.nose_length * 0.62
    lmk[27:31] = np.stack([np.zeros(4), np.linspace(-0.05, tip_y, 4), np.array([0.24, 0.32, 0.4, 0.5])], 1)
    nx = np.array([-1.0, -0.5, 0.0, 0.5, 1.0]) * idt.nose_width
    ny = tip_y + np.array([0.06, 0.09, 0.1, 0.09, 0.06])
    lmk[31:36] = np.stack([nx, ny, np.array([0.3, 0.36, 0.4, 0.36, 0.3])], 1)

    # Eyes 36–47.
    lmk[36:42] = _eye(idt, -1, s.eye_closure)
    lmk[42:48] = _eye(idt, +1, s.eye_closure)

    # Mouth 48–67. The inner-lip gap grows with the jaw and with rounding, and is squeezed shut by closure and by
    # the lower lip tucking under the upper teeth; the outer lower lip follows the jaw regardless.
    ym = idt.mouth_y + 0.05 * jaw_drop
    half = idt.mouth_width * (1.0 + 0.14 * s.spread - 0.3 * s.round)
    drop = 0.8 * jaw_drop
    gap = (0.006 + drop + 0.045 * s.round) * (1.0 - s.closure) * (1.0 - 0.9 * s.labiodental)
    up_in = ym - 0.2 * gap
    low_in = ym + 0.8 * gap
    up_out = up_in - idt.upper_lip * (1.0 + 0.2 * s.round)
    low_out = max(ym + drop + idt.lower_lip, low_in + 0.85 * idt.lower_lip) - 0.04 * s.labiodental
    corner_y = ym + 0.35 * drop - 0.015 * s.spread
    inner_half = half - 0.035 - 0.03 * s.round
    protrude = 0.08 * s.round
    zc, zm = 0.22 + protrude * 0.5, 0.34 + protrude
    # Outer 48–59: left corner, upper lip (with a cupid's bow) to the right corner, lower lip back.
    outer = [
        (-half, corner_y, zc),
        (-0.6 * half, up_out + 0.45 * idt.upper_lip, zm - 0.05),
        (-0.22 * half, up_out - 0.04 * idt.upper_lip, zm),
        (0.0, up_out + 0.12 * idt.upper_lip, zm + 0.01),
        (0.22 * half, up_out - 0.04 * idt.upper_lip, zm),
        (0.6 * half, up_out + 0.45 * idt.upper_lip, zm - 0.05),
        (half, corner_y, zc),
        (0.6 * half, low_out - 0.25 * idt.lower_lip, zm - 0.05),
        (0.25 * half, low_out - 0.03 * idt.lower_lip, zm),
        (0.0, low_out, zm),
        (-0.25 * half, low_out - 0.03 * idt.lower_lip, zm),
        (-0.6 * half, low_out - 0.25 * idt.lower_lip, zm - 0.05),
    ]
    inner = [
        (-inner_half, corner_y, zc + 0.02),
        (-0.45 * inner_half, up_in + 0.08 * gap, zm - 0.02),
        (0.0, up_in, zm - 0.02),
        (0.45 * inner_half, up_in + 0.08 * gap, zm - 0.02),
        (inner_half, corner_y, zc + 0.02),
        (0.45 * inner_half, low_in - 0.12 * gap, zm - 0.02 - 0.04 * s.labiodental),
        (0.0, low_in, zm - 0.02 - 0.04 * s.labiodental),
        (-0.45 * inner_half, low_in - 0.12 * gap, zm - 0.02 - 0.04 * s.labiodental),
    ]
    lmk[48:60] = outer
    lmk[60:68] = inner

    # Outlines for the renderer: the skull arc (temple to temple over the top) and the hairline.
    psi = np.linspace(0.0, math.pi, 15)
    skull = np.stack(
        [idt.face_width * 1.02 * np.cos(psi), -0.1 - idt.forehead * 1.08 * np.sin(psi), -0.3 + 0.3 * np.sin(psi)], 1
    )
    hairline = np.stack(
        [idt.face_width * 0.98 * np.cos(psi), -0.25 - (idt.forehead * 0.62) * np.sin(psi) ** 0.6, 0.05 + 0.1 * np.sin(psi)], 1
    )
    travel = np.array([s.gaze_x * 0.45 * idt.eye_width, s.gaze_y * 0.25 * idt.eye_height - 0.004, 0.0])
    iris = np.array([[-idt.eye_spacing, 0.0, 0.12], [idt.eye_spacing, 0.0, 0.12]]) + travel
    teeth = np.array([up_in - 0.03, up_in + 0.028 + 0.03 * s.labiodental, low_in - 0.018, low_in + 0.03])
    return {
        "lmk": lmk,
        "skull": skull,
        "hairline": hairline,
        "iris": iris,
        "teeth": teeth,
        "mouth_open": gap / (2.0 * half),
    }


@dataclass(frozen=True)
class Camera:
    """Pinhole camera looking at the face: ``size`` pixels square, ``scale`` pixels per face unit at 128 px
    (scaled with the size), the eye line ``center_y`` face units above the image centre."""

    size: int = 128
    scale: float = 0.345  # fraction of the image per face unit
    center_y: float = 0.12
    distance: float = 9.0  # face units: mild perspective


def _rotation(yaw: float, pitch: float, roll: float) -> np.ndarray:
    y, p, r = np.deg2rad([yaw, pitch, roll])
    ry = np.array([[math.cos(y), 0, math.sin(y)], [0, 1, 0], [-math.sin(y), 0, math.cos(y)]])
    rx = np.array([[1, 0, 0], [0, math.cos(p), -math.sin(p)], [0, math.sin(p), math.cos(p)]])
    rz = np.array([[math.cos(r), -math.sin(r), 0], [math.sin(r), math.cos(r), 0], [0, 0, 1]])
    return rz @ rx @ ry


_PIVOT = np.array([0.0, 0.35, -0.7])  # the head turns about the top of the neck


def project(points: np.ndarray, state: FaceState, camera: Camera, *, rotate: bool = True) -> np.ndarray:
    """Pose (yaw, pitch, roll about the neck, then translation) and project 3-D face points to pixels.

    Args:
        points: (..., 3) face-unit points.
        rotate: False for body parts that do not turn with the head (shoulders).
    Returns:
        (..., 2) pixel coordinates (x, y) in a ``camera.size`` square image.
    """
    p = np.asarray(points, dtype=np.float64)
    if rotate:
        p = (p - _PIVOT) @ _rotation(state.yaw, state.pitch, state.roll).T + _PIVOT
    p = p + np.array([state.tx, state.ty, 0.0])
    persp = camera.distance / (camera.distance - p[..., 2:3])
    px = camera.scale * camera.size
    xy = p[..., :2] * persp * px
    return xy + np.array([camera.size / 2.0, camera.size / 2.0 - camera.center_y * px])


def landmarks_2d(identity: Identity, state: FaceState, size: int = 128) -> np.ndarray:
    """The (68, 2) pixel landmarks the renderer draws at ``size``, without drawing anything."""
    return project(face_points(identity, state)["lmk"], state, Camera(size=size)).astype(np.float32)
