"""The e4e-style encoder: shapes, the mean-w start, one training step through fit with G frozen, the command line
with --generator and --ship, and loading through the hub."""
from __future__ import annotations

import json

import pytest
import torch

from talkinghead import hub
from talkinghead.cli import main
from talkinghead.data.prepare import prepare_corpus
from talkinghead.data.synthgrid.corpus import generate_corpus
from talkinghead.inversion.common import load_generator
from talkinghead.inversion.encoder import Config, Encoder, EncoderTask, load_encoder
from talkinghead.io import InputError
from talkinghead.stylegan2 import Config as G_Config
from talkinghead.stylegan2 import Generator
from talkinghead.training import fit


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Three SynthGRID speakers (train, val, test), one clip each, prepared at 32 px."""
    root = tmp_path_factory.mktemp("encoder")
    generate_corpus(root / "corpus", speakers=3, per_speaker=1, size=64, seed=0, workers=1, progress=False)
    prepare_corpus(root / "corpus", root / "prepared", size=32, workers=1, progress=False)
    return root / "prepared"


@pytest.fixture(scope="module")
def G():
    torch.manual_seed(0)
    return Generator(G_Config.preset("tiny")).eval().requires_grad_(False)


def test_shapes_presets_and_mean_start():
    for name in ("tiny", "synth128"):
        cfg = Config.preset(name)
        E = Encoder(cfg)
        E.w_avg.normal_()
        ws, deltas = E(torch.randn(2, 3, cfg.img_resolution, cfg.img_resolution), return_deltas=True)
        assert ws.shape == (2, cfg.num_ws, cfg.w_dim) and deltas.shape == (2, cfg.num_ws - 1, cfg.w_dim)
        assert torch.equal(ws, E.w_avg.expand_as(ws))                     # zero heads: a new encoder gives the mean w
    assert Config.preset("synth128").num_ws == G_Config.preset("synth128").num_ws
    cfg = Config.preset("tiny", channels=(8, 16, 16))
    assert cfg.name == "custom" and Config.from_dict(json.loads(json.dumps(cfg.to_dict()))) == cfg
    with pytest.raises(ValueError, match="img"):
        Encoder(Config.preset("tiny"))(torch.zeros(1, 3, 64, 64))
    with pytest.raises(InputError, match="--generator"):
        EncoderTask(Config.preset("tiny"))
    with pytest.raises(InputError, match="encoder preset"):
        EncoderTask(Config.preset("synth128"), G=Generator(G_Config.preset("tiny")))


def test_one_fit_step_trains_only_the_encoder(G, prepared, tmp_path):
    before = {k: v.clone() for k, v in G.state_dict().items()}
    task = EncoderTask(Config.preset("tiny", perceptual="structural"), G=G)
    result = fit(task, prepared, out=tmp_path, steps=2, batch_size=4, log_every=1, progress=False, checkpoint_every=0)
    rows = result.history
    assert [r["step"] for r in rows] == [1, 2]
    assert all({"E_loss", "l2", "perceptual", "delta"} <= set(r) for r in rows)
    assert rows[0]["delta"] == 0.0 and rows[1]["delta"] > 0                # deltas start at zero, then move
    E = result.nets["E"]
    assert torch.allclose(E.w_avg, task.build_nets()["E"].w_avg)
    assert any(p.abs().sum() > 0 for p in E.heads[0].linear.parameters())
    assert all(torch.equal(v, result.nets["G"].state_dict()[k]) for k, v in before.items())


def test_command_line_trains_ships_and_loads(G, prepared, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path / "weights")
    g_cfg = G.cfg
    hub.save_weights(G.state_dict(), "g_tiny.safetensors", half=False, config=g_cfg.name, config_dict=g_cfg.to_dict())
    G2 = load_generator("g_tiny.safetensors")
    assert all(torch.equal(v, G.state_dict()[k]) for k, v in G2.state_dict().items())

    code = main(["train", "encoder", "--generator", "g_tiny.safetensors", "--config", "tiny", "--set", "perceptual=structural",
                 "--data", str(prepared), "--out", str(tmp_path / "run"), "--steps", "1", "--batch-size", "2",
                 "--quiet", "--ship", "enc_tiny.safetensors"])
    assert code == 0
    out = capsys.readouterr().out
    assert '"generator": "g_tiny.safetensors"' in out and "shipped" in out
    entry = hub.read_manifest(tmp_path / "weights")["enc_tiny.safetensors"]
    assert entry["config_dict"]["generator"] == "g_tiny.safetensors" and entry["metrics"]["inversion"][0]["method"] == "encoder"
    E = load_encoder("enc_tiny.safetensors")
    assert E.cfg == Config.preset("tiny", generator="g_tiny.safetensors", perceptual="structural")
    assert E(torch.zeros(1, 3, 32, 32)).shape == (1, 8, 32)
