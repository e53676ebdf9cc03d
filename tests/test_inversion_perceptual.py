"""The perceptual distance: LPIPS loading on locally made weights (strict), the fallback's behaviour."""
from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

from talkinghead.hub import WeightsError, save_weights
from talkinghead.inversion import perceptual as perceptual_mod
from talkinghead.inversion.perceptual import (
    LPIPS,
    LPIPS_WEIGHTS,
    VGG16_CONVS,
    StructuralDistance,
    load_perceptual,
    lpips_state_dict,
)


def _blur(x: torch.Tensor, k: int) -> torch.Tensor:
    return F.avg_pool2d(F.pad(x, [k // 2] * 4, mode="replicate"), k, stride=1)


def _image(seed: int = 0) -> torch.Tensor:
    """A smooth pattern with edges, (2, 3, 32, 32) in [-1, 1]."""
    gen = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    base = torch.stack([torch.sin(6 * xx), torch.sign(yy - 0.2), torch.cos(4 * (xx + yy))])
    return (0.7 * base + 0.3 * torch.rand(2, 3, 32, 32, generator=gen)).clamp(-1, 1)


def _torchvision_style_vgg16(seed: int = 0) -> dict[str, torch.Tensor]:
    """A VGG16 state dict in torchvision's layout (features.* up to index 28, plus the classifier), random values."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for idx, cin, cout in VGG16_CONVS:
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3, generator=gen) * (2 / (cin * 9)) ** 0.5
        state[f"features.{idx}.bias"] = torch.zeros(cout)
    state["classifier.0.weight"] = torch.zeros(4, 8)  # dropped by lpips_state_dict
    return state


@pytest.mark.parametrize("net", [StructuralDistance(), LPIPS()], ids=["structural", "lpips-random"])
def test_identical_is_zero_and_blur_grows(net):
    x = _image()
    assert torch.allclose(net(x, x), torch.zeros(2), atol=1e-6)
    d1, d2, d3 = (net(_blur(x, k), x) for k in (3, 5, 9))
    assert (d1 > 1e-3).all() and (d2 > d1).all() and (d3 > d2).all()
    assert net(x, _blur(x, 3)).shape == (2,)


def test_structural_is_differentiable():
    x = _image().requires_grad_(True)
    StructuralDistance()(x, _blur(_image(), 5)).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_lpips_loads_strictly_from_local_weights(tmp_path):
    heads = {f"lin{k}.model.1.weight": torch.rand(1, c, 1, 1) for k, c in enumerate((64, 128, 256, 512, 512))}
    state = lpips_state_dict(_torchvision_style_vgg16(), heads)
    assert "classifier.0.weight" not in state and "lin0.weight" in state and len(state) == 26 + 5
    save_weights(state, LPIPS_WEIGHTS, root=tmp_path, half=False, config="vgg16_lpips", data="random, for the test")
    net = load_perceptual("lpips", root=tmp_path)
    assert getattr(net, "is_lpips", False)
    assert set(net.weight_names()) == set(state)
    assert torch.equal(net.vgg.features[0].weight, state["features.0.weight"])
    assert torch.equal(net.vgg.features[28].weight, state["features.28.weight"])
    assert torch.equal(net.lin4, state["lin4.weight"])
    x = _image()
    assert torch.allclose(net(x, x), torch.zeros(2), atol=1e-6) and (net(_blur(x, 5), x) > 0).all()

    # A missing key, a wrong shape: clear errors, even in "auto" mode (a broken file must not be silently skipped).
    broken = dict(state)
    del broken["features.10.weight"]
    save_weights(broken, LPIPS_WEIGHTS, root=tmp_path, half=False)
    with pytest.raises(WeightsError, match=r"missing \['features.10.weight'\]"):
        load_perceptual("auto", root=tmp_path)
    broken = {**state, "lin2.weight": torch.rand(1, 255, 1, 1)}
    save_weights(broken, LPIPS_WEIGHTS, root=tmp_path, half=False)
    with pytest.raises(WeightsError, match="lin2.weight"):
        load_perceptual("lpips", root=tmp_path)


def test_missing_weights_fall_back_with_one_warning(tmp_path, monkeypatch):
    monkeypatch.delenv("TALKINGHEAD_HUB_REPO", raising=False)
    monkeypatch.setattr(perceptual_mod, "_warned_fallback", False)
    with pytest.raises(WeightsError, match="not found"):
        load_perceptual("lpips", root=tmp_path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = load_perceptual("auto", root=tmp_path)
        second = load_perceptual("auto", root=tmp_path)
    notes = [w for w in caught if "NOT LPIPS" in str(w.message)]
    assert isinstance(first, StructuralDistance) and isinstance(second, StructuralDistance) and len(notes) == 1
    with pytest.raises(ValueError, match="kind"):
        load_perceptual("vgg19")
