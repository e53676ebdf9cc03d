"""Pivotal tuning on a tiny StyleGAN2: reconstruction improves, the change stays local, the delta round-trips,
is smaller than the weights, and the cache skips the work."""
from __future__ import annotations

import time

import pytest
import torch

from talkinghead.inversion.common import synthesize, w_stats
from talkinghead.inversion.pti import TunedGenerator, delta_nbytes, generator_fingerprint, pivotal_tuning
from talkinghead.io import InputError
from talkinghead.stylegan2 import Config, Generator


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    G = Generator(Config.preset("tiny")).eval().requires_grad_(False)
    gen = torch.Generator().manual_seed(1)
    ws = G.mapping(torch.randn(2, G.z_dim, generator=gen), None)
    target = G.synthesis(ws[:1], noise_mode="const")                     # (1, 3, 32, 32)
    pivot = ws[1:]                                                        # a wrong pivot: G must bend to the target
    _, spread = w_stats(G, n=2000)
    far = G.mapping(torch.randn(8, G.z_dim, generator=gen), None)        # random latents away from the pivot
    return G, target, pivot, float(spread), far


def _mse(a, b):
    return (a - b).square().mean().item()


def test_tuning_improves_stays_local_and_round_trips(setup, tmp_path):
    G, target, pivot, spread, far = setup
    before = {k: v.clone() for k, v in G.state_dict().items()}
    stages = []
    tuned = pivotal_tuning(G, target, pivot, steps=60, lr=3e-3, locality_alpha=spread, perceptual="structural",
                           cache_root=tmp_path, progress=lambda s, f: stages.append((s, f)))
    assert not tuned.from_cache and stages[-1] == ("tune", 1.0)
    with torch.no_grad():
        base_pivot = synthesize(G, pivot)
        assert _mse(tuned.image(), target) < 0.2 * _mse(base_pivot, target)
        change_pivot = (tuned.synthesis(pivot) - base_pivot).abs().mean()
        change_far = (tuned.synthesis(far) - synthesize(G, far)).abs().mean()
    assert change_far < 0.5 * change_pivot, (change_far, change_pivot)
    free = pivotal_tuning(G, target, pivot, steps=60, lr=3e-3, locality_weight=0.0, perceptual="structural", cache=False)
    with torch.no_grad():
        change_far_free = (free.synthesis(far) - synthesize(G, far)).abs().mean()
    assert change_far < 0.85 * change_far_free, (change_far, change_far_free)  # the regulariser is what keeps it local
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in before.items())  # the base generator is untouched

    # Save -> load on the same base: the same images; the merged copy agrees too.
    path = tuned.save(tmp_path / "delta.safetensors")
    again = TunedGenerator.load(path, G)
    with torch.no_grad():
        assert torch.equal(again.synthesis(far), tuned.synthesis(far))
        assert torch.allclose(tuned.materialize().synthesis(far, noise_mode="const"), tuned.synthesis(far), atol=1e-5)
    assert torch.equal(again.pivot, tuned.pivot)
    full_bytes = sum(p.numel() * 4 for p in G.parameters())
    assert path.stat().st_size < 0.6 * full_bytes and tuned.nbytes() == delta_nbytes(G, None)

    other = Generator(Config.preset("tiny"))
    with pytest.raises(InputError, match="another generator"):
        TunedGenerator.load(path, other)


def test_low_rank_delta_is_smaller(setup, tmp_path):
    G, target, pivot, spread, _ = setup
    tuned = pivotal_tuning(G, target, pivot, steps=30, lr=3e-3, rank=2, locality_weight=0.0, perceptual="structural",
                           cache=False)
    assert not list(tmp_path.iterdir())
    with torch.no_grad():
        assert _mse(tuned.image(), target) < 0.6 * _mse(synthesize(G, pivot), target)
    assert tuned.nbytes() == delta_nbytes(G, 2) < 0.5 * delta_nbytes(G, None)
    path = tuned.save(tmp_path / "lowrank.safetensors")
    with torch.no_grad():
        assert torch.equal(TunedGenerator.load(path, G).image(), tuned.image())


def test_cache_hit_skips_tuning(setup, tmp_path, monkeypatch):
    G, target, pivot, spread, _ = setup
    monkeypatch.setenv("TALKINGHEAD_CACHE", str(tmp_path))
    kwargs = dict(steps=20, lr=3e-3, locality_alpha=spread, perceptual="structural")
    first = pivotal_tuning(G, target, pivot, **kwargs)
    assert not first.from_cache and len(list((tmp_path / "pti").glob("*.safetensors"))) == 1
    start = time.perf_counter()
    second = pivotal_tuning(G, target, pivot, **kwargs)
    assert second.from_cache and second.seconds == 0.0 and time.perf_counter() - start < first.seconds
    with torch.no_grad():
        assert torch.equal(second.image(), first.image())
    third = pivotal_tuning(G, target, pivot, **{**kwargs, "steps": 21})   # other settings: a new entry
    assert not third.from_cache and len(list((tmp_path / "pti").glob("*.safetensors"))) == 2
    assert not list((tmp_path / "pti").glob(".*.tmp"))                   # no temporary file left behind


def test_frames_and_bad_pivot(setup):
    G, target, pivot, spread, _ = setup
    frames = torch.cat([target, target.flip(-1)])                          # a two-frame "clip"
    G.requires_grad_(True)                                                 # a caller's trainable G gets no gradients
    tuned = pivotal_tuning(G, frames, pivot.expand(2, -1, -1), steps=2, perceptual="structural", cache=False)
    assert all(p.grad is None for p in G.parameters())
    G.requires_grad_(False)
    assert tuned.image().shape == (2, 3, 32, 32)
    with pytest.raises(InputError, match="one pivot per target frame"):
        pivotal_tuning(G, frames, pivot, steps=1, perceptual="structural", cache=False)
    assert generator_fingerprint(G) == generator_fingerprint(G)
