"""LMD, blink metrics and mouth-opening correlation on landmark series with known answers."""
import numpy as np
import pytest

from talkinghead.face.landmarks import canonical_shape
from talkinghead.metrics.landmarks import FACE, blink_metrics, landmark_distance, lmd, mouth_opening_correlation


def _canonical() -> np.ndarray:
    """(68, 2) the canonical face in pixels of a 128 crop (eyes 32 px apart)."""
    return canonical_shape() * 32.0 + 64.0


def _talking(n_frames: int, *, phase: float = 0.0) -> np.ndarray:
    """(T, 68, 2): the canonical face with the lower lip and jaw moving up and down at 2 Hz."""
    lmk = np.repeat(_canonical()[None], n_frames, 0)
    drop = 4.0 * (1 + np.sin(2 * np.pi * 2.0 * np.arange(n_frames) / 25 + phase))  # 0 … 8 px
    lower = [55, 56, 57, 58, 59, 65, 66, 67, *range(5, 12)]
    lmk[:, lower, 1] += drop[:, None]
    return lmk


def test_lmd_of_a_known_shift():
    ref = _talking(20)
    moved = ref.copy()
    moved[:, 48:68] += [3.0, 4.0]  # every mouth point 5 px away
    assert lmd(moved, ref) == pytest.approx(5.0)
    assert lmd(ref, ref) == 0.0
    # The whole face: 20 of 68 points moved.
    assert lmd(moved, ref, points=FACE) == pytest.approx(5.0 * 20 / 68)
    # Normalised by the reference's outer-eye-corner distance.
    eyes = np.linalg.norm(ref[0, 36] - ref[0, 45])
    assert lmd(moved, ref, normalise=True) == pytest.approx(5.0 / eyes)


def test_lmd_averages_per_frame_distances():
    ref = _talking(4)
    moved = ref.copy()
    moved[2, 48:68, 0] += 8.0  # one frame of four off by 8 px
    np.testing.assert_allclose(landmark_distance(moved, ref), [0, 0, 8, 0])
    assert lmd(moved, ref) == pytest.approx(2.0)
    with pytest.raises(ValueError, match="same frames"):
        lmd(moved[:3], ref)
    with pytest.raises(ValueError, match=r"\(T, 68, 2\)"):
        lmd(moved[0], ref[0])


def test_blink_metrics_count_rate_and_duration():
    lmk = np.repeat(_canonical()[None], 100, 0)  # 4 s at 25 fps
    upper_lids, lower_lids = [37, 38, 43, 44], [40, 41, 46, 47]
    for start in (20, 70):  # two blinks of 4 frames: lids meet at the middle of the eye
        middle = 0.5 * (lmk[start, upper_lids, 1] + lmk[start, lower_lids, 1])
        lmk[start : start + 4, upper_lids, 1] = middle
        lmk[start : start + 4, lower_lids, 1] = middle
    stats = blink_metrics(lmk, fps=25)
    assert stats["blinks"] == 2
    assert stats["blink_rate"] == pytest.approx(0.5)
    assert stats["blink_duration"] == pytest.approx(4 / 25)
    open_eyes = blink_metrics(np.repeat(_canonical()[None], 50, 0))
    assert open_eyes["blinks"] == 0 and open_eyes["blink_rate"] == 0 and np.isnan(open_eyes["blink_duration"])


def test_mouth_opening_correlation():
    ref = _talking(50)
    assert mouth_opening_correlation(ref, ref) == pytest.approx(1.0)
    assert mouth_opening_correlation(_talking(50, phase=np.pi), ref) == pytest.approx(-1.0, abs=1e-3)  # opens when it should close
    assert mouth_opening_correlation(np.repeat(ref[:1], 50, 0), ref) == 0.0  # a still mouth carries no information
