"""StyleGAN2 networks and losses: shapes, the official parameter names and counts, the truncation trick, noise
modes, and a tiny training step whose discriminator loss falls."""
from __future__ import annotations

import pytest
import torch

from talkinghead.io import InputError
from talkinghead.stylegan2.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss, g_path_regularize
from talkinghead.stylegan2.networks import PRESETS, Config, Discriminator, Generator, MinibatchStdLayer

torch.set_num_threads(1)
TINY = Config.preset("tiny")


def _shapes(net: torch.nn.Module) -> dict[str, tuple]:
    return {k: tuple(v.shape) for k, v in net.state_dict().items()}


def _on_meta(name: str):
    with torch.device("meta"):  # names, shapes and counts without allocating 30M parameters
        return Generator(Config.preset(name)), Discriminator(Config.preset(name))


def test_tiny_shapes_and_range():
    torch.manual_seed(0)
    G, D = Generator(TINY), Discriminator(TINY)
    z = torch.randn(4, TINY.z_dim)
    ws = G.mapping(z, None)
    assert ws.shape == (4, G.num_ws, TINY.w_dim) == (4, 8, 32)
    img = G(z)
    assert img.shape == (4, 3, 32, 32) and img.dtype == torch.float32
    assert 0.1 < img.std() < 5  # the equalised learning rate keeps activations near unit scale at init
    assert D(img).shape == (4, 1)


@pytest.mark.parametrize("resolution", [32, 64, 128, 256])
def test_resolutions_give_2log2r_minus_2_ws(resolution):
    cfg = Config(z_dim=8, w_dim=8, img_resolution=resolution, channel_base=2 * resolution, channel_max=8, mapping_layers=1, mbstd_group_size=2)
    G, D = Generator(cfg), Discriminator(cfg)
    assert G.num_ws == cfg.num_ws == 2 * resolution.bit_length() - 4  # 2 log2(R) - 2
    img = G(torch.randn(2, 8))
    assert img.shape == (2, 3, resolution, resolution)
    assert D(img).shape == (2, 1)


OFFICIAL_1024 = {  # names and shapes of NVIDIA's stylegan2-ada-pytorch FFHQ 1024 checkpoint
    "mapping.fc0.weight": (512, 512), "mapping.fc0.bias": (512,), "mapping.fc7.weight": (512, 512), "mapping.w_avg": (512,),
    "synthesis.b4.const": (512, 4, 4), "synthesis.b4.resample_filter": (4, 4),
    "synthesis.b4.conv1.affine.weight": (512, 512), "synthesis.b4.conv1.affine.bias": (512,),
    "synthesis.b4.conv1.weight": (512, 512, 3, 3), "synthesis.b4.conv1.noise_strength": (), "synthesis.b4.conv1.bias": (512,),
    "synthesis.b4.conv1.noise_const": (4, 4), "synthesis.b4.conv1.resample_filter": (4, 4),
    "synthesis.b4.torgb.affine.weight": (512, 512), "synthesis.b4.torgb.weight": (3, 512, 1, 1), "synthesis.b4.torgb.bias": (3,),
    "synthesis.b8.conv0.weight": (512, 512, 3, 3), "synthesis.b8.conv0.noise_const": (8, 8), "synthesis.b8.conv1.weight": (512, 512, 3, 3),
    "synthesis.b1024.conv0.weight": (32, 64, 3, 3), "synthesis.b1024.conv0.affine.weight": (64, 512),
    "synthesis.b1024.conv1.noise_const": (1024, 1024), "synthesis.b1024.torgb.weight": (3, 32, 1, 1),
}
OFFICIAL_1024_D = {
    "b1024.fromrgb.weight": (32, 3, 1, 1), "b1024.fromrgb.bias": (32,), "b1024.conv0.weight": (32, 32, 3, 3),
    "b1024.conv1.weight": (64, 32, 3, 3), "b1024.skip.weight": (64, 32, 1, 1), "b1024.resample_filter": (4, 4),
    "b8.conv1.weight": (512, 512, 3, 3), "b4.conv.weight": (512, 513, 3, 3), "b4.fc.weight": (512, 8192), "b4.fc.bias": (512,),
    "b4.out.weight": (1, 512), "b4.out.bias": (1,),
}


def test_ffhq1024_has_the_official_names_shapes_and_count():
    G, D = _on_meta("ffhq1024")
    g, d = _shapes(G), _shapes(D)
    assert {k: g.get(k) for k in OFFICIAL_1024} == OFFICIAL_1024
    assert {k: d.get(k) for k in OFFICIAL_1024_D} == OFFICIAL_1024_D
    assert "b1024.skip.bias" not in d and "synthesis.b4.conv0.weight" not in g and not any(".mbstd." in k for k in d)
    assert G.num_ws == 18
    assert sum(p.numel() for p in G.parameters()) == 30_370_060  # the official count of the 1024 px generator
    assert sum(p.numel() for p in D.parameters()) == 29_012_513  # measured here


def test_ffhq256_uses_paper256_channels():
    G, D = _on_meta("ffhq256")
    g, d = _shapes(G), _shapes(D)
    assert g["synthesis.b256.conv1.weight"] == (64, 64, 3, 3) and g["synthesis.b32.conv1.weight"] == (512, 512, 3, 3)
    assert d["b256.fromrgb.weight"] == (64, 3, 1, 1) and d["b4.fc.weight"] == (512, 8192)
    assert G.num_ws == 14
    assert sum(p.numel() for p in G.parameters()) == 24_767_458  # measured here


