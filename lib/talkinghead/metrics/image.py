"""Image quality: PSNR, SSIM (Wang et al. 2004) and CPBD sharpness (Narvekar & Karam 2009/2011).

Every function takes either uint8 arrays ``(..., H, W, C)`` (the I/O convention) or float tensors
``(..., C, H, W)`` in [-1, 1] (the model convention) and returns one value per image: a float for one image,
an array of the leading shape for a batch. Tensors are mapped to the 0–255 scale first
(``(x + 1) · 127.5``, no rounding), so a frame scores the same in either form.

``region`` picks the rows of an aligned face crop (``face.align``: eyes at ≈0.40·S, mouth at ≈0.66·S):
``"full"``, ``"upper"`` = rows [0, S/2) (eyes, brows: identity and blinks, as SDA reports "upper-face"
PSNR/SSIM) or ``"lower"`` = rows [S/2, S) (mouth and jaw).

Libraries: SSIM is scikit-image's ``structural_similarity`` with the settings of Wang et al. (Gaussian
window σ = 1.5, population covariance, K1 = 0.01, K2 = 0.03, data range 255), averaged over the RGB
channels as talking-head papers do. CPBD has no maintained library (the ``cpbd`` package on PyPI imports
``scipy.ndimage.imread``, removed in SciPy 1.2, pulls matplotlib, and carries a non-open licence), so it is
written here from the paper.
"""
from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage

__all__ = ["PSNR_CAP", "REGIONS", "to_pixels", "crop_region", "psnr", "ssim", "cpbd"]

PSNR_CAP = 100.0  # dB for identical images, so means over clips stay finite (one 8-bit step in a 128² RGB crop is 95 dB)
REGIONS = ("full", "upper", "lower")

# CPBD constants (Narvekar & Karam 2011, section III).
CPBD_BLOCK = 64  # blocks of 64×64 pixels
CPBD_EDGE_BLOCK_RATIO = 0.002  # a block counts when more than 0.2 % of its pixels are edge pixels
CPBD_BETA = 3.6  # slope of the psychometric function of blur detection
CPBD_P_JNB = 63  # % : P_blur at the just-noticeable width, 1 - e^-1
_SOBEL_X = np.array([[1.0, 0.0, -1.0], [2.0, 0.0, -2.0], [1.0, 0.0, -1.0]]) / 8.0  # normalised as MATLAB's edge()
_LUMA = np.array([0.2989, 0.5870, 0.1140])  # ITU-R BT.601 luma, MATLAB's rgb2gray


def to_pixels(images: Any) -> np.ndarray:
    """float64 ``(..., H, W, C)`` on the 0–255 scale from uint8 ``(..., H, W, C)`` or a float tensor
    ``(..., C, H, W)`` in [-1, 1]."""
    if hasattr(images, "detach"):  # torch tensor, imported lazily by the caller
        array = images.detach().cpu().double().numpy()
        return (np.moveaxis(array, -3, -1) + 1.0) * 127.5
    array = np.asarray(images)
    if array.dtype != np.uint8:
        raise TypeError(f"images must be uint8 arrays (..., H, W, C) or float tensors (..., C, H, W) in [-1, 1], got a {array.dtype} array")
    return array.astype(np.float64)


