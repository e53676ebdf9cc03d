"""PSNR, SSIM and CPBD: known values, scikit-image agreement, regions, and CPBD's fall with blur."""
import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from skimage import data
from skimage.metrics import structural_similarity

from talkinghead.metrics.image import PSNR_CAP, cpbd, crop_region, psnr, ssim


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    if sigma == 0:
        return image
    sigmas = (sigma, sigma, 0) if image.ndim == 3 else sigma
    return np.clip(np.round(gaussian_filter(image.astype(np.float64), sigmas)), 0, 255).astype(np.uint8)


def _to_tensor(images: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(images).movedim(-1, -3).float() / 127.5 - 1


@pytest.fixture(scope="module")
def face() -> np.ndarray:
    return data.astronaut()[0:192, 160:352]  # the astronaut's face, 192×192 RGB


def test_psnr_known_values_and_cap(face):
    assert psnr(face, face) == PSNR_CAP
    off_by_one = face.astype(np.int16) + np.where(face < 255, 1, -1)
    assert psnr(off_by_one.astype(np.uint8), face) == pytest.approx(10 * np.log10(255**2), abs=1e-9)  # MSE = 1: 48.13 dB
    black, white = np.zeros((8, 8, 3), np.uint8), np.full((8, 8, 3), 255, np.uint8)
    assert psnr(black, white) == pytest.approx(0.0)


def test_psnr_is_per_image_and_the_same_for_tensors(face):
    rng = np.random.default_rng(0)
    noisy = np.clip(face + rng.normal(0, 10, (3, *face.shape)), 0, 255).astype(np.uint8)  # (3, H, W, 3)
    values = psnr(noisy, np.repeat(face[None], 3, 0))
    assert values.shape == (3,) and np.all((values > 25) & (values < 35))
    np.testing.assert_allclose(psnr(_to_tensor(noisy), _to_tensor(np.repeat(face[None], 3, 0))), values, rtol=1e-5)


def test_ssim_matches_scikit_image_with_wang_settings(face):
    rng = np.random.default_rng(1)
    noisy = np.clip(face + rng.normal(0, 20, face.shape), 0, 255).astype(np.uint8)
    expected = structural_similarity(noisy, face, channel_axis=-1, data_range=255, gaussian_weights=True, sigma=1.5,
                                     use_sample_covariance=False)
    assert 0.2 < expected < 0.9
    assert abs(ssim(noisy, face) - expected) < 1e-6
    assert abs(ssim(_to_tensor(noisy), _to_tensor(face)) - expected) < 1e-6  # tensors score the same
    assert ssim(face, face) == pytest.approx(1.0)
    # Not skimage's defaults (uniform 7×7 window, sample covariance): the settings matter and are the paper's.
    assert abs(structural_similarity(noisy, face, channel_axis=-1, data_range=255) - expected) > 1e-3


def test_regions_score_the_upper_and_lower_half(face):
    damaged = face.copy()
    damaged[150:] = 0  # only the lower half (rows ≥ 96) is damaged
    assert psnr(damaged, face, region="upper") == PSNR_CAP
    assert ssim(damaged, face, region="upper") == pytest.approx(1.0)
    assert psnr(damaged, face, region="lower") < psnr(damaged, face) < PSNR_CAP
    assert ssim(damaged, face, region="lower") < 0.9
    assert crop_region(face, "upper").shape == (96, 192, 3) and crop_region(face, "lower").shape == (96, 192, 3)
    with pytest.raises(ValueError, match="unknown region"):
        psnr(face, face, region="middle")


def test_cpbd_falls_monotonically_as_blur_grows():
    for image in (data.camera()[64:448, 64:448], data.astronaut()[:256, 128:384]):
        scores = [cpbd(_blur(image if image.ndim == 3 else image[..., None], s)) for s in (0.0, 0.5, 0.75, 1.0, 1.5)]
        assert all(a > b for a, b in zip(scores, scores[1:])), scores
        assert scores[0] > 0.4 and scores[-1] < 0.05


def test_cpbd_known_values_on_step_edges():
    # Vertical black/white stripes: every edge is 2 px wide (the narrowest), far below the just-noticeable width
    # 3 at this contrast, so all are "sharp"; blurred with σ = 3 they are ~8 px wide and all "blurred".
    stripes = np.zeros((128, 128, 3), np.uint8)
    for left in range(8, 128, 16):
        stripes[:, left : left + 8] = 255
    assert cpbd(stripes) == pytest.approx(1.0)
    assert cpbd(_blur(stripes, 3.0)) == pytest.approx(0.0)
    assert cpbd(np.full((64, 64, 3), 128, np.uint8)) == 0.0  # no edge block: nothing is sharp
    batch = cpbd(np.stack([stripes, _blur(stripes, 3.0)]))
    assert batch.shape == (2,)
    np.testing.assert_allclose(cpbd(_to_tensor(np.stack([stripes, _blur(stripes, 3.0)]))), batch)
    with pytest.raises(ValueError, match="at least 64"):
        cpbd(stripes[:32])


def test_wrong_inputs_fail_clearly(face):
    with pytest.raises(TypeError, match="uint8"):
        psnr(face.astype(np.float32), face.astype(np.float32))
    with pytest.raises(ValueError, match="differ in shape"):
        ssim(face, face[:100])
