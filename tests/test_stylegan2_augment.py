"""stylegan2.augment (DiffAugment): each transform does what it says, per image, differentiably to second order."""
from __future__ import annotations

import pytest
import torch

from talkinghead.stylegan2.augment import diff_augment, parse_policy


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def test_translation_is_an_integer_shift_with_a_zero_border():
    x = torch.rand(8, 3, 16, 16) + 1.0                                          # every pixel ≥ 1: zeros are border
    y = diff_augment(x, "translation", generator=_gen())
    for i in range(8):
        # Find the shift that maps x to y on the covered region; it must be within ±2 (1/8 of 16) pixels.
        matches = [(dy, dx) for dy in range(-2, 3) for dx in range(-2, 3)
                   if torch.equal(y[i], torch.roll(x[i], (-dy, -dx), (1, 2)) * (y[i] != 0))]
        assert matches, i
        dy, dx = matches[0]
        assert (y[i] == 0).sum() == 3 * (16 * 16 - (16 - abs(dy)) * (16 - abs(dx)))
    assert len({tuple(diff_augment(x, "translation", generator=_gen(s))[0, 0, 0, :4].tolist()) for s in range(10)}) > 1


def test_cutout_zeroes_one_square_of_half_the_size_at_most():
    x = torch.ones(16, 3, 32, 32)
    y = diff_augment(x, "cutout", generator=_gen())
    zeros = (y[:, 0] == 0).sum(dim=(1, 2))                                      # (16,) zeroed pixels per image
    assert (zeros <= 16 * 16).all() and (zeros > 0).all() and (zeros == 16 * 16).any()
    assert torch.equal(y[:, 0], y[:, 2])                                        # the same square in every channel


def test_color_moves_brightness_saturation_contrast_per_image():
    x = torch.rand(32, 3, 8, 8) * 2 - 1
    y = diff_augment(x, "color", generator=_gen())
    shift = (y - x).mean(dim=(1, 2, 3))
    assert shift.std() > 0.1 and shift.abs().max() < 1.5                         # per-image brightness of ±0.5 and more
    grey = torch.zeros(4, 3, 8, 8)
    assert torch.allclose(diff_augment(grey, "color", generator=_gen())[:, 0], diff_augment(grey, "color", generator=_gen())[:, 1])


def test_second_order_gradients_and_policies():
    x = torch.randn(2, 3, 8, 8, requires_grad=True)
    out = diff_augment(x, "color,translation,cutout", generator=_gen()).square().sum()
    (grad,) = torch.autograd.grad(out, x, create_graph=True)                    # R1 runs through the augmentation
    grad.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert parse_policy("cutout, color") == ("cutout", "color") and parse_policy("") == ()
    assert torch.equal(diff_augment(x, ""), x)
    with pytest.raises(ValueError, match="unknown augmentation \\['zoom'\\]"):
        diff_augment(x, "color,zoom")
