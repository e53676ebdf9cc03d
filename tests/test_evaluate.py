"""The evaluation harness on a tiny SynthGRID split with tiny random measuring networks."""
import argparse
import json

import numpy as np
import pytest
import torch

from talkinghead import hub
from talkinghead.data.prepare import PreparedCorpus, prepare_corpus
from talkinghead.data.synthgrid import generate_corpus
from talkinghead.io import InputError, write_video
from talkinghead.metrics.evaluate import (
    BASELINES, METRICS, add_eval_parser, evaluate, from_folder, from_system, markdown_table, write_report,
)
from talkinghead.metrics.image import PSNR_CAP
from talkinghead.metrics.landmarks import blink_metrics
from talkinghead.nn.landmark_net import LandmarkNet, LandmarkNetConfig
from talkinghead.nn.syncnet import SyncNet, SyncNetConfig

SPLIT = "train"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory) -> PreparedCorpus:
    # One speaker (a "train" speaker: with fewer than 3 there are no held-out ones) and two clips keep it fast.
    root = tmp_path_factory.mktemp("eval")
    generate_corpus(root / "corpus", speakers=1, per_speaker=2, size=64, seed=0, workers=1, progress=False)
    prepare_corpus(root / "corpus", root / "prepared", size=64, workers=1, progress=False)
    return PreparedCorpus.open(root / "prepared")


@pytest.fixture(scope="module")
def nets():
    torch.manual_seed(0)
    return LandmarkNet(LandmarkNetConfig.preset("tiny")).eval(), SyncNet(SyncNetConfig.preset("tiny")).eval()


@pytest.fixture(scope="module")
def report(prepared, nets):
    return evaluate(prepared, split=SPLIT, landmark_net=nets[0], sync_net=nets[1], progress=False)


def test_baselines_have_every_metric_over_every_clip(report, prepared):
    n_clips = len(prepared.clips(SPLIT))
    assert report["n_clips"] == n_clips == 2
    assert list(report["systems"]) == list(BASELINES)
    for name in BASELINES:
        summary = report["systems"][name]
        assert set(summary) == set(METRICS)
        for key, value in summary.items():
            if key == "cpbd_lower":  # undefined at 64 px: the lower half is smaller than CPBD's 64 px block
                assert value["n"] == 0, value
            elif key != "blink_duration":  # undefined for a clip without blinks
                assert value["n"] == n_clips and np.isfinite(value["mean"]), (name, key, value)
    for clip in report["clips"]:
        assert set(clip["scores"]) == set(BASELINES) and clip["n_frames"] > 5
    # Blinks of the real frames by their exact landmarks, the reference for the blink columns.
    rates = [blink_metrics(prepared.clip_landmarks(c))["blink_rate"] for c in prepared.clips(SPLIT)]
    assert report["exact"]["blink_rate"]["mean"] == pytest.approx(np.mean(rates))
    assert report["reference_landmarks"] == prepared.meta["landmarks"]


def test_cpbd_lower_scores_only_the_lower_half():
    """A sharp lower half under a blurred upper half is sharp; the reverse is not; too small is undefined."""
    from talkinghead.metrics.evaluate import _cpbd_lower

    stripes = np.zeros((128, 128, 3), np.uint8)
    for left in range(8, 128, 16):       # step edges, all sharp (tests/test_metrics_image.py)
        stripes[:, left : left + 8] = 255
    flat = np.full_like(stripes, 128)
    sharp_below = np.concatenate([flat[:64], stripes[64:]])[None]
    sharp_above = np.concatenate([stripes[:64], flat[64:]])[None]
    assert _cpbd_lower(sharp_below) == pytest.approx(1.0) and _cpbd_lower(sharp_above) == 0.0
    assert np.isnan(_cpbd_lower(sharp_below[:, ::2, ::2]))


def test_ground_truth_is_the_reference_and_static_is_worse(report):
    truth, still = report["systems"]["ground truth"], report["systems"]["static"]
    assert truth["psnr"]["mean"] == truth["psnr_upper"]["mean"] == PSNR_CAP
    assert truth["ssim"]["mean"] == pytest.approx(1.0) and truth["ssim_upper"]["mean"] == pytest.approx(1.0)
    assert truth["lmd"]["mean"] == 0.0 and truth["lmd_face"]["mean"] == 0.0  # same detector on the same frames
    assert truth["mouth_corr"]["mean"] == pytest.approx(1.0)
    assert 10.0 < still["psnr"]["mean"] < truth["psnr"]["mean"]
    assert still["ssim"]["mean"] < 1.0 and still["psnr_upper"]["mean"] < PSNR_CAP
    assert still["lmd"]["mean"] > 0.0
    assert still["mouth_corr"]["mean"] == 0.0  # one repeated frame: a constant mouth
    # The exact landmarks are the same for both rows, so the net's own error on the real frames is finite and positive.
    assert truth["lmd_exact"]["mean"] > 0.0


