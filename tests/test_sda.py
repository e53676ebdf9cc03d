"""SDA (Temporal GAN): shapes, streaming, losses, training through fit(), shipping and loading."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from talkinghead.data.prepare import prepare_corpus
from talkinghead.data.synthgrid.corpus import generate_corpus
from talkinghead.models.sda import (
    PRESETS,
    Config,
    FrameDiscriminator,
    Generator,
    SDATask,
    SequenceDiscriminator,
    SyncDiscriminator,
    build_nets,
    build_optimizers,
    generate,
    load_generator,
    lower_half_l1,
    stream,
    train_step,
)
from talkinghead.training import fit

CFG = Config.preset("tiny")


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """One SynthGRID speaker, two clips, prepared at the tiny preset's 32 px."""
    root = tmp_path_factory.mktemp("sda")
    generate_corpus(root / "corpus", speakers=1, per_speaker=2, size=64, seed=0, workers=1, progress=False)
    prepare_corpus(root / "corpus", root / "prepared", size=32, workers=1, progress=False)
    return root / "prepared"


def _batch(B=2, T=CFG.T, seed=0):
    g = torch.Generator().manual_seed(seed)
    return {
        "identity": torch.rand(B, 3, CFG.height, CFG.width, generator=g) * 2 - 1,
        "video": torch.rand(B, T, 3, CFG.height, CFG.width, generator=g) * 2 - 1,
        "audio": (torch.rand(B, T, CFG.audio_window, generator=g) * 2 - 1) * 0.1,
    }


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_every_preset_builds_with_the_shapes_it_promises(name):
    cfg = Config.preset(name)
    with torch.device("meta"):
        G = Generator(cfg)
        still = torch.empty(1, 3, cfg.height, cfg.width)
        frames, state = G(still, torch.empty(1, 3, cfg.audio_window), noise=torch.empty(1, 3, cfg.noise_dim))
    assert frames.shape == (1, 3, 3, cfg.height, cfg.width)
    assert state.frame == 3
    # Identity encoder: len(enc_channels) stride-2 convs + one to 1×1 = 6 layers at the paper sizes.
    if name != "tiny":
        assert len(G.identity_encoder.blocks) + 1 == 6


def test_generator_output_range_and_shape_checks():
    torch.manual_seed(0)
    G = Generator(CFG).eval()
    b = _batch()
    frames, _ = G(b["identity"], b["audio"], seed=0)
    assert frames.shape == (2, CFG.T, 3, 32, 32)
    assert frames.abs().max() <= 1
    with pytest.raises(ValueError, match="still frame must have shape"):
        G(b["identity"][:, :, :16], b["audio"])
    with pytest.raises(ValueError, match="audio windows must have shape"):
        G(b["identity"], b["audio"][..., :100])


def test_noise_changes_frames_and_the_seed_fixes_them():
    torch.manual_seed(0)
    G = Generator(CFG).eval()
    b = _batch(B=1)
    a, _ = G(b["identity"], b["audio"], seed=1)
    again, _ = G(b["identity"], b["audio"], seed=1)
    other, _ = G(b["identity"], b["audio"], seed=2)
    assert torch.equal(a, again)
    assert not torch.allclose(a, other)


def test_diversity_term_makes_the_generator_use_its_noise():
    """With w_div, G steps raise how much the frames change with the noise (from a generator that ignores it);
    without, no second draw is made and the loss has no "div" term."""
    from talkinghead.models.sda import noise_sensitivity

    def sensitivity(G, batch):
        torch.manual_seed(5)
        noise = G.draw_noise(2, 0, CFG.T, seed=None, device="cpu")
        with torch.no_grad():
            fake, _ = G(batch["identity"], batch["audio"], noise=noise)
            return noise_sensitivity(G, batch["identity"], batch["audio"], fake, noise).item()

    batch = _batch()
    results = {}
    for w_div in (0.0, 50.0):
        cfg = Config.preset("tiny", discriminators=(), w_div=w_div, div_clip=1.0)
        torch.manual_seed(0)
        nets = build_nets(cfg)
        with torch.no_grad():                                   # a generator that ignores its noise
            nets["G"].noise_generator.rnn.weight_ih_l0.mul_(0.01)
        opts = build_optimizers(nets, cfg)
        before = sensitivity(nets["G"].eval(), batch)
        nets["G"].train()
        logs = [train_step(batch, nets, opts, cfg) for _ in range(6)]
        results[w_div] = (before, sensitivity(nets["G"].eval(), batch), logs)
    (before, after, logs), (_, after_0, logs_0) = results[50.0], results[0.0]
    assert all("div" in row for row in logs) and not any("div" in row for row in logs_0)
    assert after > 5 * before and after > 2 * after_0


