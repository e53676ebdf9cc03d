"""face.align: the similarity transform, the canonical crop, and paste-back into the photo."""
import math

import numpy as np
import pytest
import skimage.data

from talkinghead.face.align import (
    CANONICAL_POINTS,
    PasteBack,
    anchor_points,
    crop_mask,
    estimate_alignment,
    paste_back,
    similarity_transform,
    warp,
)

# The 68 landmarks of scikit-image's astronaut photo that face.detect's dlib backend finds, rounded to pixels.
ASTRONAUT_LMK = np.array(
    [[179, 104], [180, 116], [181, 127], [182, 139], [185, 150], [191, 160], [200, 168], [209, 176], [220, 178],
     [232, 177], [243, 171], [253, 163], [260, 154], [265, 143], [268, 131], [270, 120], [272, 108], [186, 94],
     [192, 88], [200, 87], [208, 89], [216, 92], [236, 93], [244, 91], [252, 91], [260, 92], [265, 99],
     [226, 102], [225, 111], [225, 119], [225, 127], [214, 131], [219, 133], [224, 134], [229, 133], [234, 132],
     [195, 101], [200, 98], [207, 98], [212, 104], [206, 104], [199, 104], [237, 106], [243, 100], [250, 100],
     [255, 105], [250, 107], [244, 107], [201, 139], [209, 139], [218, 139], [224, 141], [230, 140], [238, 140],
     [246, 141], [238, 151], [229, 155], [222, 156], [216, 155], [208, 150], [204, 141], [218, 143], [223, 144],
     [230, 143], [243, 142], [229, 150], [223, 151], [217, 150]],
    dtype=np.float64,
)


@pytest.fixture(scope="module")
def photo():
    return skimage.data.astronaut()


def _random_similarity(rng):
    a, s = rng.uniform(-math.pi, math.pi), rng.uniform(0.3, 3.0)
    m = np.zeros((2, 3))
    m[:, :2] = s * np.array([[math.cos(a), -math.sin(a)], [math.sin(a), math.cos(a)]])
    m[:, 2] = rng.uniform(-50, 50, 2)
    return m


def test_similarity_transform_recovers_known_transforms_in_batches():
    rng = np.random.default_rng(0)
    src = rng.uniform(0, 100, (5, 10, 2))
    truth = np.stack([_random_similarity(rng) for _ in range(5)])
    dst = src @ np.swapaxes(truth[:, :, :2], 1, 2) + truth[:, None, :, 2]
    batched = similarity_transform(src, dst)
    assert batched.shape == (5, 2, 3) and np.allclose(batched, truth, atol=1e-9)
    assert np.allclose(similarity_transform(src[2], dst[2]), truth[2], atol=1e-9)
    # Rigid: the best rotation, even when the target is scaled.
    rigid = similarity_transform(src[0], 2.0 * src[0], scale=False)
    assert np.allclose(rigid[:, :2], np.eye(2), atol=1e-9)
    # Never a reflection, even when the points are mirrored.
    mirrored = src[1] * np.array([-1.0, 1.0])
    assert np.linalg.det(similarity_transform(src[1], mirrored)[:, :2]) > 0


def test_estimate_alignment_puts_anchors_on_the_canonical_points(photo):
    alignment = estimate_alignment(ASTRONAUT_LMK, size=128)
    anchors = alignment.to_crop(anchor_points(ASTRONAUT_LMK))
    assert np.abs(anchors - CANONICAL_POINTS * 128).max() < 2.0
    assert np.allclose(alignment.to_image(alignment.to_crop(ASTRONAUT_LMK)), ASTRONAUT_LMK)
    assert warp(photo, alignment).shape == (128, 128, 3)


def test_crop_mask_is_soft_inside_and_zero_on_the_border():
    mask = crop_mask(128, feather=0.1)
    assert mask.shape == (128, 128) and mask.dtype == np.float32
    assert mask[64, 64] == 1.0 and mask.min() == 0.0 and mask.max() == 1.0
    border = np.concatenate([mask[0], mask[-1], mask[:, 0], mask[:, -1]])
    assert border.max() < 0.05
    soft = ((mask > 0.01) & (mask < 0.99)).sum()
    hard = crop_mask(128, feather=0.0)
    assert set(np.unique(hard)) == {0.0, 1.0} and soft > 1000  # a band of intermediate weights
    with pytest.raises(ValueError, match="feather"):
        crop_mask(128, feather=0.7)


def test_paste_back_of_the_photos_own_crop_restores_the_photo(photo):
    alignment = estimate_alignment(ASTRONAUT_LMK, size=256, margin=0.2)
    out = paste_back(photo, warp(photo, alignment), alignment)
    assert out.shape == photo.shape and out.dtype == np.uint8
    mask = PasteBack(photo, alignment).mask
    face = mask > 0.99
    assert face.sum() > 5000
    diff = np.abs(out.astype(int) - photo.astype(int))
    assert diff[face].mean() < 3.0  # only the two resamplings differ
    assert diff[mask == 0].max() == 0  # outside the mask not a pixel changes


def test_paste_back_places_the_crop_over_the_face_only(photo):
    alignment = estimate_alignment(ASTRONAUT_LMK, size=128)
    red = np.zeros((128, 128, 3), np.uint8)
    red[..., 0] = 255
    paster = PasteBack(photo, alignment)
    out = paster(red)
    nose = ASTRONAUT_LMK[30].astype(int)
    assert tuple(out[nose[1], nose[0]]) == (255, 0, 0)
    # Far from the crop (the crop spans about 190 px around the face) the mask is 0 and the photo untouched.
    x0, y0, x1, y1 = paster.box
    assert 100 < x1 - x0 < 300 and 100 < y1 - y0 < 300
    assert paster.mask[:, : x0].max() == 0 and paster.mask[y1:].max() == 0
    assert np.array_equal(out[400:], photo[400:]) and np.array_equal(out[:, 400:], photo[:, 400:])
    # Feathered: along a row through the face the green channel falls to 0 in small steps, not one jump.
    row = out[nose[1], x0:x1, 1].astype(int)
    assert np.abs(np.diff(row)).max() < 40
    hard = PasteBack(photo, alignment, feather=0.0)(red)[nose[1], x0:x1, 1].astype(int)
    assert np.abs(np.diff(hard)).max() > 100


def test_paste_back_of_a_sequence_matches_frame_by_frame(photo):
    alignment = estimate_alignment(ASTRONAUT_LMK, size=64)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 256, (4, 64, 64, 3), dtype=np.uint8)
    paster = PasteBack(photo, alignment)
    frames = paster(crops)
    assert frames.shape == (4, *photo.shape)
    for crop, frame in zip(crops, frames):
        assert np.array_equal(frame, paste_back(photo, crop, alignment))
    with pytest.raises(ValueError, match="crops must be"):
        paster(crops[:, :32])


def test_paste_back_where_the_crop_leaves_the_photo(photo):
    corner = photo[:120, :120]  # the face is cut off: most of the crop lies outside this image
    alignment = estimate_alignment(ASTRONAUT_LMK - 150, size=128)
    out = paste_back(corner, np.full((128, 128, 3), 200, np.uint8), alignment)
    assert out.shape == corner.shape
    gone = estimate_alignment(ASTRONAUT_LMK + 5000, size=128)  # wholly outside
    assert np.array_equal(paste_back(corner, np.zeros((128, 128, 3), np.uint8), gone), corner)