def test_report_files_are_written(report, tmp_path):
    json_path, md_path = write_report(report, tmp_path / "docs" / "eval_test")
    assert json_path.name == "eval_test.json" and md_path.name == "eval_test.md"
    loaded = json.loads(json_path.read_text())  # strict JSON: NaN became null
    assert loaded["systems"]["ground truth"]["psnr"]["mean"] == PSNR_CAP
    table = md_path.read_text()
    assert table == markdown_table(report)
    for name in BASELINES:
        assert sum(line.startswith(f"| {name} | 2 |") for line in table.splitlines()) == 2  # a row in each table
    for metric in METRICS.values():
        assert metric.label in table
    assert "The exact landmarks of the real frames give" in table
    assert not list(tmp_path.glob("docs/.*tmp"))  # atomic writes leave no temporaries


def test_generator_and_folder_systems(prepared, nets, tmp_path):
    clips = prepared.clips(SPLIT)[:1]
    folder = tmp_path / "videos"
    for clip in clips:
        (folder / clip["speaker"]).mkdir(parents=True, exist_ok=True)
        write_video(folder / clip["speaker"] / f"{clip['utt']}.mp4", prepared.clip_frames(clip))
    calls = []

    def flipped(identity, audio, n_frames):  # a "model": the identity frame mirrored
        calls.append((identity.shape, audio.dtype, n_frames))
        return np.repeat(identity[None, :, ::-1], n_frames, 0)

    report = evaluate(prepared, split=SPLIT, systems={"flipped": from_system(flipped), "videos": from_folder(folder)},
                      landmark_net=nets[0], sync_net=nets[1], max_clips=1, progress=False)
    assert list(report["systems"]) == [*BASELINES, "flipped", "videos"]
    assert calls == [((64, 64, 3), np.float32, c["n_frames"]) for c in clips]
    psnr = {name: s["psnr"]["mean"] for name, s in report["systems"].items()}
    assert psnr["flipped"] < psnr["static"] < psnr["videos"] < PSNR_CAP  # encoded video: close to, not equal to, the truth


def test_wrong_systems_fail_clearly(prepared, nets, tmp_path):
    with pytest.raises(InputError, match="missing"):
        evaluate(prepared, split=SPLIT, systems={"empty": from_folder(tmp_path)}, landmark_net=nets[0], sync_net=nets[1],
                 max_clips=1, progress=False)
    clip = prepared.clips(SPLIT)[0]
    (tmp_path / clip["speaker"]).mkdir()
    write_video(tmp_path / clip["speaker"] / f"{clip['utt']}.mp4", np.zeros((10, 96, 96, 3), np.uint8))
    with pytest.raises(InputError, match="96×96: the harness compares 64×64 aligned face crops"):
        evaluate(prepared, split=SPLIT, systems={"big": from_folder(tmp_path)}, landmark_net=nets[0], sync_net=nets[1],
                 max_clips=1, progress=False)
    with pytest.raises(InputError, match="must return uint8"):
        evaluate(prepared, split=SPLIT, systems={"short": from_system(lambda identity, audio, n: np.repeat(identity[None], n - 1, 0))},
                 landmark_net=nets[0], sync_net=nets[1], max_clips=1, progress=False)


def _cli(argv):
    parser = argparse.ArgumentParser()
    add_eval_parser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["eval", *argv])
    return args.func(args)


def test_cli_names_missing_weights(prepared, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    monkeypatch.delenv(hub.HUB_REPO_ENV, raising=False)
    assert _cli(["--data", str(prepared.root), "--split", SPLIT, "--out", str(tmp_path / "out")]) == 2
    assert "landmarks_synthgrid.safetensors" in capsys.readouterr().err
    assert not (tmp_path / "out.json").exists()


def test_cli_with_shipped_weights_writes_the_tables(prepared, nets, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(hub, "WEIGHTS_DIR", tmp_path)
    hub.save_weights(nets[0].state_dict(), "landmarks_synthgrid.safetensors", half=False, config="tiny")
    hub.save_weights(nets[1].state_dict(), "syncnet_synthgrid.safetensors", half=False, config="tiny")
    assert _cli(["--data", str(prepared.root), "--split", SPLIT, "--model", "static", "--max-clips", "1", "--out", str(tmp_path / "eval"), "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "| ground truth | 1 |" in out and "python -m talkinghead eval --data" in out
    loaded = json.loads((tmp_path / "eval.json").read_text())
    assert loaded["n_clips"] == 1 and loaded["command"].endswith(f"--out {tmp_path / 'eval'}")