def test_noise_effect_is_zero_for_a_generator_without_noise(prepared):
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.models.sda import noise_effect

    corpus = PreparedCorpus.open(prepared)
    torch.manual_seed(0)
    G = Generator(CFG).eval()
    noisy = noise_effect(G, corpus, "train", clips=1)
    assert noisy["clips"] == 1 and noisy["upper"] > 0 and noisy["lower"] > 0 and noisy["real_upper_motion"] > 0
    with torch.no_grad():
        G.noise_generator.rnn.weight_ih_l0.zero_()      # the noise no longer reaches the decoder
    silent = noise_effect(G, corpus, "train", clips=1)
    assert silent["upper"] == silent["lower"] == 0.0 and silent["real_upper_motion"] == noisy["real_upper_motion"]


def test_audio_drives_the_frames():
    torch.manual_seed(0)
    G = Generator(CFG).eval()
    b = _batch(B=1)
    audio = b["audio"].requires_grad_(True)
    frames, _ = G(b["identity"], audio, seed=0)
    frames[:, 3].sum().backward()
    grad = audio.grad.abs().sum(-1)[0]  # (T,)
    # Frame 3 depends on the audio of frames 0 … 3 (the GRU looks back) and never on later audio.
    assert torch.all(grad[:4] > 0) and torch.all(grad[4:] == 0)


@pytest.mark.parametrize("chunk", [1, 7, 30])
def test_streamed_generation_equals_all_at_once(chunk):
    torch.manual_seed(0)
    G = Generator(CFG).eval()
    identity = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    audio = np.random.default_rng(1).uniform(-0.1, 0.1, 16000).astype(np.float32)  # 1 s → 25 frames
    whole = generate(G, identity, audio, seed=3, chunk=1000)
    assert whole.shape == (25, 32, 32, 3) and whole.dtype == np.uint8
    parts = list(stream(G, identity, audio, seed=3, chunk=chunk))
    assert [len(p) for p in parts] == [min(chunk, 25 - i) for i in range(0, 25, chunk)]
    np.testing.assert_array_equal(generate(G, identity, audio, seed=3, chunk=chunk), whole)


def test_discriminators_score_batches():
    torch.manual_seed(0)
    b = _batch()
    assert FrameDiscriminator(CFG)(b["video"][:, 0], b["identity"]).shape == (2,)
    assert SequenceDiscriminator(CFG)(b["video"], b["audio"]).shape == (2,)
    sync = SyncDiscriminator(CFG)
    logits = sync(b["video"][:, : CFG.sync_frames], b["audio"][:, 0])
    assert logits.shape == (2,)
    # Identical embeddings are the most "in sync" a pair can be: the logit is the bias.
    assert torch.all(logits <= sync.bias + 1e-6)


def test_lower_half_l1_ignores_the_upper_half():
    real = torch.zeros(1, 2, 3, 8, 8)
    fake = real.clone()
    fake[..., :4, :] = 1.0  # upper half differs only
    assert lower_half_l1(fake, real) == 0
    fake[..., 4:, :] = 0.5
    assert lower_half_l1(fake, real) == pytest.approx(0.5)


@pytest.mark.parametrize("discriminators, nets", [((), {"G"}), (("frame",), {"G", "D_frame"}),
                                                   (("frame", "seq", "sync"), {"G", "D_frame", "D_seq", "D_sync"})])
def test_ablations_build_the_nets_they_name(discriminators, nets):
    cfg = Config.preset("tiny", discriminators=discriminators)
    built = build_nets(cfg)
    assert set(built) == nets
    assert [p.name for p in SDATask(cfg).phases] == (["D", "G"] if discriminators else ["G"])


def test_train_step_moves_each_net_only_in_its_phase():
    torch.manual_seed(0)
    nets = build_nets(CFG)
    opts = build_optimizers(nets, CFG)
    before = {k: [p.detach().clone() for p in v.parameters()] for k, v in nets.items()}
    logs = train_step(_batch(), nets, opts, CFG)
    assert set(logs) == {"D_frame", "D_seq", "D_sync", "L1", "G_frame", "G_seq", "G_sync"}
    assert all(np.isfinite(v) for v in logs.values())
    for name, net in nets.items():
        moved = any(not torch.equal(a, p) for a, p in zip(before[name], net.parameters()))
        assert moved, name


