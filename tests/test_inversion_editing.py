"""GANSpace directions and the notebook API (invert → tune → edit) on a tiny StyleGAN2, and the measurement table."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from talkinghead.inversion import api
from talkinghead.inversion.editing import apply_direction, apply_directions, edit_strips, principal_directions
from talkinghead.inversion.encoder import Config as EncoderConfig
from talkinghead.inversion.encoder import Encoder
from talkinghead.inversion.measure import astronaut_crop, format_group_table, format_table, improves_everywhere, measure_inversion
from talkinghead.stylegan2 import Config, Generator


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(Config.preset("tiny")).eval().requires_grad_(False)


def test_directions_are_orthonormal_and_ordered(G):
    d = principal_directions(G, k=6, n=2000)
    assert d.directions.shape == (6, G.w_dim) and len(d) == 6
    assert torch.allclose(d.directions @ d.directions.T, torch.eye(6), atol=1e-5)
    assert (d.std[:-1] >= d.std[1:]).all() and 0 < d.explained.sum() <= 1
    # The std is the spread of projected samples: check on fresh samples.
    fresh = G.mapping(torch.randn(4000, G.z_dim, generator=torch.Generator().manual_seed(9)), None)[:, 0]
    assert ((fresh - d.mean) @ d.directions[0]).std() == pytest.approx(d.std[0].item(), rel=0.1)


def test_apply_direction_single_trajectory_and_layers(G):
    d = principal_directions(G, k=3, n=1000)
    ws = G.mapping(torch.randn(1, G.z_dim), None)                              # (1, num_ws, w_dim)
    trajectory = G.mapping(torch.randn(5, G.z_dim), None)                      # (T, num_ws, w_dim)
    assert torch.equal(apply_direction(ws, d.directions[0], 0.0), ws)
    assert torch.equal(apply_direction(trajectory, d.directions[1], 0.0), trajectory)
    moved = apply_direction(trajectory, d.directions[0], 2.0)
    assert moved.shape == trajectory.shape
    assert torch.allclose((moved - trajectory) @ d.directions[0], torch.full((5, G.num_ws), 2.0), atol=1e-5)
    coarse = apply_direction(ws, d.directions[0], 1.0, layers=range(0, 3))
    assert torch.equal(coarse[:, 3:], ws[:, 3:]) and not torch.equal(coarse[:, :3], ws[:, :3])
    both = apply_directions(trajectory, d, {0: 1.0, 2: -1.0})
    expected = trajectory + d.std[0] * d.directions[0] - d.std[2] * d.directions[2]
    assert torch.allclose(both, expected, atol=1e-5)
    assert torch.equal(api.edit(trajectory, d, [0.0, 0.0]), trajectory)
    with pytest.raises(ValueError, match="component 5"):
        apply_directions(ws, d, {5: 1.0})


def test_api_invert_tune_edit_report_progress(G, tmp_path, monkeypatch):
    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path))
    target = G.synthesis(G.mapping(torch.randn(1, G.z_dim), None), noise_mode="const")
    photo = ((target[0].permute(1, 2, 0) + 1) * 127.5).clamp(0, 255).round().to(torch.uint8).numpy()  # (32, 32, 3)
    E = Encoder(EncoderConfig.preset("tiny"))
    stages = []
    inv = api.invert(photo, G, E, refine_steps=5, perceptual="structural", progress=lambda s, f: stages.append((s, f)))
    assert inv.ws.shape == (1, G.num_ws, G.w_dim) and inv.image.shape == (1, 3, 32, 32)
    assert set(inv.seconds) == {"encode", "project"}
    tuned = api.tune(photo, G, inv, steps=3, perceptual="structural", progress=lambda s, f: stages.append((s, f)))
    assert {s for s, _ in stages} == {"encode", "project", "tune"} and stages[-1] == ("tune", 1.0)
    ws = api.edit(inv.ws, principal_directions(G, k=2, n=500), {1: 1.5})
    assert tuned.synthesis(ws).shape == (1, 3, 32, 32)
    with pytest.raises(ValueError, match="nothing to invert"):
        api.invert(photo, G, None, refine_steps=0)
    with pytest.raises(Exception, match="uint8"):
        api.invert(np.zeros((32, 32, 3), np.float64), G, E)


def test_edit_strips_and_their_picture(G, tmp_path):
    from PIL import Image

    from talkinghead.hub import save_weights
    from talkinghead.inversion.editing import main

    d = principal_directions(G, k=3, n=1000)
    ws = G.mapping(torch.randn(1, G.z_dim, generator=torch.Generator().manual_seed(1)), None)
    strips = edit_strips(G, d, ws, components=(0, 2), amounts=(-2.0, 0.0, 2.0))
    assert strips.shape == (2, 3, 3, 32, 32)
    assert torch.allclose(strips[0, 1], strips[1, 1]) and not torch.allclose(strips[0, 0], strips[0, 2])
    with pytest.raises(ValueError, match="one latent"):
        edit_strips(G, d, ws.expand(2, -1, -1))
    # The command line, on a generator shipped as `train stylegan2 --ship` ships it (config in the manifest).
    save_weights(G.state_dict(), "g.safetensors", root=tmp_path, config="tiny", config_dict=G.cfg.to_dict(),
                 data="random", steps=0, metrics={}, half=False)
    assert main(["--generator", str(tmp_path / "g.safetensors"), "--out", str(tmp_path / "e.png"), "--components", "2",
                 "--latents", "1"]) == 0
    assert Image.open(tmp_path / "e.png").size == (5 * 34 + 2, 2 * 34 + 2)


def test_measure_inversion_table(G):
    images = G.synthesis(G.mapping(torch.randn(2, G.z_dim), None), noise_mode="const")
    E = Encoder(EncoderConfig.preset("tiny"))
    rows = measure_inversion(G, E, images, methods=("encoder", "pti", "mean-w"), refine_steps=3, pti_steps=3,
                             perceptual="structural", groups=["s1", "s2"])
    assert [r["method"] for r in rows] == ["encoder", "pti", "mean-w"]
    mean_face = rows.pop()                                            # the baseline: one image for every target
    assert mean_face["psnr"] < rows[1]["psnr"] and mean_face["seconds_per_image"] < rows[1]["seconds_per_image"]
    # Per group: one image each, so each group's figures are that image's, and they average to the row's.
    for r in rows:
        assert list(r["groups"]) == ["s1", "s2"] and all(g["images"] == 1 for g in r["groups"].values())
        assert np.mean([g["psnr"] for g in r["groups"].values()]) == pytest.approx(r["psnr"])
    # The untrained tiny encoder outputs the mean w; 3 PTI steps around a projected pivot must do better.
    verdict = improves_everywhere(rows)
    assert set(verdict) == {"s1", "s2"} and all(isinstance(v, bool) for v in verdict.values())
    assert "| s1 | 1 |" in format_group_table(rows)
    from talkinghead.inversion.common import w_stats

    assert rows[1]["pti_alpha"] == pytest.approx(float(w_stats(G)[1])) and "pti_alpha" not in rows[0]
    assert all(r["images"] == 2 and np.isfinite(r["psnr"]) and -1 <= r["ssim"] <= 1 and r["seconds_per_image"] > 0 for r in rows)
    assert rows[0]["perceptual_kind"] == "StructuralDistance"
    assert "| encoder | 2 |" in format_table(rows)
    with pytest.raises(ValueError, match="need an encoder"):
        measure_inversion(G, None, images, methods=("encoder",))
    with pytest.raises(ValueError, match="groups names 1 images"):
        measure_inversion(G, E, images, methods=("encoder",), groups=["s1"])


def test_astronaut_crop_is_the_aligned_face():
    crop = astronaut_crop(128)
    assert crop.shape == (128, 128, 3) and crop.dtype == np.uint8
    # Aligned as SynthGRID crops are: the face fills the crop, so its centre is skin, not the dark background.
    assert crop[48:80, 48:80].mean() > 100
