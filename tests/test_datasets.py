"""WindowDataset on a small hand-made prepared folder: exact slices, edge-exact audio features, identity frames,
determinism, whole-batch loading equal to the default collate, workers, and the bench entry."""
import argparse
import json

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from talkinghead.audio.features import frame_features
from talkinghead.data.datasets import WindowDataset, bench_dataset
from talkinghead.data.prepare import FORMAT, HOP, PreparedCorpus
from talkinghead.io import InputError

S = 16
# (speaker, split, n_frames): s0 has three train clips, s1 one, s2 is the test speaker.
CLIPS = [("s0", "train", 20), ("s0", "train", 12), ("s1", "train", 18), ("s0", "train", 9), ("s2", "test", 15)]


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared folder whose pixel (0, 0) says which clip (red) and which frame of it (green) a frame is."""
    root = tmp_path_factory.mktemp("prepared")
    rng = np.random.default_rng(0)
    n = sum(c[2] for c in CLIPS)
    frames = rng.integers(0, 256, (n, S, S, 3), dtype=np.uint8)
    clips, f0 = [], 0
    for k, (speaker, split, t) in enumerate(CLIPS):
        frames[f0 : f0 + t, 0, 0, 0] = k
        frames[f0 : f0 + t, 0, 0, 1] = np.arange(t)
        clips.append({"speaker": speaker, "utt": f"u{k}", "split": split, "frame_start": f0, "n_frames": t,
                      "audio_start": f0 * HOP, "n_samples": t * HOP, "text": ""})
        f0 += t
    audio = (rng.normal(0, 0.2, n * HOP).clip(-1, 1) * 32767).astype(np.int16)
    np.save(root / "frames.npy", frames)
    np.save(root / "landmarks.npy", rng.uniform(0, S, (n, 68, 2)).astype(np.float32))
    np.save(root / "audio.npy", audio)
    speakers = {"s0": {"split": "train", "index": 0}, "s1": {"split": "train", "index": 1},
                "s2": {"split": "test", "index": 2}}
    (root / "meta.json").write_text(json.dumps({
        "format": FORMAT, "version": 1, "size": S, "margin": 0.0, "fps": 25, "sr": 16000, "source": "test",
        "landmarks": "ground truth", "speakers": speakers, "clips": clips}))
    return root


def _source(img: torch.Tensor) -> tuple[int, int]:
    """(clip, frame in clip) of a (3, S, S) frame in [-1, 1]."""
    px = torch.round((img[:, 0, 0] + 1) * 127.5).int()
    return int(px[0]), int(px[1])


@pytest.mark.parametrize("features,shape", [("raw", (3200,)), ("mfcc", (13, 20)), ("mel", (80, 20))])
def test_windows_are_exact_slices_with_edge_exact_audio(prepared, features, shape):
    data = PreparedCorpus.open(prepared)
    ds = WindowDataset(data, "train", T=8, features=features)
    assert len(ds) == sum(t - 8 + 1 for _, split, t in CLIPS if split == "train")
    for index in (0, 6, 12, len(ds) - 1):  # clip starts, a middle window and clip ends: zero padding at edges
        item = ds[index]
        clip = data.meta["clips"][item["clip"]]
        start, first = item["frame"], clip["frame_start"] + item["frame"]
        assert item["video"].shape == (8, 3, S, S) and item["video"].dtype == torch.float32
        expected = torch.from_numpy(data.frames[first : first + 8].transpose(0, 3, 1, 2).astype(np.float32)) / 127.5 - 1
        torch.testing.assert_close(item["video"], expected)
        torch.testing.assert_close(item["landmarks"], torch.from_numpy(data.landmarks[first : first + 8].copy()))
        whole = frame_features(data.clip_audio(clip), features)          # features of the whole clip
        assert item["audio"].shape == (8, *shape)
        np.testing.assert_allclose(item["audio"].numpy(), whole[start : start + 8], atol=1e-4, rtol=1e-4)
        assert item["speaker"] == data.meta["speakers"][clip["speaker"]]["index"]
    assert ds[len(ds) - 1]["frame"] == 9 - 8 and ds[0]["frame"] == 0


def test_identity_frames_and_determinism(prepared):
    ds = WindowDataset(prepared, "train", T=4, identity="random", seed=3)
    sources = set()
    for index in range(len(ds)):
        item = ds[index]
        clip, frame = _source(item["identity"])
        speaker = CLIPS[item["clip"]][0]
        assert CLIPS[clip][0] == speaker and frame < CLIPS[clip][2]
        if speaker == "s0":
            assert clip != item["clip"]  # another clip of the same speaker
        else:
            assert clip == item["clip"]  # s1 has only this clip
        sources.add((clip, frame))
    assert len(sources) > 20  # really random, not one fixed frame
    again = WindowDataset(prepared, "train", T=4, identity="random", seed=3)
    other = WindowDataset(prepared, "train", T=4, identity="random", seed=4)
    same = [torch.equal(ds[i]["identity"], again[i]["identity"]) for i in range(len(ds))]
    differ = [not torch.equal(ds[i]["identity"], other[i]["identity"]) for i in range(len(ds))]
    assert all(same) and sum(differ) > len(ds) // 2
    before = [_source(ds[i]["identity"]) for i in range(10)]
    ds.set_epoch(1)
    assert [_source(ds[i]["identity"]) for i in range(10)] != before
    first = WindowDataset(prepared, "train", T=4, identity="first")
    for index in (0, 30, len(first) - 1):
        item = first[index]
        assert _source(item["identity"]) == (item["clip"], 0)


def test_batches_equal_default_collate_and_workers(prepared):
    ds = WindowDataset(prepared, "train", T=6, features="mfcc", stride=2, seed=1)
    assert len(ds) == sum((t - 6) // 2 + 1 for _, split, t in CLIPS if split == "train")
    plain = next(iter(DataLoader(ds, batch_size=5, shuffle=False)))
    batch = ds[list(range(5))]
    assert batch.keys() == plain.keys()
    for k in batch:
        torch.testing.assert_close(batch[k], plain[k])
    serial = [b["video"] for b in ds.loader(4, seed=0)]
    parallel = [b["video"] for b in ds.loader(4, seed=0, num_workers=2)]
    assert len(serial) == len(parallel) == -(-len(ds) // 4)
    assert all(torch.equal(a, b) for a, b in zip(serial, parallel))
    shuffled = next(iter(ds.loader(4, seed=0)))
    in_order = list(zip(batch["clip"][:4].tolist(), batch["frame"][:4].tolist()))
    assert list(zip(shuffled["clip"].tolist(), shuffled["frame"].tolist())) != in_order


def test_bad_arguments(prepared):
    with pytest.raises(InputError, match="no clip in split 'val'"):
        WindowDataset(prepared, "val")
    with pytest.raises(InputError, match="lower T"):
        WindowDataset(prepared, "test", T=16)
    with pytest.raises(ValueError, match="audio features"):
        WindowDataset(prepared, features="wav")
    with pytest.raises(ValueError, match="identity"):
        WindowDataset(prepared, identity="other")
    from talkinghead.audio.features import FeatureConfig
    with pytest.raises(ValueError, match="prepared at 16000 Hz"):
        WindowDataset(prepared, cfg=FeatureConfig(sr=8000))


def test_bench_entry(prepared, capsys):
    args = argparse.Namespace(data=str(prepared), split="train", T=4, features="raw", batches=2)
    assert bench_dataset(args) == 0
    out = capsys.readouterr().out
    assert "num_workers=0:" in out and "num_workers=2:" in out and "windows/s" in out
