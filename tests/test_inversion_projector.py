"""The projector on a tiny StyleGAN2 whose answer is known: a target made by G itself."""
from __future__ import annotations

import math

import pytest
import torch

from talkinghead.inversion.common import synthesize, w_stats
from talkinghead.inversion.projector import lr_schedule, noise_regularization, project, psnr_from_mse
from talkinghead.stylegan2 import Config, Generator


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    G = Generator(Config.preset("tiny")).eval().requires_grad_(False)
    with torch.no_grad():  # an untrained G has zero noise strength; make the noise maps matter
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.fill_(0.1)
    return G


def _psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    return psnr_from_mse((a - b).square().mean().item())


def test_lr_schedule_ramps():
    assert lr_schedule(0.0, 0.1) == 0.0
    assert lr_schedule(0.5, 0.1) == pytest.approx(0.1)
    assert lr_schedule(0.9, 0.1) < 0.1 and lr_schedule(0.999, 0.1) < 0.001


def test_noise_regularization_penalises_correlated_noise():
    gen = torch.Generator().manual_seed(0)
    white = torch.randn(1, 1, 32, 32, generator=gen)
    smooth = torch.nn.functional.avg_pool2d(white, 3, stride=1, padding=1)
    smooth = (smooth - smooth.mean()) / smooth.std()
    assert noise_regularization([smooth]) > 10 * noise_regularization([white])


def test_projection_recovers_a_generated_image(G):
    gen = torch.Generator().manual_seed(1)
    ws_a = G.mapping(torch.randn(1, G.z_dim, generator=gen), None)
    ws_b = G.mapping(torch.randn(1, G.z_dim, generator=gen), None)
    mixed = torch.cat([ws_a[:, :4], ws_b[:, 4:]], dim=1)                  # coarse from a, fine from b: in W+, not W
    target = G.synthesis(mixed, noise_mode="const")                       # (1, 3, 32, 32)
    w_avg, _ = w_stats(G, n=2000)
    start = _psnr(synthesize(G, w_avg.reshape(1, 1, -1).expand(1, G.num_ws, -1)), target)

    seen = []
    result = {}
    for space in ("w", "w+"):
        proj = project(G, target, space=space, steps=100, perceptual="structural", l2_weight=1.0, w_avg_samples=2000,
                       progress=lambda stage, f: seen.append((stage, f)))
        result[space] = _psnr(proj.image(G), target)
        assert proj.ws.shape == (1, G.num_ws, G.w_dim)
        assert all(v.shape == (1, 1, *buf.shape) for v, buf in zip(proj.noise.values(), [b for n, b in G.synthesis.named_buffers() if n.endswith("noise_const")]))
        h = proj.history
        assert len(h) == 100 and all(math.isfinite(r["loss"]) for r in h)
        assert h[-1]["noise_reg"] < 0.01 * h[0]["noise_reg"]                       # the regulariser did its job
        assert sum(r["psnr"] for r in h[-10:]) / 10 > sum(r["psnr"] for r in h[:10]) / 10 + 6
        if space == "w":
            assert torch.equal(proj.ws, proj.ws[:, :1].expand_as(proj.ws))   # one w repeated over the layers
    assert result["w"] > start + 6, (start, result)                       # from ~4 dB at the mean w
    assert result["w+"] >= result["w"], result                             # W+ at least as good as W
    assert seen[-1] == ("project", 1.0)
    # G untouched: its constant noise still makes the same image.
    assert torch.equal(G.synthesis(mixed, noise_mode="const"), target)


def test_batch_of_frames_and_errors(G):
    gen = torch.Generator().manual_seed(2)
    frames = G.synthesis(G.mapping(torch.randn(3, G.z_dim, generator=gen), None), noise_mode="const")
    proj = project(G, frames, space="w+", steps=5, perceptual=None, l2_weight=1.0, w_avg_samples=500)
    assert proj.ws.shape == (3, G.num_ws, G.w_dim) and proj.image(G).shape == frames.shape
    with pytest.raises(ValueError, match="space"):
        project(G, frames, space="z", steps=1)
    with pytest.raises(ValueError, match="expected"):
        project(G, frames[0], init_ws=proj.ws, steps=1, perceptual=None, l2_weight=1.0)
    with pytest.raises(Exception, match="32×32"):
        project(G, torch.zeros(1, 3, 16, 16), steps=1)