def test_l1_falls_when_fitting_one_batch():
    torch.manual_seed(0)
    cfg = Config.preset("tiny", discriminators=(), lr_G=2e-3)
    nets, batch = build_nets(cfg), _batch()
    batch["video"] = batch["identity"][:, None].expand_as(batch["video"]).clone()  # learnable: the still frame
    opts = build_optimizers(nets, cfg)
    first = train_step(batch, nets, opts, cfg)["L1"]
    for _ in range(30):
        last = train_step(batch, nets, opts, cfg)["L1"]
    assert last < 0.6 * first


def test_fit_resumes_exactly(prepared, tmp_path):
    """Two steps, stop, resume for two more == four steps straight (bit-identical on one machine)."""
    task = SDATask(CFG)
    kwargs = dict(batch_size=2, seed=0, log_every=1, progress=False, checkpoint_every=0)
    straight = fit(task, prepared, out=tmp_path / "a", steps=4, **kwargs)
    fit(task, prepared, out=tmp_path / "b", steps=2, **kwargs)
    resumed = fit(task, prepared, out=tmp_path / "b", steps=4, **kwargs)
    assert resumed.step == 4 and [r["step"] for r in resumed.history] == [3, 4]
    for name in ("G", "D_frame", "D_seq", "D_sync", "G_ema"):
        for (k, a), b in zip(straight.nets[name].state_dict().items(), resumed.nets[name].state_dict().values()):
            assert torch.equal(a, b), (name, k)
    rows = [json.loads(line) for line in (tmp_path / "b" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert straight.history[2]["L1"] == pytest.approx(rows[2]["L1"], abs=0)


def test_fit_log_follows_the_checkpoint_it_starts_from(prepared, tmp_path):
    """A fresh start (resume=False) empties an old log; a resume drops rows logged after its checkpoint (a run
    killed between checkpoints), so the log never holds a step twice."""
    kwargs = dict(batch_size=2, seed=0, log_every=1, progress=False, checkpoint_every=0)
    fit(SDATask(CFG), prepared, out=tmp_path, steps=2, **kwargs)
    log = tmp_path / "log.jsonl"
    with open(log, "a") as f:                              # as if step 3 was logged, then the process died
        f.write(json.dumps({"step": 3, "L1": 0.0}) + "\n")
    fit(SDATask(CFG), prepared, out=tmp_path, steps=3, **kwargs)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1, 2, 3]
    assert json.loads(log.read_text().splitlines()[2])["L1"] > 0
    fit(SDATask(CFG), prepared, out=tmp_path, steps=1, resume=False, **kwargs)
    assert [json.loads(line)["step"] for line in log.read_text().splitlines()] == [1]


def test_fit_accumulation_sees_the_windows_of_a_bigger_batch(prepared, tmp_path):
    """accum=2 × batch 2 draws the same four windows as one batch of 4 and logs the mean of its micro-batches
    (the first step's L1 is measured before any update; only batch-norm statistics differ between the two)."""
    cfg = Config.preset("tiny", discriminators=())
    a = fit(SDATask(cfg), prepared, out=tmp_path / "a", steps=1, batch_size=2, accum=2, progress=False, log_every=1)
    b = fit(SDATask(cfg), prepared, out=tmp_path / "b", steps=1, batch_size=4, progress=False, log_every=1)
    # Same four windows in both runs (the stream deals the same permutation), so the averaged L1 agrees.
    assert a.history[0]["L1"] == pytest.approx(b.history[0]["L1"], rel=0.05)


def test_fit_refuses_a_checkpoint_of_another_config(prepared, tmp_path):
    fit(SDATask(CFG), prepared, out=tmp_path, steps=1, batch_size=2, progress=False)
    with pytest.raises(ValueError, match=r"another config \(lr_G: 0.0001 there, 0.001 now\)"):
        fit(SDATask(Config.preset("tiny", lr_G=1e-3)), prepared, out=tmp_path, steps=2, batch_size=2, progress=False)


def test_fit_warm_starts_from_another_run(prepared, tmp_path):
    """init_from: a new run with longer windows starts from a run's networks and EMA (not its optimisers or
    step), records where it came from in every checkpoint, and is ignored once the new run has its own."""
    kwargs = dict(batch_size=2, seed=0, log_every=1, progress=False, checkpoint_every=0)
    first = fit(SDATask(CFG), prepared, out=tmp_path / "a", steps=2, **kwargs)
    longer = Config.preset("tiny", T=12)
    task = SDATask(longer)
    fresh = fit(task, prepared, out=tmp_path / "fresh", steps=0, **kwargs)
    warm = fit(task, prepared, out=tmp_path / "b", steps=0, init_from=tmp_path / "a", **kwargs)
    for name in ("G", "D_frame", "D_seq", "D_sync", "G_ema"):
        for (k, a), b in zip(first.nets[name].state_dict().items(), warm.nets[name].state_dict().values()):
            assert torch.equal(a, b), (name, k)
    assert not all(torch.equal(a, b) for a, b in zip(fresh.nets["G"].state_dict().values(), warm.nets["G"].state_dict().values()))
    assert warm.init_from["step"] == warm.init_from["steps_before"] == 2 and warm.init_from["task"] == "SDATask"
    assert warm.init_from["config"]["T"] == CFG.T
    # Training on from the warm start: the step count is the new run's, the origin is in its checkpoints.
    warm = fit(task, prepared, out=tmp_path / "b", steps=1, init_from=tmp_path / "a", **kwargs)
    state = json.loads((warm.checkpoint / "state.json").read_text())
    assert state["step"] == 1 and state["init_from"]["step"] == 2 and state["config"]["T"] == 12
    # A resume continues its own checkpoint (init_from no longer applies) and keeps the record.
    resumed = fit(task, prepared, out=tmp_path / "b", steps=2, init_from=tmp_path / "nowhere", **kwargs)
    assert resumed.step == 2 and resumed.init_from["step"] == 2


def test_fit_warm_start_refuses_what_does_not_fit(prepared, tmp_path):
    kwargs = dict(batch_size=2, seed=0, progress=False, checkpoint_every=0)
    fit(SDATask(CFG), prepared, out=tmp_path / "a", steps=1, **kwargs)
    with pytest.raises(ValueError, match="does not fit network"):
        fit(SDATask(Config.preset("tiny", noise_dim=6)), prepared, out=tmp_path / "b", steps=1, init_from=tmp_path / "a", **kwargs)
    with pytest.raises(FileNotFoundError, match="neither a checkpoint folder"):
        fit(SDATask(CFG), prepared, out=tmp_path / "c", steps=1, init_from=tmp_path / "nowhere", **kwargs)


def test_cli_trains_resumes_and_ships(prepared, tmp_path, capsys):
    from talkinghead.cli import main
    from talkinghead.hub import read_manifest

    out, weights = tmp_path / "run", tmp_path / "weights"
    args = ["train", "sda", "--config", "tiny", "--data", str(prepared), "--out", str(out), "--batch-size", "2", "--quiet",
            "--set", "discriminators=frame", "--log-every", "1"]
    assert main(args + ["--steps", "1"]) == 0
    assert main(args + ["--steps", "2"]) == 0
    assert "resumed from" in capsys.readouterr().out
    assert (out / "checkpoints" / "latest").read_text() == "step_00000002"
    assert main(["train", "sda", "--config", "tiny", "--data", str(prepared), "--set", "nope=1", "--out", str(out), "--steps", "1"]) == 2
    assert "FIELD one of" in capsys.readouterr().err
    # export: the EMA generator of the latest checkpoint as weights a pipeline loads
    assert main(["export", str(out), str(weights / "sda_run.safetensors")]) == 0
    G = load_generator("sda_run.safetensors", root=weights)
    assert G.cfg == Config.preset("tiny", discriminators=("frame",))
    assert read_manifest(weights)["sda_run.safetensors"]["steps"] == 2
    assert main(["export", str(tmp_path / "nothing"), str(weights / "x.safetensors")]) == 2
    # a second stage with longer windows, warm-started from the first; its manifest entry says so
    stage2 = tmp_path / "stage2"
    assert main(args[:6] + ["--out", str(stage2)] + args[8:] + ["--set", "T=12", "--init-from", str(out), "--steps", "1"]) == 0
    assert "initialised from" in capsys.readouterr().out
    assert main(["export", str(stage2), str(weights / "sda_stage2.safetensors")]) == 0
    record = read_manifest(weights)["sda_stage2.safetensors"]["training"]["init_from"]
    assert record["step"] == 2 and record["checkpoint"].endswith("step_00000002")
    assert read_manifest(weights)["sda_stage2.safetensors"]["steps"] == 3   # 2 steps of stage 1 + 1 of stage 2
    # export --metrics: the eval report of exactly these weights becomes the manifest's measured table (a report
    # in the harness's format; the tiny preset's 32 px frames are below what the harness's CPBD can score)
    row = lambda value: {"psnr": {"mean": value, "std": 0.0, "n": 3}, "blink_duration": {"mean": None, "std": None, "n": 0}}
    model = f"sda={weights / 'sda_stage2.safetensors'}"
    report = {"split": "test", "n_clips": 3, "systems": {"ground truth": row(100.0), "static": row(20.0), model: row(18.123456)}}
    json_path = tmp_path / "eval_stage2.json"
    json_path.write_text(json.dumps(report))
    assert main(["export", str(stage2), str(weights / "sda_final.safetensors"), "--metrics", str(json_path)]) == 0
    entry = read_manifest(weights)["sda_final.safetensors"]
    assert entry["metrics"] == {"test": {"ground truth": {"psnr": 100.0, "blink_duration": None}, "static": {"psnr": 20.0, "blink_duration": None},
                                         "sda": {"psnr": 18.1235, "blink_duration": None}}}
    assert "measured on its test split (3 clips)" in entry["data"]
    # a report of other weights (the first run's) is refused, and nothing is written
    assert main(["export", str(out), str(weights / "sda_wrong.safetensors"), "--metrics", str(json_path)]) == 2
    assert "other weights" in capsys.readouterr().err
    assert not (weights / "sda_wrong.safetensors").exists() and "sda_wrong.safetensors" not in read_manifest(weights)


def test_load_generator_round_trip(tmp_path):
    from talkinghead.hub import WeightsError, save_weights

    torch.manual_seed(0)
    cfg = Config.preset("tiny", identity_dim=12)
    G = Generator(cfg).eval()
    save_weights(G.state_dict(), "sda_test.safetensors", root=tmp_path, half=False, config=cfg.name, config_dict=cfg.to_dict())
    loaded = load_generator("sda_test.safetensors", root=tmp_path)
    assert loaded.cfg == cfg
    b = _batch(B=1)
    assert torch.equal(G(b["identity"], b["audio"], seed=0)[0], loaded(b["identity"], b["audio"], seed=0)[0])
    save_weights(G.state_dict(), "bare.safetensors", root=tmp_path, config=cfg.name)
    with pytest.raises(WeightsError, match="config_dict"):
        load_generator("bare.safetensors", root=tmp_path)


_DISTRIBUTED_SCRIPT = """
import hashlib, os, sys
import torch
torch.set_num_threads(1)
from talkinghead.models.sda import Config, SDATask
from talkinghead.training import fit
result = fit(SDATask(Config.preset("tiny")), sys.argv[1], out=sys.argv[2], steps=2, batch_size=2, progress=False, cpu=True)
state = b"".join(v.numpy().tobytes() for net in ("G", "D_seq", "G_ema") for v in result.nets[net].state_dict().values())
print("rank", os.environ["RANK"], hashlib.sha256(state).hexdigest(), flush=True)
"""


def test_fit_on_two_processes_keeps_them_identical(prepared, tmp_path):
    """torchrun with 2 CPU processes (gloo): each draws its own batches, gradients are averaged and buffers
    taken from rank 0, so every process ends with the same nets; rank 0 alone writes the checkpoint."""
    import os
    import socket
    import subprocess
    import sys

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    script = tmp_path / "train.py"
    script.write_text(_DISTRIBUTED_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", str(port),
                          str(script), str(prepared), str(tmp_path / "run")], capture_output=True, text=True, env=env, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    hashes = dict(line.split()[1:] for line in run.stdout.splitlines() if line.startswith("rank"))
    assert set(hashes) == {"0", "1"} and hashes["0"] == hashes["1"]
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_00000002" / "state.json").read_text())
    assert state["world"] == 2


class _HalfMean(torch.nn.Module):
    """A stand-in sequence discriminator that scores the mean of one half of the frames (upper or lower)."""

    def __init__(self, upper: bool):
        super().__init__()
        self.upper = upper
        self.scale = torch.nn.Parameter(torch.ones(()))

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        h = frames.shape[-2] // 2
        part = frames[..., :h, :] if self.upper else frames[..., h:, :]
        return self.scale * part.flatten(1).mean(1)


def test_blink_response_separates_what_d_sees(prepared):
    """Taking the blinks out changes only the upper half: a D blind to it values blinks at exactly 0 (and, at
    32 px, where the eye band reaches just past the middle, pushes little onto it); a D of the upper half sees the
    change, and its push lands on the rows it reads."""
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.models.sda import blink_response

    corpus = PreparedCorpus.open(prepared)
    clip = corpus.clips()[0]
    corpus.truth = {k: np.array(v) for k, v in corpus.truth.items()}
    corpus.truth["blink"][:] = False
    corpus.truth["blink"][clip["frame_start"] + 3 : clip["frame_start"] + 6] = True     # one blink, frames 3–5
    torch.manual_seed(0)
    G = Generator(CFG).eval()
    lower = blink_response(G, _HalfMean(upper=False), corpus, "train")
    assert lower["windows"] == 1 and lower["blink_worth"] == 0.0 and lower["real"] == lower["deblinked"] != lower["static"]
    upper = blink_response(G, _HalfMean(upper=True), corpus, "train")
    assert upper["blink_worth"] != 0.0 and upper["eye_grad_share"] > upper["eye_area_share"] > lower["eye_grad_share"]
    assert upper["gap"] == pytest.approx(upper["real"] - upper["generated"])
    corpus.truth["blink"][:] = False
    with pytest.raises(ValueError, match="no clip of the 'train' split has a blink"):
        blink_response(G, _HalfMean(upper=True), corpus, "train")


def test_load_run_rebuilds_every_network(prepared, tmp_path):
    from talkinghead.models.sda import load_run

    result = fit(SDATask(CFG), prepared, out=tmp_path, steps=1, batch_size=2, progress=False)
    nets = load_run(tmp_path)
    assert set(nets) == {"G", "D_frame", "D_seq", "D_sync", "G_ema"} and not nets["G"].training
    for name in ("G", "D_seq", "G_ema"):
        for (k, a), b in zip(result.nets[name].state_dict().items(), nets[name].state_dict().values()):
            assert torch.equal(a.cpu(), b), (name, k)


def test_ijcv_sequence_discriminator_sees_motion_not_audio():
    """``seq_disc="ijcv"``: spatio-temporal convolutions, a 1-layer GRU, one linear layer; no audio input. Its
    logit ignores the audio, changes when two frames swap places, and the first conv alone can take a frame
    difference (temporal kernel 3)."""
    from dataclasses import replace

    from talkinghead.models.sda import SpatioTemporalSequenceDiscriminator, build_nets

    cfg = replace(CFG, seq_disc="ijcv")
    torch.manual_seed(0)
    D = build_nets(cfg)["D_seq"]
    assert isinstance(D, SpatioTemporalSequenceDiscriminator) and D.rnn.num_layers == 1
    assert isinstance(D.classifier, torch.nn.Linear) and D.convs[0].kernel_size == (3, 4, 4)
    b = _batch()
    logits = D(b["video"], b["audio"])
    assert logits.shape == (2,)
    torch.testing.assert_close(D(b["video"], torch.randn_like(b["audio"])), logits)
    swapped = b["video"].clone()
    swapped[:, [2, 5]] = swapped[:, [5, 2]]
    assert not torch.allclose(D(swapped, b["audio"]), logits)
    with pytest.raises(ValueError, match="seq_disc must be one of bmvc, ijcv"):
        build_nets(replace(CFG, seq_disc="3d"))


def test_probe_sequence_discriminator_learns_to_tell(prepared):
    """A fresh sequence D against an untrained generator learns in a few steps (its loss falls well under log 4
    = 1.39) and scores the real windows above the generated ones; low-passing its input changes what it sees; the
    same seed gives the same probe."""
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.models.sda import probe_sequence_discriminator

    corpus = PreparedCorpus.open(prepared)
    corpus.truth = {k: np.array(v) for k, v in corpus.truth.items()}
    clip = corpus.clips()[0]
    corpus.truth["blink"][clip["frame_start"] + 3 : clip["frame_start"] + 6] = True
    torch.manual_seed(0)
    G = Generator(CFG).eval()
    kwargs = dict(steps=30, batch_size=2, lr=5e-3, windows=2)
    a = probe_sequence_discriminator(G, corpus, "train", **kwargs)
    assert a["steps"] == 30 and a["lowpass"] == 1 and a["d_loss"] < 0.9 and a["gap"] > 0
    short = {**kwargs, "steps": 3}
    b, c = (probe_sequence_discriminator(G, corpus, "train", lowpass=k, **short) for k in (1, 4))
    assert c["lowpass"] == 4 and c["real"] != b["real"] and probe_sequence_discriminator(G, corpus, "train", **short) == b
    d = probe_sequence_discriminator(G, corpus, "train", kind="ijcv", **short)       # the other kind, same G
    assert a["kind"] == "bmvc" and d["kind"] == "ijcv" and d["real"] != b["real"]
