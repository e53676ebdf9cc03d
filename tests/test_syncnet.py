"""SyncNet (talkinghead.nn.syncnet) and the sync metrics (talkinghead.metrics.sync)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from talkinghead.data.prepare import FORMAT
from talkinghead.hub import WEIGHTS_DIR, WeightsError, save_weights
from talkinghead.io import InputError
from talkinghead.metrics.sync import lower_half, shift_audio, sync_scores, sync_scores_many
from talkinghead.nn.syncnet import WEIGHTS_NAME, SyncNet, SyncNetConfig, TrainConfig, evaluate, train

HOP = 640


def _tiny_net(seed: int = 0) -> SyncNet:
    torch.manual_seed(seed)
    return SyncNet(SyncNetConfig.preset("tiny")).eval()


def _coded_clip(code: np.ndarray, *, size: int = 32, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A clip whose picture and sound carry the same per-frame binary code: frame ``i`` has a bright lower half and
    loud noise around its centre (samples ``640 i ± 320``) when ``code[i]`` is 1, a dark lower half and silence when 0."""
    rng = np.random.default_rng(seed)
    T = len(code)
    frames = np.full((T, size, size, 3), 40, np.uint8)
    frames[code == 1, size // 2 :] = 220
    audio = np.zeros(T * HOP, np.float32)
    for i in np.flatnonzero(code):
        lo, hi = max(0, i * HOP - HOP // 2), min(len(audio), i * HOP + HOP // 2)
        audio[lo:hi] = rng.uniform(-0.3, 0.3, hi - lo)
    return frames, audio


class CodeReader(nn.Module):
    """A stand-in SyncNet that reads the code of ``_coded_clip`` exactly: a one-hot of the centre frame's brightness
    and of the loudness of the audio window's centre step, so the synced shift has distance 0 and any other shift
    has a positive mean distance."""

    def embed_video(self, video: torch.Tensor) -> torch.Tensor:  # (B, 5, 3, H, W) -> (B, 2)
        bright = video[:, 2].mean((1, 2, 3)) > 0
        return nn.functional.one_hot(bright.long(), 2).float()

    def embed_audio(self, mfcc: torch.Tensor) -> torch.Tensor:  # (B, 13, 20) -> (B, 2)
        loud = mfcc[:, 0, 10] > -400  # c0 of digital silence is about -894, of the noise above 0
        return nn.functional.one_hot(loud.long(), 2).float()


def test_towers_give_unit_embeddings_of_the_documented_shapes():
    net = _tiny_net()
    cfg = net.cfg
    video = torch.rand(3, 5, 3, 32, 64) * 2 - 1  # lower halves of 64 px crops: resized to cfg.video_size inside
    mfcc = torch.randn(3, 13, 20) * 100
    v_emb, a_emb = net(video, mfcc)
    assert v_emb.shape == a_emb.shape == (3, cfg.embed_dim)
    assert torch.allclose(v_emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert torch.allclose(a_emb.norm(dim=1), torch.ones(3), atol=1e-5)
    assert net.video_input(video).shape == (3, 5, *cfg.video_size)
    # Any crop size works: a 32 px crop's lower half is already the tiny preset's input size.
    assert net.embed_video(torch.zeros(2, 5, 3, 16, 32)).shape == (2, cfg.embed_dim)
    with pytest.raises(ValueError, match="MFCC windows"):
        net.embed_audio(torch.zeros(2, 20, 13))
    with pytest.raises(ValueError, match="video windows"):
        net.embed_video(torch.zeros(2, 4, 3, 16, 32))


def test_sync_scores_on_a_random_net_has_the_documented_form():
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, (30, 64, 64, 3), dtype=np.uint8)
    audio = rng.uniform(-0.5, 0.5, 30 * HOP).astype(np.float32)
    result = sync_scores(_tiny_net(), frames, audio, max_offset=6, batch_size=7)
    assert result.distances.shape == (13,)
    assert -6 <= result.offset <= 6
    assert result.lse_d == pytest.approx(result.distances.min())
    assert result.distances[result.offset + 6] == pytest.approx(result.lse_d)
    assert result.lse_c == pytest.approx(np.median(result.distances) - result.distances.min())
    assert result.lse_c >= 0
    # Batching is an implementation detail: the same numbers for any batch size.
    again = sync_scores(_tiny_net(), frames, audio, max_offset=6, batch_size=64)
    np.testing.assert_allclose(again.distances, result.distances, rtol=1e-5)
    with pytest.raises(InputError, match="too short"):
        sync_scores(_tiny_net(), frames[:4], audio, max_offset=6)


def test_offset_sign_delayed_audio_is_positive():
    code = np.random.default_rng(1).integers(0, 2, 60)
    frames, audio = _coded_clip(code)
    net = CodeReader()
    synced = sync_scores(net, frames, audio, max_offset=8)
    assert synced.offset == 0 and synced.lse_d == pytest.approx(0.0) and synced.lse_c > 0.3
    # Audio delayed by 3 frames (zeros in front): the sound of frame t is heard at t + 3 -> offset +3.
    assert sync_scores(net, frames, shift_audio(audio, 3), max_offset=8).offset == 3
    assert sync_scores(net, frames, shift_audio(audio, -4), max_offset=8).offset == -4
    # A still picture carries no timing: no shift is better than another by much.
    still = sync_scores(net, np.repeat(frames[:1], len(frames), 0), audio, max_offset=8)
    assert still.lse_c < synced.lse_c / 3
    assert [r.offset for r in sync_scores_many(net, [(frames, audio), (frames, shift_audio(audio, 5))], max_offset=8)] == [0, 5]


def test_shift_audio_moves_samples_and_pads_with_zeros():
    audio = np.arange(1, 3 * HOP + 1, dtype=np.float32)
    delayed = shift_audio(audio, 1)
    assert delayed.shape == audio.shape and not delayed[:HOP].any() and delayed[HOP] == audio[0]
    advanced = shift_audio(audio, -2)
    assert advanced[0] == audio[2 * HOP] and not advanced[HOP:].any()


def test_lower_half_takes_the_bottom_rows_in_minus_one_to_one():
    frames = np.zeros((2, 8, 8, 3), np.uint8)
    frames[:, 4:] = 255
    half = lower_half(frames)
    assert half.shape == (2, 3, 4, 8) and torch.all(half == 1)


def _write_coded_corpus(root, *, clips_per_split: dict[str, int], n_frames: int = 40, size: int = 32) -> None:
    """A prepared corpus (the format of ``data.prepare``) of ``_coded_clip`` clips: sync is learnable in a few steps."""
    frames, audio, clips = [], [], []
    for split, count in clips_per_split.items():
        for k in range(count):
            code = np.random.default_rng([k, len(clips)]).integers(0, 2, n_frames)
            f, a = _coded_clip(code, size=size, seed=len(clips))
            f0 = sum(len(x) for x in frames)
            clips.append({"speaker": f"{split}{k % 2}", "utt": f"u{k}", "split": split, "frame_start": f0, "n_frames": n_frames,
                          "audio_start": f0 * HOP, "n_samples": n_frames * HOP, "text": ""})
            frames.append(f)
            audio.append(a)
    np.save(root / "frames.npy", np.concatenate(frames))
    np.save(root / "landmarks.npy", np.zeros((sum(len(f) for f in frames), 68, 2), np.float32))
    np.save(root / "audio.npy", np.round(np.concatenate(audio) * 32767).astype(np.int16))
    speakers = sorted({c["speaker"] for c in clips})
    meta = {"format": FORMAT, "version": 1, "size": size, "margin": 0.0, "fps": 25, "sr": 16000, "source": str(root),
            "landmarks": "ground truth", "speakers": {s: {"split": s[:-1], "index": i} for i, s in enumerate(speakers)}, "clips": clips}
    (root / "meta.json").write_text(json.dumps(meta))


def test_tiny_training_loss_falls_and_evaluate_reports_the_requirements(tmp_path):
    _write_coded_corpus(tmp_path, clips_per_split={"train": 6, "val": 2})
    net, history = train(tmp_path, cfg=SyncNetConfig.preset("tiny"), steps=60, batch_size=4, lr=3e-3, seed=0,
                         train_cfg=TrainConfig(span=8, max_shift=6), log_every=20)
    assert [row["step"] for row in history] == [20, 40, 60]
    assert history[-1]["loss"] < 0.7 * history[0]["loss"]
    assert history[-1]["accuracy"] > history[0]["accuracy"]
    metrics = evaluate(net, tmp_path, "val", shift=3, max_offset=6)
    assert metrics["clips"] == 2
    assert set(metrics) >= {"real_offset_ok", "shifted_offset_ok", "real_lse_c", "static_lse_c", "real_lse_d", "static_lse_d"}
    # 60 steps are enough to learn this corpus's sync: held-out clips are found in sync, and their shifted copies shifted.
    assert metrics["real_offset_ok"] == 1 and metrics["shifted_offset_ok"] == 1
    assert metrics["real_lse_c"] > 5 * metrics["static_lse_c"]


def test_from_pretrained_round_trip_and_strict_shapes(tmp_path):
    net = _tiny_net(seed=3)
    save_weights(net.state_dict(), "sync_tiny.safetensors", root=tmp_path, half=False, config="tiny")
    loaded = SyncNet.from_pretrained("sync_tiny.safetensors", root=tmp_path)
    assert not loaded.training and loaded.cfg == SyncNetConfig.preset("tiny")
    video, mfcc = torch.rand(2, 5, 3, 16, 32) * 2 - 1, torch.randn(2, 13, 20) * 100
    for a, b in zip(net(video, mfcc), loaded(video, mfcc)):
        torch.testing.assert_close(a, b)
    # The manifest says synth128 but the tensors are tiny: refused, naming the mismatch.
    save_weights(net.state_dict(), "sync_wrong.safetensors", root=tmp_path, config="synth128")
    with pytest.raises(WeightsError, match="does not fit"):
        SyncNet.from_pretrained("sync_wrong.safetensors", root=tmp_path)


def _render_heldout_clip(text: str, *, speaker_index: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A SynthGRID clip of a held-out (test) speaker, rendered now and aligned like ``prepare`` does."""
    from talkinghead.data.synthgrid import FaceRenderer, make_speakers, plan_clip
    from talkinghead.face.align import estimate_alignment, warp

    speaker = make_speakers(24, seed=0)[speaker_index]
    assert speaker.split == "test"
    clip = plan_clip(text, speaker, seed=seed)
    renderer = FaceRenderer(speaker.identity, size=128)
    rendered = [renderer.render(state) for state in clip.states]
    alignment = estimate_alignment(np.stack([r.lmk for r in rendered]), size=128)
    return np.stack([warp(r.image, alignment) for r in rendered]), clip.audio


@pytest.mark.skipif(not (WEIGHTS_DIR / WEIGHTS_NAME).exists(), reason=f"{WEIGHTS_NAME} not trained yet")
@pytest.mark.parametrize("text,speaker_index,seed", [("lay green by q seven again", 21, 11), ("set white with j two soon", 23, 12)])
def test_shipped_syncnet_finds_the_offset_on_heldout_speakers(text, speaker_index, seed):
    net = SyncNet.from_pretrained()
    frames, audio = _render_heldout_clip(text, speaker_index=speaker_index, seed=seed)
    real = sync_scores(net, frames, audio)
    assert abs(real.offset) <= 1
    assert abs(sync_scores(net, frames, shift_audio(audio, 5)).offset - 5) <= 1
    still = sync_scores(net, np.repeat(frames[:1], len(frames), 0), audio)
    assert real.lse_c > 2 * still.lse_c


def test_train_syncnet_parser_parses_the_documented_command():
    import argparse

    from talkinghead.nn.syncnet import add_train_syncnet_parser, main_train_syncnet

    parser = argparse.ArgumentParser()
    add_train_syncnet_parser(parser.add_subparsers(dest="what"))
    args = parser.parse_args(["syncnet", "--data", "data/prepared128", "--steps", "12", "--threads", "2"])
    assert (args.data, args.steps, args.threads, args.config, args.func) == ("data/prepared128", 12, 2, "synth128", main_train_syncnet)
