"""StyleGAN2 through fit(): config plumbing, lazy phases at their steps, a D loss that falls, exact resume, the
command line with --ship, and the quality measures on features where the answer is known."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from talkinghead.data.prepare import prepare_corpus
from talkinghead.data.synthgrid.corpus import generate_corpus
from talkinghead.face.landmarks import canonical_shape
from talkinghead.io import InputError
from talkinghead.stylegan2 import Config, Generator
from talkinghead.stylegan2.quality import face_rate, pixel_features, precision_recall, shape_distance
from talkinghead.stylegan2.training import StyleGAN2Task, lazy_adam
from talkinghead.training import fit

TINY = Config.preset("tiny")  # 32 px


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """Three SynthGRID speakers (train, val, test), one clip each, prepared at the tiny preset's 32 px."""
    root = tmp_path_factory.mktemp("stylegan2")
    generate_corpus(root / "corpus", speakers=3, per_speaker=1, size=64, seed=0, workers=1, progress=False)
    prepare_corpus(root / "corpus", root / "prepared", size=32, workers=1, progress=False)
    return root / "prepared"


def test_config_name_dict_and_overrides():
    assert TINY.name == "tiny" and Config.preset("synth128").name == "synth128"
    custom = Config.preset("tiny", mbstd_group_size=4)
    assert custom.mbstd_group_size == 4 and custom.name == "custom"
    assert Config.from_dict(json.loads(json.dumps(custom.to_dict()))) == custom
    with pytest.raises(InputError, match="unknown StyleGAN2 config fields"):
        Config.from_dict({**TINY.to_dict(), "r1_gamma": 1.0})


def test_lazy_adam_corrects_lr_and_betas():
    param = [torch.nn.Parameter(torch.zeros(1))]
    group = lazy_adam(param, lr=0.0025, betas=(0.0, 0.99), every=16).param_groups[0]
    assert group["lr"] == pytest.approx(0.0025 * 16 / 17) and group["betas"] == pytest.approx((0.0, 0.99 ** (16 / 17)))
    assert lazy_adam(param, lr=0.0025, betas=(0.0, 0.99), every=0).param_groups[0]["lr"] == 0.0025


def test_lazy_phases_run_at_their_steps(prepared, tmp_path):
    """R1 every 2 steps and path length every 3, from the first step; the path-length mean lives in its own
    checkpointed net (G keeps NVIDIA's names, so official weights still load into it)."""
    task = StyleGAN2Task(TINY, r1_every=2, pl_every=3)
    assert [p.name for p in task.phases] == ["D", "D_reg", "G", "G_reg"]
    result = fit(task, prepared, out=tmp_path, steps=4, batch_size=4, log_every=1, progress=False)
    rows = result.history
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert ["R1" in r for r in rows] == [True, False, True, False]          # steps 0 and 2 (fit counts from 0)
    assert ["PL" in r for r in rows] == [True, False, False, True]          # steps 0 and 3
    assert all(math.isfinite(v) for r in rows for k, v in r.items())
    assert all({"D_loss", "D_real", "D_fake", "G_loss"} <= set(r) for r in rows)
    pl_mean = result.nets["pl"].mean
    assert pl_mean > 0 and list(result.nets["pl"].state_dict()) == ["mean"]
    from safetensors.torch import load_file

    saved = load_file(str(result.checkpoint / "nets.safetensors"))
    assert torch.equal(saved["pl.mean"], pl_mean)


def test_discriminator_loss_falls_on_a_fixed_batch(prepared):
    from talkinghead.data.datasets import FrameDataset

    torch.manual_seed(0)
    task = StyleGAN2Task(TINY)
    nets = task.build_nets()
    opt = task.build_optimizers(nets)["D"]
    batch = FrameDataset(prepared, "train")[list(range(0, 64, 8))]
    losses = []
    for _ in range(15):
        torch.manual_seed(1)  # the same latents, and G is not trained: the same fake batch every step
        loss, logs = task.loss("D", batch, nets, {})
        opt.zero_grad(set_to_none=True)
        loss.backward(inputs=list(nets["D"].parameters()))
        opt.step()
        losses.append(logs["D_loss"])
    assert losses[0] == pytest.approx(2 * math.log(2), abs=0.3)  # an untrained D: both softplus terms near log 2
    assert losses[-1] < 0.5 * losses[0]


def test_resume_is_exact(prepared, tmp_path):
    """Two steps, stop, two more == four steps straight, bit for bit (with both lazy phases in each half)."""
    task = StyleGAN2Task(TINY, r1_every=2, pl_every=3)
    kwargs = dict(batch_size=2, seed=0, log_every=1, progress=False, checkpoint_every=0)
    straight = fit(task, prepared, out=tmp_path / "a", steps=4, **kwargs)
    fit(task, prepared, out=tmp_path / "b", steps=2, **kwargs)
    resumed = fit(task, prepared, out=tmp_path / "b", steps=4, **kwargs)
    assert resumed.step == 4 and [r["step"] for r in resumed.history] == [3, 4]
    for name in ("G", "D", "pl", "G_ema"):
        a, b = straight.nets[name].state_dict(), resumed.nets[name].state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)
    # The hyper-parameters outside the config travel with the checkpoint: other ones are refused, by name.
    with pytest.raises(ValueError, match=r"other task settings \(pl_every, r1_gamma: "):
        fit(StyleGAN2Task(TINY, r1_every=2, pl_every=4, r1_gamma=1.0), prepared, out=tmp_path / "b", steps=5, **kwargs)


def test_dataset_must_match_the_resolution(prepared):
    with pytest.raises(InputError, match="prepare with --size 128"):
        StyleGAN2Task(Config.preset("synth128")).dataset(prepared, "train")