def test_config_presets_validation_and_json():
    assert set(PRESETS) == {"tiny", "synth128", "ffhq256", "ffhq1024"}
    assert Config.preset("ffhq1024").channel_base == 32768 and Config.preset("ffhq256").channel_base == 16384
    for cfg in PRESETS.values():
        assert Config.from_json(cfg.to_json()) == cfg
    with pytest.raises(ValueError, match="power of 2"):
        Config(img_resolution=48)
    with pytest.raises(ValueError, match="unknown StyleGAN2 preset"):
        Config.preset("ffhq512")
    with pytest.raises(InputError, match="unknown StyleGAN2 config fields"):
        Config.from_json('{"z_dim": 8, "style_mixing": 0.9}')


def test_truncation_and_w_avg_tracking():
    torch.manual_seed(1)
    G = Generator(TINY)
    z = torch.randn(6, TINY.z_dim)
    G.train()
    ws = G.mapping(z, None)
    torch.testing.assert_close(G.mapping.w_avg, ws[:, 0].mean(0) * (1 - TINY.w_avg_beta))  # moved from 0 by 1 - beta
    G.eval()
    before = G.mapping.w_avg.clone()
    ws = G.mapping(z, None)
    assert torch.equal(G.mapping.w_avg, before)  # no update in eval mode
    ws0 = G.mapping(z, None, truncation_psi=0)
    torch.testing.assert_close(ws0, before.expand_as(ws0))
    half = G.mapping(z, None, truncation_psi=0.5, truncation_cutoff=3)
    torch.testing.assert_close(half[:, :3], before.lerp(ws[:, :3], 0.5))
    torch.testing.assert_close(half[:, 3:], ws[:, 3:])


def test_noise_modes_and_fused_modconv():
    torch.manual_seed(2)
    G = Generator(TINY).eval()
    with torch.no_grad():
        for module in G.modules():
            if hasattr(module, "noise_strength"):
                module.noise_strength.fill_(0.5)
    z = torch.randn(2, TINY.z_dim)
    with torch.no_grad():
        const = G(z, noise_mode="const")
        assert torch.equal(const, G(z, noise_mode="const"))
        assert not torch.allclose(G(z, noise_mode="random"), G(z, noise_mode="random"))
        assert not torch.allclose(G(z, noise_mode="none"), const)
        # one grouped convolution with per-sample weights == scaling activations around a shared convolution
        torch.testing.assert_close(G(z, noise_mode="const", fused_modconv=False), const, atol=1e-5, rtol=1e-5)
    with pytest.raises(ValueError, match="noise_mode"):
        G(z, noise_mode="fixed")


def test_minibatch_std_groups_and_error():
    x = torch.randn(4, 3, 2, 2)
    y = MinibatchStdLayer(group_size=2)(x)
    assert y.shape == (4, 4, 2, 2)
    want = x.reshape(2, 2, 3, 2, 2).std(dim=0, unbiased=False).mean(dim=[1, 2, 3])  # groups {0, 2} and {1, 3}
    torch.testing.assert_close(y[:2, 3, 0, 0], want, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(y[2:, 3, 0, 0], want, atol=1e-4, rtol=1e-4)
    with pytest.raises(ValueError, match="not a multiple of the group size"):
        MinibatchStdLayer(group_size=4)(torch.randn(6, 3, 2, 2))


def test_a_training_step_is_finite_and_the_discriminator_learns():
    torch.manual_seed(3)
    G, D = Generator(TINY), Discriminator(TINY)
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-3, betas=(0.0, 0.99))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-3, betas=(0.0, 0.99))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, 32), torch.linspace(-1, 1, 32), indexing="ij")
    real = torch.stack([torch.stack([xx * s, yy * s, xx * yy]) for s in (0.2, 0.4, 0.6, 0.8)])  # (4, 3, 32, 32) smooth
    z = torch.randn(4, TINY.z_dim)

    # 1. G: non-saturating loss + path-length regularisation (second-order gradients through G)
    ws = G.mapping(z, None)
    fake = G.synthesis(ws)
    pl_penalty, pl_mean, lengths = g_path_regularize(fake, ws, torch.zeros([]))
    loss_g = g_nonsaturating_loss(D(fake)) + pl_penalty
    opt_g.zero_grad()
    loss_g.backward()
    assert torch.isfinite(loss_g) and lengths.shape == (4,) and pl_mean > 0
    assert all(torch.isfinite(p.grad).all() for p in G.parameters() if p.grad is not None)
    opt_g.step()

    # 2. D: logistic loss + R1 (second-order gradients through D), 20 steps on a fixed batch
    fake = G(z).detach()
    losses = []
    for step in range(20):
        real_in = real.detach().requires_grad_(step % 4 == 0)
        real_logits = D(real_in)
        loss_d = d_logistic_loss(real_logits, D(fake))
        losses.append(loss_d.item())
        if step % 4 == 0:  # lazy R1, scaled by its interval
            loss_d = loss_d + 4 * d_r1_loss(real_logits, real_in, gamma=1.0)
        opt_d.zero_grad()
        loss_d.backward()
        assert torch.isfinite(loss_d) and all(torch.isfinite(p.grad).all() for p in D.parameters() if p.grad is not None)
        opt_d.step()
    assert losses[-1] < 0.5 * losses[0], losses


def test_from_safetensors_names_missing_files(tmp_path):
    with pytest.raises(InputError, match="convert an official pickle first"):
        Generator.from_safetensors(tmp_path / "none.safetensors")
