"""face.landmarks: yaw, blinks, Procrustes, the canonical shape and the PCA shape model, on SynthGRID geometry
(exact landmarks, known pose, known blinks)."""
import math

import numpy as np
import pytest

from talkinghead.data.synthgrid.articulation import blink_track, sample_blinks
from talkinghead.data.synthgrid.face import FaceState, Identity, landmarks_2d, sample_identity
from talkinghead.face.landmarks import (
    LIPS,
    Blink,
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


def _similarity(points, angle_deg, scale, shift):
    a = math.radians(angle_deg)
    rot = scale * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    return points @ rot.T + np.asarray(shift)


def _neutral_faces(n, seed=0):
    rng = np.random.default_rng(seed)
    return np.stack([landmarks_2d(sample_identity(rng), FaceState()) for _ in range(n)]).astype(np.float64)


# --------------------------------------------------------------------------- EAR, mouth, yaw


def test_ear_and_mouth_opening_follow_the_face():
    idt = Identity()
    open_eye = eye_aspect_ratio(landmarks_2d(idt, FaceState()))
    shut_eye = eye_aspect_ratio(landmarks_2d(idt, FaceState(eye_closure=1.0)))
    assert 0.2 < open_eye < 0.45 and shut_eye < 0.3 * open_eye
    assert mouth_opening(landmarks_2d(idt, FaceState(jaw=1.0))) > 5 * mouth_opening(landmarks_2d(idt, FaceState()))


@pytest.mark.parametrize("yaw", [-60, -40, -20, 0, 20, 40, 60])
def test_estimate_yaw_reads_synthgrid_head_turns(yaw):
    rng = np.random.default_rng(abs(yaw))
    for pitch in (-10, 0, 10):
        lmk = landmarks_2d(sample_identity(rng), FaceState(yaw=yaw, pitch=pitch))
        est = float(estimate_yaw(lmk))
        assert abs(est - yaw) <= 10, (yaw, pitch, est)
        assert yaw == 0 or np.sign(est) == np.sign(yaw)


def test_estimate_yaw_ignores_scale_shift_and_roll():
    lmk = landmarks_2d(Identity(), FaceState(yaw=35)).astype(np.float64)
    moved = _similarity(lmk, 25.0, 2.7, (300.0, -40.0))
    assert np.allclose(estimate_yaw(moved), estimate_yaw(lmk), atol=1e-6)
    assert np.allclose(estimate_yaw(np.stack([lmk, moved])), estimate_yaw(lmk))  # batches


# --------------------------------------------------------------------------- blinks


def _ear_clip(seconds, seed, *, fps=25, noise=0.004):
    """EAR of a SynthGRID face blinking at random (synthgrid's own blink model), plus landmark jitter; and the
    true blinks as frame intervals."""
    rng = np.random.default_rng(seed)
    blinks = sample_blinks(seconds, rng, rate=0.4)
    times = np.arange(int(seconds * fps)) / fps
    closure = blink_track(blinks, times)
    idt = sample_identity(rng)
    lmk = np.stack([landmarks_2d(idt, FaceState(eye_closure=c)) for c in closure]).astype(np.float64)
    lmk += rng.normal(0, noise * 128, lmk.shape)
    return eye_aspect_ratio(lmk), blinks


def test_detect_blinks_finds_synthgrid_blinks():
    ear, truth = _ear_clip(30, seed=1)
    found = detect_blinks(ear)
    assert len(truth) >= 8 and len(found) == len(truth)
    for blink, true in zip(found, truth):
        assert abs(blink.start - true.start * 25) <= 2
        assert abs((blink.end - blink.start) - true.duration * 25) <= 3


def test_detect_blinks_uses_the_clip_baseline():
    ear, truth = _ear_clip(20, seed=2)
    # A face whose eyes are narrower or wider (another detector, another person) gives the same blinks.
    assert detect_blinks(ear * 0.6) == detect_blinks(ear) == detect_blinks(ear * 1.3)
    # A fixed threshold would call every frame of the narrow eye closed; the relative one does not.
    assert len(detect_blinks(ear * 0.6)) == len(truth)


def test_detect_blinks_rejects_jitter_slow_closures_and_missing_frames():
    rng = np.random.default_rng(0)
    steady = 0.3 + rng.normal(0, 0.01, 500)
    assert detect_blinks(steady) == []
    held = steady.copy()
    held[100:160] = 0.05  # eyes shut for 2.4 s: not a blink
    held[300:304] = 0.05  # a 4-frame blink
    assert detect_blinks(held) == [Blink(300, 304)]
    held[200:210] = np.nan  # face lost for a moment
    assert detect_blinks(held) == [Blink(300, 304)]
    assert detect_blinks(np.full(10, np.nan)) == []


def test_blink_stats():
    ear = np.full(250, 0.3)  # 10 s at 25 fps
    for start in (20, 120, 200):
        ear[start : start + 5] = 0.05
    rate, duration, count = blink_stats(ear, fps=25)
    assert count == 3 and rate == pytest.approx(0.3) and duration == pytest.approx(0.2)
    rate, duration, count = blink_stats(np.full(250, 0.3))
    assert (rate, count) == (0.0, 0) and math.isnan(duration)


# --------------------------------------------------------------------------- Procrustes and the mean shape


def test_procrustes_recovers_similarity_and_rigid_transforms():
    src = _neutral_faces(1)[0]
    dst = _similarity(src, 30.0, 1.7, (12.0, -5.0))
    aligned, transform = procrustes(src, dst)
    assert np.allclose(aligned, dst, atol=1e-9) and transform.shape == (2, 3)
    rigid, m = procrustes(src, dst, scale=False)
    assert np.allclose(np.linalg.det(m[:2, :2]), 1.0)  # a rotation: the shape keeps its size
    assert np.allclose(np.linalg.norm(rigid - rigid.mean(0)), np.linalg.norm(src - src.mean(0)))
    # A batch of shapes to one target at once.
    batch = np.stack([_similarity(src, a, s, (a, s)) for a, s in [(10, 0.5), (-80, 3.0), (170, 1.0)]])
    aligned, transform = procrustes(batch, dst)
    assert aligned.shape == (3, 68, 2) and transform.shape == (3, 2, 3)
    assert np.allclose(aligned, dst, atol=1e-9)


def test_procrustes_mean_is_normalised_and_pose_free():
    faces = _neutral_faces(40)
    rng = np.random.default_rng(3)
    posed = np.stack([_similarity(f, rng.uniform(-40, 40), rng.uniform(0.5, 3), rng.uniform(-100, 100, 2)) for f in faces])
    mean = procrustes_mean(faces)
    assert np.allclose(procrustes_mean(posed), mean, atol=1e-6)  # where and how big the faces were does not matter
    eyes = mean[36:42].mean(0), mean[42:48].mean(0)
    assert np.allclose(mean.mean(0), 0, atol=1e-9)
    assert np.linalg.norm(eyes[1] - eyes[0]) == pytest.approx(1.0)
    assert eyes[0][1] == pytest.approx(eyes[1][1]) and eyes[0][0] < 0
    # The mean of copies of one face is that face, normalised.
    one = procrustes_mean(np.stack([_similarity(faces[0], a, 2.0, (a, 0)) for a in (-20, 0, 20)]))
    assert np.allclose(one, procrustes_mean(faces[:1]), atol=1e-9)


def test_canonical_shape_is_synthgrids_procrustes_mean():
    shape = canonical_shape()
    assert shape.shape == (68, 2)
    assert np.allclose(shape, procrustes_mean(_neutral_faces(500)), atol=1e-3)
    shape[0] = 99.0  # a copy: the constant cannot be changed by accident
    assert canonical_shape()[0, 0] != 99.0
    # Frontal: the nose tip is on the midline, eyes above nose above mouth above chin.
    canon = canonical_shape()
    assert abs(canon[30, 0]) < 1e-3
    assert canon[36:48, 1].mean() < canon[30, 1] < canon[48:68, 1].mean() < canon[8, 1]


# --------------------------------------------------------------------------- PCA shape model


def _talking_faces(n, seed=0):
    """n landmark sets of 10 identities saying different things, in random image poses; and the mouth opening."""
    rng = np.random.default_rng(seed)
    ids = [sample_identity(rng) for _ in range(10)]
    shapes, opening = [], []
    for i in range(n):
        state = FaceState(jaw=rng.uniform(0, 1), round=rng.uniform(0, 0.6), spread=rng.uniform(0, 0.6), eye_closure=rng.uniform(0, 0.3))
        lmk = landmarks_2d(ids[i % 10], state).astype(np.float64)
        opening.append(mouth_opening(lmk))
        shapes.append(_similarity(lmk, rng.uniform(-20, 20), rng.uniform(0.5, 2), rng.uniform(-50, 50, 2)))
    return np.stack(shapes), np.array(opening)


def test_shape_pca_on_lips_captures_mouth_opening():
    shapes, opening = _talking_faces(300)
    pca = ShapePCA(n_components=33, points=LIPS).fit(shapes)
    assert pca.components_.shape == (33, 40) and pca.mean_.shape == (20, 2)
    assert np.allclose(pca.components_ @ pca.components_.T, np.eye(33), atol=1e-9)
    ratio = pca.explained_variance_ratio_
    assert np.all(np.diff(pca.explained_variance_) <= 1e-12) and 0.99 < ratio.sum() <= 1.0 + 1e-9
    coeffs = pca.transform(shapes)
    assert coeffs.shape == (300, 33)
    # Lip motion is low-dimensional: the two leading components hold most of the variance and, linearly,
    # almost all of the mouth opening.
    assert ratio[:2].sum() > 0.85
    design = np.c_[coeffs[:, :2], np.ones(len(coeffs))]
    residual = opening - design @ np.linalg.lstsq(design, opening, rcond=None)[0]
    assert 1 - residual.var() / opening.var() > 0.95
    # Where the face is in the image does not change its coefficients.
    moved = _similarity(shapes[:5], 60.0, 0.3, (7.0, 7.0))
    assert np.allclose(pca.transform(moved), coeffs[:5], atol=1e-9)
    # With every component, inverse_transform gives back the aligned lips.
    full = ShapePCA(n_components=40, points=LIPS).fit(shapes)
    assert np.allclose(full.inverse_transform(full.transform(shapes)), full.align(shapes)[:, LIPS], atol=1e-9)


def test_shape_pca_whole_face_and_bad_sizes():
    shapes, _ = _talking_faces(60, seed=1)
    pca = ShapePCA(n_components=10).fit(shapes)
    assert pca.inverse_transform(np.zeros(10)).shape == (68, 2)
    assert np.allclose(pca.inverse_transform(np.zeros(10)), pca.mean_)
    with pytest.raises(ValueError, match="n_components"):
        ShapePCA(n_components=60).fit(shapes)
    with pytest.raises(ValueError, match=r"\(N, 68, 2\)"):
        ShapePCA(n_components=3).fit(shapes[:, :20])