def crop_region(pixels: np.ndarray, region: str) -> np.ndarray:
    """Rows of a face crop: ``"full"``, ``"upper"`` = [0, H/2) or ``"lower"`` = [H/2, H).

    Args:
        pixels: ``(..., H, W, C)`` (channels last, as from ``to_pixels``).
    """
    height = pixels.shape[-3]
    if region == "full":
        return pixels
    if region == "upper":
        return pixels[..., : height // 2, :, :]
    if region == "lower":
        return pixels[..., height // 2 :, :, :]
    raise ValueError(f"unknown region {region!r}: use one of {REGIONS}")


def _pair(images: Any, reference: Any, region: str) -> tuple[np.ndarray, np.ndarray]:
    x, y = to_pixels(images), to_pixels(reference)
    if x.shape != y.shape:
        raise ValueError(f"images {x.shape} and reference {y.shape} differ in shape (both channels-last here)")
    return crop_region(x, region), crop_region(y, region)


def _per_image(values: np.ndarray) -> float | np.ndarray:
    return float(values) if values.ndim == 0 else values


def psnr(images: Any, reference: Any, *, region: str = "full") -> float | np.ndarray:
    """Peak signal-to-noise ratio in dB, ``10 log10(255² / MSE)`` per image, capped at ``PSNR_CAP`` (100 dB)
    where the images are identical.

    Args:
        images, reference: uint8 ``(..., H, W, C)`` or float tensors ``(..., C, H, W)`` in [-1, 1], same shape.
        region: ``"full"``, ``"upper"`` or ``"lower"`` half of the crop.
    Returns:
        a float for one image, else an array of the leading shape ``(...)``.
    """
    x, y = _pair(images, reference, region)
    mse = ((x - y) ** 2).mean(axis=(-3, -2, -1))
    with np.errstate(divide="ignore"):
        value = 10.0 * np.log10(255.0**2 / mse)
    return _per_image(np.minimum(value, PSNR_CAP))


def ssim(images: Any, reference: Any, *, region: str = "full") -> float | np.ndarray:
    """Structural similarity (Wang et al. 2004) per image, by scikit-image with the paper's settings
    (Gaussian window σ = 1.5, population covariances, data range 255), mean over channels.

    Args:
        images, reference: uint8 ``(..., H, W, C)`` or float tensors ``(..., C, H, W)`` in [-1, 1], same shape;
            the region must be at least 11 pixels high and wide (the Gaussian window).
        region: ``"full"``, ``"upper"`` or ``"lower"`` half of the crop.
    Returns:
        a float in [-1, 1] (1 for identical images) for one image, else an array of the leading shape.
    """
    from skimage.metrics import structural_similarity

    x, y = _pair(images, reference, region)
    lead = x.shape[:-3]
    x, y = x.reshape(-1, *x.shape[-3:]), y.reshape(-1, *y.shape[-3:])
    values = np.array([
        structural_similarity(a, b, channel_axis=-1, data_range=255.0, gaussian_weights=True, sigma=1.5,
                              use_sample_covariance=False)
        for a, b in zip(x, y)
    ])
    return _per_image(values.reshape(lead))


def _canny_edges(gray: np.ndarray) -> np.ndarray:
    """Canny edges with MATLAB's defaults, which the authors used: σ = √2, high threshold at the 70th
    percentile of the gradient magnitude, low threshold 0.4 × high."""
    from skimage.feature import canny

    smoothed = ndimage.gaussian_filter(gray, np.sqrt(2.0), mode="nearest")
    magnitude = np.hypot(ndimage.sobel(smoothed, axis=0), ndimage.sobel(smoothed, axis=1))
    high = np.percentile(magnitude, 70.0)
    return canny(gray, sigma=np.sqrt(2.0), low_threshold=0.4 * high, high_threshold=high)


def _run_ending_at(flags: np.ndarray) -> np.ndarray:
    """Per row, the number of consecutive True values ending at each position (inclusive)."""
    index = np.arange(flags.shape[-1])
    last_false = np.maximum.accumulate(np.where(flags, -1, index), axis=-1)
    return index - last_false


def _edge_widths(gray: np.ndarray) -> np.ndarray:
    """Width in pixels of each vertical edge pixel (0 elsewhere), measured along the row, i.e. along the
    gradient direction, as the distance between the local extrema on either side (Marziliano et al. 2002).

    Edges are those of MATLAB's ``edge(I, 'sobel', 'vertical')`` as in the authors' code: squared horizontal
    Sobel response above 4 × its mean, thinned to maxima along the row. Only pixels whose gradient angle
    rounds to 0° (rising) or 180° (falling) are measured.
    """
    height, width = gray.shape
    strength = ndimage.correlate(gray, _SOBEL_X, mode="nearest") ** 2
    left = np.pad(strength, ((0, 0), (1, 0)))[:, :-1]
    right = np.pad(strength, ((0, 0), (0, 1)))[:, 1:]
    # Thinning keeps row maxima; of a two-pixel tie (a step between pixels) the left one.
    edges = (strength > 4.0 * strength.mean()) & (strength > left) & (strength >= right)
    # The extrema search needs a neighbour on each side: no edge pixels on the border.
    edges[[0, -1], :] = False
    edges[:, [0, -1]] = False

    grad_y, grad_x = np.gradient(gray)
    angle = 45.0 * np.round(np.degrees(np.arctan2(grad_y, grad_x)) / 45.0)
    step = np.diff(gray, axis=1)  # (H, W-1): step[:, k] = I[:, k+1] - I[:, k]
    widths = np.zeros_like(gray)
    cols = np.arange(width)
    for sign, direction in ((1.0, angle == 0.0), (-1.0, np.abs(angle) == 180.0)):
        monotone = sign * step > 0  # still climbing (rising edge) or still falling
        ending = _run_ending_at(monotone)  # steps going left from a position
        starting = _run_ending_at(monotone[:, ::-1])[:, ::-1]  # steps going right from a position
        # From edge pixel c the left extremum lies 1 + ending[c-2] pixels away, the right one 1 + starting[c+1].
        left_width = 1 + np.where(cols >= 2, ending[:, np.clip(cols - 2, 0, width - 2)], 0)
        right_width = 1 + np.where(cols <= width - 3, starting[:, np.clip(cols + 1, 0, width - 2)], 0)
        mask = edges & direction
        widths[mask] = (left_width + right_width)[mask]
    return widths


def _cpbd_gray(gray: np.ndarray) -> float:
    height, width = gray.shape
    if height < CPBD_BLOCK or width < CPBD_BLOCK:
        raise ValueError(f"CPBD needs images of at least {CPBD_BLOCK}×{CPBD_BLOCK} pixels (its block size), got {height}×{width}")
    canny = _canny_edges(gray)
    widths = _edge_widths(gray)
    probabilities = []
    for top in range(0, height - CPBD_BLOCK + 1, CPBD_BLOCK):
        for left in range(0, width - CPBD_BLOCK + 1, CPBD_BLOCK):
            block = (slice(top, top + CPBD_BLOCK), slice(left, left + CPBD_BLOCK))
            if canny[block].sum() <= CPBD_EDGE_BLOCK_RATIO * CPBD_BLOCK**2:
                continue  # a smooth block: no edges to judge
            contrast = int(gray[block].max() - gray[block].min())
            width_jnb = 5.0 if contrast <= 50 else 3.0  # just-noticeable blur width for this contrast
            w = widths[block][widths[block] > 0]
            probabilities.append(1.0 - np.exp(-((w / width_jnb) ** CPBD_BETA)))
    probabilities = np.concatenate(probabilities) if probabilities else np.zeros(0)
    if not len(probabilities):
        return 0.0  # no edge to judge, nothing looks sharp (the authors' code returns 0 as well)
    # P(P_blur <= P_JNB) from the histogram of P_blur in 1 % bins, as the authors compute it.
    return float(np.mean(np.round(probabilities * 100.0) <= CPBD_P_JNB))


def cpbd(images: Any) -> float | np.ndarray:
    """Cumulative probability of blur detection (Narvekar & Karam, "A no-reference image blur metric based on
    the cumulative probability of blur detection", TIP 2011): the share of edges whose blur a viewer would
    probably not notice. Higher is sharper; 1 for crisp step edges, → 0 as blur grows.

    On the luma (BT.601) of each image: Canny edges pick the 64×64 blocks with more than 0.2 % edge pixels
    (rows and columns past the last whole block are ignored); in those blocks every vertical Sobel edge gets a
    width (distance between the local extrema either side, along the row), the probability of detecting its
    blur is ``1 - exp(-(w / w_JNB)^3.6)`` with the just-noticeable width ``w_JNB`` = 5 where the block's
    contrast (max - min) is at most 50 and 3 above, and CPBD is the share of edges with that probability at
    most 63 %. An image without edge blocks scores 0.

    Args:
        images: uint8 ``(..., H, W, C)`` (C = 3 RGB or 1) or float tensors ``(..., C, H, W)`` in [-1, 1];
            at least 64×64.
    Returns:
        a float in [0, 1] for one image, else an array of the leading shape.
    """
    pixels = to_pixels(images)
    if pixels.shape[-1] == 3:
        gray = pixels @ _LUMA
    elif pixels.shape[-1] == 1:
        gray = pixels[..., 0]
    else:
        raise ValueError(f"CPBD needs RGB or single-channel images, got {pixels.shape[-1]} channels")
    lead = gray.shape[:-2]
    values = np.array([_cpbd_gray(g) for g in gray.reshape(-1, *gray.shape[-2:])])
    return _per_image(values.reshape(lead))
