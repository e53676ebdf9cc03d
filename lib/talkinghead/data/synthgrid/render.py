"""Render the procedural face to an anti-aliased RGB image.

Layers are drawn with Pillow (fast polygon fills in C) at ``supersample`` times the output size and box-filtered
down, which is what anti-aliases them. Soft shading (the face's fall-off to its edges, the eye sockets, the
shadow beside the nose and under the lip) is drawn once per frame into a small mask, blurred, and blended, so a
frame costs a few milliseconds. The renderer is hand-written because no maintained library draws a face from
68 landmarks; it only needs to read as a face at a glance and keep its pixels consistent with the landmarks.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageChops, ImageDraw, ImageFilter

from talkinghead.data.synthgrid.face import Camera, FaceState, Identity, face_points, project

__all__ = ["FaceRenderer", "RenderedFrame"]


def _catmull_rom(points: np.ndarray, samples: int = 6, closed: bool = True) -> np.ndarray:
    """A smooth curve through ``points`` (N, 2): ``samples`` points per segment of a uniform Catmull–Rom spline."""
    p = np.asarray(points, dtype=np.float64)
    if closed:
        ext = np.concatenate([p[-1:], p, p[:2]])
    else:
        ext = np.concatenate([2 * p[:1] - p[1:2], p, 2 * p[-1:] - p[-2:-1]])
    segments = len(p) if closed else len(p) - 1
    idx = np.arange(segments)[:, None] + np.arange(4)[None, :]  # (S, 4) control points of each segment
    curve = np.einsum("tk,skd->std", _basis(samples), ext[idx]).reshape(-1, 2)  # (S * samples, 2)
    return curve if closed else np.concatenate([curve, p[-1:]])


_BASES: dict[int, np.ndarray] = {}


def _basis(samples: int) -> np.ndarray:
    """(samples, 4) Catmull–Rom weights of the four control points at ``samples`` steps of one segment."""
    if samples not in _BASES:
        t = np.linspace(0.0, 1.0, samples, endpoint=False)
        _BASES[samples] = 0.5 * np.stack([-t + 2 * t**2 - t**3, 2 - 5 * t**2 + 3 * t**3, t + 4 * t**2 - 3 * t**3, -(t**2) + t**3], 1)
    return _BASES[samples]


def _poly(points: np.ndarray) -> list[float]:
    return np.asarray(points, dtype=np.float64).ravel().tolist()


def _rgb(colour, factor: float = 1.0, alpha: int | None = None) -> tuple[int, ...]:
    c = tuple(min(255, max(0, int(v * factor))) for v in colour)
    return c if alpha is None else (*c, alpha)


def _shrink(points: np.ndarray, factor: float, shift: np.ndarray | None = None) -> np.ndarray:
    centre = points.mean(0)
    out = centre + (points - centre) * factor
    return out if shift is None else out + shift


@dataclass(frozen=True)
class RenderedFrame:
    """One rendered frame: ``image`` (S, S, 3) uint8, ``lmk`` (68, 2) pixel landmarks, ``mouth_open`` the
    articulatory inner-lip gap over mouth width."""

    image: np.ndarray
    lmk: np.ndarray
    mouth_open: float


class FaceRenderer:
    """Draws one identity at a given size; keeps the per-identity layers (background, colours) between frames."""

    def __init__(
        self,
        identity: Identity,
        *,
        size: int = 128,  # output width and height in pixels (64–256)
        supersample: int = 2,  # draw at this multiple, then box-filter down (anti-aliasing)
    ) -> None:
        if not 32 <= size <= 1024:
            raise ValueError(f"size {size} is out of range: use 64–256 pixels")
        self.identity = identity
        self.size = size
        self.ss = supersample
        self.camera = Camera(size=size * supersample)
        self.out_camera = Camera(size=size)
        big = size * supersample
        # Background: a soft vertical gradient with a vignette, like a studio backdrop.
        yy, xx = np.mgrid[0:big, 0:big] / big
        bg = np.array(identity.background)[None, None, :] * (1.08 - 0.25 * yy[..., None])
        bg *= (1.0 - 0.35 * ((xx - 0.5) ** 2 + (yy - 0.45) ** 2))[..., None]
        self._background = Image.fromarray(np.clip(bg, 0, 255).astype(np.uint8))
        skin = np.array(identity.skin)
        self._skin = _rgb(skin)
        self._shadow = Image.new("RGB", (big, big), _rgb(skin * np.array([0.62, 0.55, 0.55])))
        self._highlight = Image.new("RGB", (big, big), _rgb(np.minimum(skin * 1.12 + 12, 255)))
        self._shade_size = max(32, size // 2)

    # ------------------------------------------------------------------ helpers
    def _to_px(self, pts: np.ndarray, state: FaceState, *, rotate: bool = True) -> np.ndarray:
        return project(pts, state, self.camera, rotate=rotate)

    def _shade_mask(self, polys: list[tuple[np.ndarray, int]], base: int, blur: float) -> Image.Image:
        """Draw (polygon, value) pairs into a small L mask over ``base``, blur it, and scale to full size."""
        small = self._shade_size
        k = small / (self.size * self.ss)
        mask = Image.new("L", (small, small), base)
        draw = ImageDraw.Draw(mask)
        for poly, value in polys:
            draw.polygon(_poly(poly * k), fill=value)
        mask = mask.filter(ImageFilter.GaussianBlur(blur * small))
        return mask.resize((self.size * self.ss,) * 2, Image.BILINEAR)

    # ------------------------------------------------------------------ main
    def render(self, state: FaceState) -> RenderedFrame:
        """Draw the face in ``state``; returns the image, its 68 landmarks in output pixels and the mouth opening."""
        idt = self.identity
        pts = face_points(idt, state)
        lmk = self._to_px(pts["lmk"], state)  # (68, 2) at the drawing size
        skull = self._to_px(pts["skull"], state)
        hairline = self._to_px(pts["hairline"], state)
        unit = self.camera.scale * self.camera.size  # pixels per face unit at the drawing size
        img = self._background.copy()
        draw = ImageDraw.Draw(img, "RGBA")
        skin = np.array(idt.skin)
        hair = np.array(idt.hair)

        # 1. Body: shoulders (do not turn with the head), neck.
        shoulders = self._to_px(
            np.array([[-2.2, 2.6, -1], [-1.9, 1.75, -1], [-0.9, 1.45, -1], [0.9, 1.45, -1], [1.9, 1.75, -1], [2.2, 2.6, -1]]),
            state,
            rotate=False,
        )
        draw.polygon(_poly(_catmull_rom(shoulders, 4, closed=False)), fill=_rgb(idt.clothes))
        neck = self._to_px(np.array([[-0.42, 0.5, -0.5], [0.42, 0.5, -0.5], [0.46, 1.6, -0.6], [-0.46, 1.6, -0.6]]), state)
        draw.polygon(_poly(neck), fill=_rgb(skin, 0.78))
        # Shadow of the chin on the neck.
        chin = lmk[4:13]
        draw.polygon(_poly(np.concatenate([chin, chin[::-1] + [0, 0.12 * unit]])), fill=_rgb(skin, 0.55, 120))

        # 2. Hair behind the head, ears.
        if idt.hair_style != "bald":
            back = np.concatenate([skull * [1.0, 1.0] + (skull - skull.mean(0)) * 0.1, lmk[[0]] + [0, 0.0]])
            if idt.hair_style == "long":
                fall = idt.hair_length * unit
                sides = np.array([lmk[16] + [0.18 * unit, fall], lmk[0] + [-0.18 * unit, fall]])
                back = np.concatenate([lmk[[16]] + [0.12 * unit, 0], skull + (skull - skull.mean(0)) * 0.12, lmk[[0]] + [-0.12 * unit, 0], sides[::-1]])
                back = np.concatenate([back[:-2], [sides[1], sides[0]]])
            draw.polygon(_poly(_catmull_rom(back, 3)), fill=_rgb(hair, 0.8))
        for side, j in ((-1, 1), (1, 15)):
            ear_c = lmk[j] + [side * 0.06 * unit, -0.12 * unit]
            r = np.array([0.075, 0.17]) * unit
            draw.ellipse([*(ear_c - r), *(ear_c + r)], fill=_rgb(skin, 0.9))
            draw.ellipse([*(ear_c - r * 0.5), *(ear_c + r * 0.5)], fill=_rgb(skin, 0.72))

        # 3. The face: jaw + skull arc, then soft shading in two masks (shadow, highlight).
        face = np.concatenate([lmk[0:17], skull[1:-1]])
        face_outline = _catmull_rom(face, 3)
        draw.polygon(_poly(face_outline), fill=self._skin)
        face_mask = Image.new("L", img.size, 0)
        ImageDraw.Draw(face_mask).polygon(_poly(face_outline), fill=255)
        light = np.array([idt.light * 0.12 * unit, -0.05 * unit])
        nose_side = -np.sign(idt.light) if idt.light != 0 else 1.0
        nose_shadow = np.array([lmk[27], lmk[30], lmk[31 if nose_side < 0 else 35], lmk[39 if nose_side < 0 else 42]])
        sockets = [_shrink(np.concatenate([lmk[17:22], lmk[[41, 40]]]), 1.1), _shrink(np.concatenate([lmk[22:27], lmk[[47, 46]]]), 1.1)]
        under_lip = np.array([lmk[57] + [-0.2 * unit, 0.05 * unit], lmk[57] + [0.2 * unit, 0.05 * unit], lmk[8] + [0.1 * unit, -0.12 * unit], lmk[8] + [-0.1 * unit, -0.12 * unit]])
        shadow = self._shade_mask(
            [(_shrink(face_outline, 0.84, light), 0), (nose_shadow, 150), (sockets[0], 95), (sockets[1], 95), (under_lip, 110)],
            base=255,
            blur=0.045,
        )
        shadow = ImageChops.multiply(ImageChops.multiply(shadow, face_mask), Image.new("L", img.size, 205))
        img.paste(self._shadow, (0, 0), shadow)
        cheek = 0.28 * unit
        highlights = [
            np.array([lmk[27] + [-0.05 * unit, 0], lmk[27] + [0.05 * unit, 0], lmk[30] + [0.05 * unit, 0], lmk[30] + [-0.05 * unit, 0]]),
            _shrink(skull[3:12], 0.55) + [0, 0.25 * unit],
            np.array([lmk[2] + [cheek, -0.05 * unit], lmk[2] + [cheek + 0.2 * unit, -0.1 * unit], lmk[2] + [cheek + 0.15 * unit, 0.1 * unit]]),
            np.array([lmk[14] - [cheek, 0.05 * unit], lmk[14] - [cheek + 0.2 * unit, 0.1 * unit], lmk[14] - [cheek + 0.15 * unit, -0.1 * unit]]),
        ]
        high = self._shade_mask([(h + light, 130) for h in highlights], base=0, blur=0.035)
        img.paste(self._highlight, (0, 0), ImageChops.multiply(high, face_mask))
        draw = ImageDraw.Draw(img, "RGBA")

        # 4. Nose: nostrils and the tip's shape.
        nostril_r = np.array([0.04, 0.022]) * unit
        for k in (32, 34):
            c = lmk[k] + [0, -0.01 * unit]
            draw.ellipse([*(c - nostril_r), *(c + nostril_r)], fill=_rgb(skin, 0.35, 200))
        wing = np.array([lmk[31], lmk[31] + [-0.03 * unit, -0.08 * unit]]), np.array([lmk[35], lmk[35] + [0.03 * unit, -0.08 * unit]])
        for w in wing:
            draw.line(_poly(w), fill=_rgb(skin, 0.6, 160), width=max(1, int(0.02 * unit)))

        # 5. Eyes: white, iris and pupil clipped to the lids, lash line, crease.
        for eye_idx, iris_c in ((slice(36, 42), pts["iris"][0]), (slice(42, 48), pts["iris"][1])):
            eye = lmk[eye_idx]
            outline = _catmull_rom(eye, 5)
            height = np.linalg.norm(eye[1] - eye[5]) + np.linalg.norm(eye[2] - eye[4])
            if height > 0.02 * unit:
                eye_layer = Image.new("L", img.size, 0)
                ImageDraw.Draw(eye_layer).polygon(_poly(outline), fill=255)
                box = tuple(int(v) for v in (*np.floor(outline.min(0)) - 2, *np.ceil(outline.max(0)) + 2))
                crop = img.crop(box)
                cd = ImageDraw.Draw(crop)
                off = np.array(box[:2], dtype=np.float64)
                cd.polygon(_poly(outline - off), fill=(236, 234, 230))
                ic = self._to_px(iris_c, state) - off
                r = idt.iris_radius * unit
                cd.ellipse([*(ic - r), *(ic + r)], fill=_rgb(idt.iris))
                cd.ellipse([*(ic - r * 0.45), *(ic + r * 0.45)], fill=(14, 12, 12))
                hl = ic + np.array([0.3, -0.35]) * r
                cd.ellipse([*(hl - r * 0.18), *(hl + r * 0.18)], fill=(250, 250, 250))
                img.paste(crop, box[:2], eye_layer.crop(box))
                draw = ImageDraw.Draw(img, "RGBA")
            upper = _catmull_rom(eye[[0, 1, 2, 3]], 5, closed=False)
            draw.line(_poly(upper), fill=_rgb(hair, 0.45, 235), width=max(1, int(0.028 * unit)))
            crease = upper + [0, -0.045 * unit]
            draw.line(_poly(crease[2:-2]), fill=_rgb(skin, 0.7, 150), width=max(1, int(0.015 * unit)))
            lower = _catmull_rom(eye[[3, 4, 5, 0]], 5, closed=False)
            draw.line(_poly(lower), fill=_rgb(skin, 0.7, 130), width=max(1, int(0.012 * unit)))

        # 6. Brows: a tapered band along the five brow points.
        for brow in (lmk[17:22], lmk[22:27]):
            centre = _catmull_rom(brow, 4, closed=False)
            thick = idt.brow_thickness * unit * np.linspace(0.6, 1.0, len(centre))
            if brow[0, 0] > brow[-1, 0]:
                thick = thick[::-1]
            band = np.concatenate([centre - np.stack([np.zeros_like(thick), thick * 0.55], 1), (centre + np.stack([np.zeros_like(thick), thick * 0.45], 1))[::-1]])
            draw.polygon(_poly(band), fill=_rgb(hair, 0.55, 235))

        # 7. Mouth: the dark interior with tongue and teeth clipped to the inner lips, then the lips.
        inner = _catmull_rom(lmk[60:68], 5)
        outer = _catmull_rom(lmk[48:60], 5)
        draw.polygon(_poly(outer), fill=_rgb(idt.lip))
        gap = np.linalg.norm(lmk[62] - lmk[66])
        if gap > 0.01 * unit:
            box = tuple(int(v) for v in (*np.floor(inner.min(0)) - 2, *np.ceil(inner.max(0)) + 2))
            off = np.array(box[:2], dtype=np.float64)
            crop = Image.new("RGB", (box[2] - box[0], box[3] - box[1]), (40, 12, 14))
            cd = ImageDraw.Draw(crop)
            centre_x = 0.5 * (lmk[60, 0] + lmk[64, 0]) - off[0]
            half_w = 0.5 * np.linalg.norm(lmk[64] - lmk[60])
            teeth_y = self._to_px(np.array([[0.0, y, 0.3] for y in pts["teeth"]]), state)[:, 1] - off[1]
            # The tongue rests low behind the lower teeth and rises for /θ ð l/.
            tongue_c = np.array([centre_x, lmk[66, 1] - off[1] - 0.012 * unit * (1 + 2.5 * state.tongue)])
            tr = np.array([0.65 * half_w, 0.04 * unit])
            cd.ellipse([*(tongue_c - tr), *(tongue_c + tr)], fill=_rgb(idt.lip, 0.85))
            cd.rectangle([centre_x - 0.72 * half_w, teeth_y[0], centre_x + 0.72 * half_w, teeth_y[1]], fill=(232, 228, 214))
            cd.rectangle([centre_x - 0.6 * half_w, teeth_y[2], centre_x + 0.6 * half_w, teeth_y[3]], fill=(214, 208, 194))
            mouth_mask = Image.new("L", crop.size, 0)
            ImageDraw.Draw(mouth_mask).polygon(_poly(inner - off), fill=255)
            img.paste(crop, box[:2], mouth_mask)
            draw = ImageDraw.Draw(img, "RGBA")
        # Upper lip darker than the lower; a highlight on the lower lip; the line where the lips meet.
        upper_lip = np.concatenate([outer[: len(outer) // 2 + 1], _catmull_rom(lmk[[64, 63, 62, 61, 60]], 5, closed=False)])
        draw.polygon(_poly(upper_lip), fill=_rgb(idt.lip, 0.82, 255))
        lower_c = 0.5 * (lmk[57] + lmk[66]) + [0, -0.01 * unit]
        lr = np.array([0.28, 0.025]) * unit
        draw.ellipse([*(lower_c - lr), *(lower_c + lr)], fill=_rgb(np.minimum(np.array(idt.lip) * 1.15, 255), 1.0, 110))
        draw.line(_poly(_catmull_rom(lmk[[60, 61, 62, 63, 64]], 5, closed=False)), fill=_rgb(idt.lip, 0.45, 200), width=max(1, int(0.012 * unit)))

        # 8. Hair in front: from the skull arc down to the hairline, per style.
        if idt.hair_style in ("short", "fringe", "side", "long"):
            line = hairline.copy()
            if idt.hair_style == "fringe":
                line = line + [0, 0.2 * unit]
            elif idt.hair_style == "side":
                line[:, 1] += np.linspace(0.18, -0.02, len(line)) * unit
            top = skull + (skull - skull.mean(0)) * 0.06
            front = np.concatenate([top, line[::-1]])
            draw.polygon(_poly(_catmull_rom(front, 3)), fill=_rgb(hair))
            # Strands: a few darker curves for texture.
            for f in np.linspace(0.2, 0.8, 4):
                strand = top + (line - top) * f
                draw.line(_poly(_catmull_rom(strand[2:-2], 3, closed=False)), fill=_rgb(hair, 0.75, 120), width=max(1, int(0.01 * unit)))

        out = img.reduce(self.ss) if self.ss > 1 else img
        return RenderedFrame(
            image=np.asarray(out),
            lmk=(lmk / self.ss).astype(np.float32),
            mouth_open=float(pts["mouth_open"]),
        )