def test_cli_trains_a_step_and_ships(prepared, tmp_path, monkeypatch, capsys):
    import talkinghead.hub as hub
    from talkinghead.cli import main

    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path / "weights")
    out = tmp_path / "run"
    args = ["train", "stylegan2", "--config", "tiny", "--data", str(prepared), "--out", str(out), "--steps", "1",
            "--batch-size", "2", "--quiet", "--ship", "sg2_test.safetensors", "--task-set", "r1_gamma=0.5",
            "--task-set", "augment=translation"]
    assert main(args) == 0
    state = json.loads((out / "checkpoints" / "step_00000001" / "state.json").read_text())
    assert state["config"] == TINY.to_dict() and state["task"] == "StyleGAN2Task"
    entry = hub.read_manifest(tmp_path / "weights")["sg2_test.safetensors"]
    assert entry["config"] == "tiny" and entry["config_dict"] == TINY.to_dict() and entry["steps"] == 1
    settings = entry["training"]["task_settings"]                # typed, recorded with the checkpoint and the weights
    assert settings["r1_gamma"] == 0.5 and settings["augment"] == "translation" and settings["r1_every"] == 16
    assert state["task_settings"] == settings
    capsys.readouterr()
    assert main(args[:-4] + ["--task-set", "gamma=1"]) == 2      # a clear error, no traceback
    assert "--task-set 'gamma=1': use NAME=VALUE with NAME one of r1_gamma" in capsys.readouterr().err
    quality = entry["metrics"]["quality"]
    assert quality["face_rate"] is None and "128 px" in quality["note"]  # the landmark net reads 128 px only
    assert quality["samples"] == 256 and quality["reference_frames"] == 35  # 70 train frames: half reference
    assert all(0 <= quality[k] <= 1 for k in ("precision", "recall", "real_precision", "real_recall"))
    G = Generator(Config.from_dict(entry["config_dict"]))
    G.load_state_dict(hub.load_weights("sg2_test.safetensors", root=tmp_path / "weights"), strict=True)
    # The quality command re-measures the shipped file: the same figures, and an 8 x 8 grid of 32 px samples.
    from PIL import Image

    from talkinghead.stylegan2.quality import main as quality_main

    capsys.readouterr()
    grid = tmp_path / "grid.png"
    assert quality_main(["--generator", str(tmp_path / "weights" / "sg2_test.safetensors"), "--data", str(prepared),
                         "--grid", str(grid)]) == 0
    remeasured = json.loads(capsys.readouterr().out.split("wrote")[0])
    assert {k: remeasured[k] for k in ("precision", "recall")} == {k: quality[k] for k in ("precision", "recall")}
    assert Image.open(grid).size == (8 * 34 + 2, 8 * 34 + 2)
    # The inversion measurement command on the same shipped file: rows, groups by speaker + the astronaut, the picture.
    from talkinghead.inversion.measure import main as measure_main

    picture, report = tmp_path / "inversion.png", tmp_path / "inversion.json"
    assert measure_main(["--generator", str(tmp_path / "weights" / "sg2_test.safetensors"), "--data", str(prepared),
                         "--split", "test", "--per-speaker", "2", "--astronaut", "--methods", "mean-w,projector,pti",
                         "--refine-steps", "2", "--pti-steps", "2", "--pti-rank", "4", "--perceptual", "structural",
                         "--picture", str(picture), "--out", str(report)]) == 0
    result = json.loads(report.read_text())
    assert [r["method"] for r in result["rows"]] == ["mean-w", "projector", "pti"] and result["rows"][2]["pti_rank"] == 4
    assert result["groups"][-1] == "astronaut" and len(result["groups"]) == 3 and result["pti_improves_everywhere"] is None
    assert Image.open(picture).size == (4 * 34 + 2, 3 * 34 + 2)                  # target + 3 methods, 3 images


# --------------------------------------------------------------------------- quality measures


def test_precision_recall_known_answers():
    rng = np.random.default_rng(0)
    real = rng.normal(size=(200, 8))
    assert precision_recall(real, real.copy()) == (1.0, 1.0)
    assert precision_recall(real, real + 100.0) == (0.0, 0.0)
    # Samples from half of the real distribution: precise, but they cover only about half of it.
    half = real[real[:, 0] > 0]
    precision, recall = precision_recall(real, half)
    assert precision == 1.0 and 0.3 < recall < 0.8
    with pytest.raises(ValueError, match="more than k=3"):
        precision_recall(real[:3], real)


def test_pixel_features_separate_the_same_from_the_far():
    rng = np.random.default_rng(0)
    real = rng.integers(0, 100, (40, 32, 32, 3), dtype=np.uint8)
    r, f = pixel_features(real, real.copy(), size=16, components=8)
    assert r.shape == (40, 8) and np.allclose(r, f)
    r, f = pixel_features(real, real + np.uint8(150), size=16, components=8)
    assert precision_recall(r, f) == (0.0, 0.0)


def test_shape_distance_and_face_rate():
    rng = np.random.default_rng(0)
    canon = canonical_shape()
    angle = 0.3
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    moved = canon @ rotation.T * 40 + [64, 60]                                 # a similarity copy: distance 0
    assert shape_distance(moved[None])[0] == pytest.approx(0, abs=1e-9)
    faces = canon + rng.normal(0, 0.02, (250, 68, 2))                         # plausible faces
    scrambled = rng.uniform(-1, 1, (50, 68, 2))                                # points anywhere
    assert shape_distance(scrambled).min() > shape_distance(faces).max()
    rate, threshold = face_rate(faces[:50], faces[50:])                        # 99th percentile of 200 real faces
    assert rate >= 0.9 and threshold == pytest.approx(np.percentile(shape_distance(faces[50:]), 99))
    assert face_rate(scrambled, faces)[0] == 0.0
