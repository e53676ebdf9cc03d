"""The synthgrid landmark net: shapes, sub-pixel soft-argmax, augmentations that move points with pixels,
predict() on every input form and size, a weights round trip that fails loudly on the wrong shapes, a training
run whose loss falls, the CLI, and (when shipped) the real weights on an identity they never saw."""
import argparse
import json

import numpy as np
import pytest
import torch

from talkinghead.data.prepare import PreparedCorpus, prepare_corpus
from talkinghead.data.synthgrid import FaceRenderer, FaceState, generate_corpus
from talkinghead.data.synthgrid.face import sample_identity
from talkinghead.face.align import estimate_alignment, warp
from talkinghead.face.landmarks import mouth_opening
from talkinghead.hub import WEIGHTS_DIR, WeightsError, save_weights
from talkinghead.io import InputError
from talkinghead.nn.landmark_net import (
    WEIGHTS_NAME,
    AugmentConfig,
    LandmarkNet,
    LandmarkNetConfig,
    add_train_landmarks_parser,
    augment,
    evaluate,
    heatmap_loss,
    soft_argmax,
    train,
)

TINY = LandmarkNetConfig.preset("tiny")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A 64 px SynthGRID corpus: s1 train, s2 val, s3 test, two utterances each."""
    root = tmp_path_factory.mktemp("lmk")
    generate_corpus(root / "corpus", speakers=3, per_speaker=2, size=64, seed=0, workers=1, progress=False)
    prepare_corpus(root / "corpus", root / "prepared", size=64, progress=False)
    return root / "prepared"


@pytest.fixture(scope="module")
def trained(prepared):
    torch.set_num_threads(1)  # a small net: threads cost more than they give
    return train(prepared, cfg=TINY, steps=80, batch_size=16, lr=1e-2, seed=0, log_every=20)


def test_shapes_and_size_budget():
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    assert LandmarkNet(TINY)(x).shape == (2, 68, 2)
    assert LandmarkNet(TINY).heatmaps(x).shape == (2, 68, 16, 16)  # stride 4
    shipped = LandmarkNet(LandmarkNetConfig.preset("synth128"))
    assert sum(p.numel() for p in shipped.parameters()) < 2_000_000  # < 4 MB of fp16 weights
    with pytest.raises(ValueError, match="unknown landmark-net preset"):
        LandmarkNetConfig.preset("huge")


def test_soft_argmax_is_sub_pixel():
    heatmaps = torch.full((1, 2, 8, 8), -1e4)
    heatmaps[0, 0, 2, 5] = 0.0  # all mass in cell (row 2, column 5)
    heatmaps[0, 1, 3, 1] = heatmaps[0, 1, 3, 2] = 0.0  # shared by two neighbours: half-way
    points = soft_argmax(heatmaps, stride=4.0)
    assert torch.allclose(points[0, 0], torch.tensor([5.5 * 4, 2.5 * 4]))
    assert torch.allclose(points[0, 1], torch.tensor([2.0 * 4, 3.5 * 4]))


def test_heatmap_loss_wants_a_peak_at_the_point():
    lmk = torch.tensor([[[9.0, 14.0]]])  # (1, 1, 2) pixels; stride 4 -> cell (2.25, 3.5)
    xs, ys = torch.arange(8) + 0.5, torch.arange(8) + 0.5
    peak = -((xs[None, :] - 2.25) ** 2 + (ys[:, None] - 3.5) ** 2) / 2  # log of the target Gaussian (sigma 1 cell)
    assert heatmap_loss(peak[None, None], lmk, stride=4.0) < 1e-5
    assert heatmap_loss(torch.zeros(1, 1, 8, 8), lmk, stride=4.0) > 1.0  # flat: far from it
    assert heatmap_loss(peak.roll(2, 1)[None, None], lmk, stride=4.0) > 1.0  # a peak in the wrong place


@pytest.mark.parametrize("flip_p", [0.0, 1.0])
def test_augment_moves_the_points_with_the_pixels(flip_p):
    size = 64
    points = torch.tensor([[20.0, 24.0], [40.0, 30.0], [30.0, 45.0]])
    yy, xx = torch.meshgrid(torch.arange(size) + 0.5, torch.arange(size) + 0.5, indexing="ij")  # pixel centres
    images = torch.full((3, 3, size, size), -1.0)
    for k, (x, y) in enumerate(points):  # image k: one bright blob centred on point k
        images[k] += 2 * torch.exp(-((xx - x) ** 2 + (yy - y) ** 2) / (2 * 1.5**2))
    lmk = points[:, None, :].expand(3, 68, 2).clone()
    geometry_only = AugmentConfig(flip_p=flip_p, shift=6 / 64, scale=0.1, aspect=0.1, rotate=10, brightness=0, contrast=0, colour=0, blur_p=0, resample_p=0, noise_p=0)
    out, out_lmk = augment(images, lmk, aug=geometry_only, generator=torch.Generator().manual_seed(3))
    assert (out_lmk[:, 0] - lmk[:, 0]).norm(dim=-1).max() > 1.0  # it did move them
    weight = (out[:, 0] + 1).clamp_min(0)
    centroid = torch.stack([(weight * xx).sum((1, 2)), (weight * yy).sum((1, 2))], -1) / weight.sum((1, 2))[:, None]
    assert torch.allclose(centroid, out_lmk[:, 0], atol=0.1)


def test_mirror_images_renumber_the_points():
    lmk = torch.rand(1, 68, 2) * 64
    no_change = AugmentConfig(flip_p=1.0, shift=0, scale=0, aspect=0, rotate=0, brightness=0, contrast=0, colour=0, blur_p=0, resample_p=0, noise_p=0)
    images = torch.rand(1, 3, 64, 64) * 2 - 1
    out, out_lmk = augment(images, lmk, aug=no_change, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(out, images.flip(-1), atol=1e-5)
    # The subject's right mouth corner (48) becomes the left one (54), x mirrored about the crop's centre.
    assert torch.allclose(out_lmk[0, 54], torch.stack([64 - lmk[0, 48, 0], lmk[0, 48, 1]]), atol=1e-4)
    assert torch.allclose(out_lmk[0, 8], torch.stack([64 - lmk[0, 8, 0], lmk[0, 8, 1]]), atol=1e-4)  # the chin stays the chin


def test_training_makes_the_loss_fall(trained):
    model, history = trained
    assert [row["step"] for row in history] == [20, 40, 60, 80]
    assert history[-1]["loss"] < 0.5 * history[0]["loss"]
    assert not model.training


def test_predict_takes_uint8_and_tensors_at_any_size(trained, prepared):
    model, _ = trained
    corpus = PreparedCorpus.open(prepared)
    frames = np.array(corpus.frames[:10])  # (10, 64, 64, 3) uint8, a writable copy
    from_uint8 = model.predict(frames, batch_size=4)
    tensor = torch.from_numpy(frames).permute(0, 3, 1, 2).float() / 127.5 - 1
    assert from_uint8.shape == (10, 68, 2) and from_uint8.dtype == np.float32
    np.testing.assert_allclose(model.predict(tensor), from_uint8, atol=1e-4)
    # The same crops at twice the size: the points come back in the larger crop's pixels.
    doubled = model.predict(frames.repeat(2, axis=1).repeat(2, axis=2))
    assert np.abs(doubled / 2 - from_uint8).mean() < 0.2
    with pytest.raises(InputError, match="square"):
        model.predict(frames[:, :, :40])
    with pytest.raises(InputError, match="uint8"):
        model.predict(frames.astype(np.float32))


def test_evaluate_reports_the_point_distances(trained, prepared):
    model, _ = trained
    corpus = PreparedCorpus.open(prepared)
    metrics = evaluate(model, prepared, "test")
    index = np.concatenate([np.arange(c["frame_start"], c["frame_start"] + c["n_frames"]) for c in corpus.clips("test")])
    distance = np.linalg.norm(model.predict(np.asarray(corpus.frames[index])) - corpus.landmarks[index], axis=-1)  # (N, 68)
    assert metrics["frames"] == len(index)
    assert metrics["mean_px"] == pytest.approx(distance.mean(), rel=1e-4)
    assert metrics["mouth_px"] == pytest.approx(distance[:, 48:].mean(), rel=1e-4)
    assert metrics["median_px"] <= metrics["p95_px"]
    assert evaluate(model, prepared, "test", max_frames=7)["frames"] == 7
    blurred = evaluate(model, prepared, "test", blur_sigma=1.5)
    assert blurred["mean_px"] != metrics["mean_px"]


def test_weights_round_trip_and_wrong_shapes_fail_loudly(tmp_path):
    torch.manual_seed(0)
    model = LandmarkNet(TINY).eval()
    with torch.no_grad():  # what fp16 storage keeps, so the round trip can be exact
        for value in model.state_dict().values():
            if value.is_floating_point():
                value.copy_(value.half().float())
    save_weights(model.state_dict(), "lmk.safetensors", root=tmp_path, config="tiny", data="none", steps=0, metrics={})
    loaded = LandmarkNet.from_pretrained("lmk.safetensors", root=tmp_path)
    x = torch.rand(3, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    save_weights(model.state_dict(), "wrong.safetensors", root=tmp_path, config="synth128", data="none", steps=0, metrics={})
    with pytest.raises(WeightsError, match="does not fit the 'synth128' landmark net"):
        LandmarkNet.from_pretrained("wrong.safetensors", root=tmp_path)
    with pytest.raises(WeightsError, match="not found"):
        LandmarkNet.from_pretrained("missing.safetensors", root=tmp_path)


def test_cli_trains_measures_and_ships(prepared, tmp_path, capsys):
    parser = argparse.ArgumentParser()
    add_train_landmarks_parser(parser.add_subparsers(dest="what"))
    args = parser.parse_args(["landmarks", "--data", str(prepared), "--config", "tiny", "--steps", "3", "--batch-size", "8",
                              "--out", str(tmp_path), "--log-every", "1"])
    assert args.func(args) == 0
    entry = json.loads((tmp_path / "manifest.json").read_text())[WEIGHTS_NAME]
    assert entry["config"] == "tiny" and entry["steps"] == 3 and entry["data"].startswith("SynthGRID seed 0")
    assert {"val", "test", "test_blur1.5", "mean_shape_baseline_px"} <= set(entry["metrics"])
    assert "step      3" in capsys.readouterr().out
    LandmarkNet.from_pretrained(WEIGHTS_NAME, root=tmp_path)


@pytest.mark.skipif(not (WEIGHTS_DIR / WEIGHTS_NAME).exists(), reason="landmark weights not shipped yet")
def test_shipped_net_measures_an_unseen_identity():
    model = LandmarkNet.from_pretrained()
    renderer = FaceRenderer(sample_identity(np.random.default_rng(20240601)), size=128)
    # Mouth and eyes from closed to wide open, the head turned as much as SynthGRID's speakers turn it.
    states = [FaceState(jaw=j, round=r, eye_closure=e, yaw=y, roll=ro)
              for j, r, e, y, ro in [(0, 0, 0, 0, 0), (0.9, 0, 0, 2, -1), (0.5, 0.8, 0.2, -3, 1.5), (0.2, 0, 1, 0, 1),
                                     (0.7, 0.3, 0.5, 3, 0), (0.1, 0, 0, -2, -1.5), (1.0, 0, 0, 0, 1), (0.35, 0.5, 0.8, 1, -1)]]
    rendered = [renderer.render(s) for s in states]
    truth = np.stack([f.lmk for f in rendered])
    alignment = estimate_alignment(truth, size=128)  # one crop for the clip, as `prepare` does
    crops = np.stack([warp(f.image, alignment) for f in rendered])
    truth = alignment.to_crop(truth)
    pred = model.predict(crops)
    assert np.linalg.norm(pred - truth, axis=-1).mean() <= 2.5
    # Finer than the mean shape could ever be: the mouth opening is tracked frame by frame.
    assert np.corrcoef(mouth_opening(pred), mouth_opening(truth))[0, 1] > 0.95
