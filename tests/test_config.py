"""talkinghead.config.PresetConfig: every network config's presets, round trips and refusals."""
from __future__ import annotations

import json

import pytest

from talkinghead.inversion.encoder import Config as EncoderConfig
from talkinghead.io import InputError
from talkinghead.models.sda import Config as SDAConfig
from talkinghead.nn.landmark_net import LandmarkNetConfig
from talkinghead.nn.syncnet import SyncNetConfig
from talkinghead.stylegan2 import Config as StyleGAN2Config

CONFIGS = [SDAConfig, StyleGAN2Config, EncoderConfig, LandmarkNetConfig, SyncNetConfig]


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.KIND)
def test_every_preset_round_trips_through_json(cls):
    assert set(cls.PRESETS) >= {"tiny", "synth128"}
    for name, cfg in cls.PRESETS.items():
        assert cls.preset(name) == cfg and cls.preset(name).name == name
        back = cls.from_dict(json.loads(json.dumps(cfg.to_dict())))      # JSON turns tuples into lists
        assert back == cfg and cls.from_json(cfg.to_json()) == cfg


@pytest.mark.parametrize("cls", CONFIGS, ids=lambda c: c.KIND)
def test_unknown_preset_and_fields_are_refused_by_name(cls):
    with pytest.raises(ValueError, match=f"unknown {cls.KIND} preset 'huge': use one of tiny"):
        cls.preset("huge")
    with pytest.raises(InputError, match=rf"unknown {cls.KIND} config fields \['colour'\]"):
        cls.from_dict({**cls.preset("tiny").to_dict(), "colour": "red"})


def test_overrides_make_a_custom_config():
    cfg = StyleGAN2Config.preset("tiny", z_dim=16)
    assert cfg.z_dim == 16 and cfg.name == "custom" and StyleGAN2Config.preset("tiny").z_dim == 32
    # SDA keeps the preset it started from as a field (checkpoints and the manifest name it).
    assert SDAConfig.preset("tiny", T=8).name == "tiny"
    # ... which `--set name=…` may rename (the preset's own name is positional-only).
    assert SDAConfig.preset("synth128", name="synth64", height=64).name == "synth64"


def test_changes_from_a_checkpoint_config():
    """What resuming compares: changed fields by name; a field the checkpoint predates counts as its default (so
    adding a field with a behaviour-keeping default leaves old runs resumable), a field it has and we lack counts."""
    cfg = SDAConfig.preset("synth128")
    saved = json.loads(json.dumps(cfg.to_dict()))
    assert cfg.changes_from(saved) == {}
    older = {k: v for k, v in saved.items() if k not in ("w_div", "div_clip")}   # written before those existed
    assert cfg.changes_from(older) == {}
    assert SDAConfig.preset("synth128", w_div=100.0).changes_from(older) == {"w_div": (0.0, 100.0)}
    assert SDAConfig.preset("synth128", T=48).changes_from(saved) == {"T": (16, 48)}
    assert cfg.changes_from({**saved, "retired": 1}) == {"retired": (1, "(absent)")}
