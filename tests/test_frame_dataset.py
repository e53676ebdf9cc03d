"""FrameDataset on a small hand-made prepared folder: exact frames, whole batches, deterministic flips per epoch."""
import json

import numpy as np
import pytest
import torch

from talkinghead.data.datasets import FrameDataset
from talkinghead.data.prepare import FORMAT, HOP, PreparedCorpus
from talkinghead.io import InputError

S = 8
CLIPS = [("s0", "train", 30), ("s1", "test", 5), ("s0", "train", 20)]  # (speaker, split, n_frames)


@pytest.fixture(scope="module")
def prepared(tmp_path_factory):
    """A prepared folder of random frames whose pixel (0, 0) holds the frame's global index (red) and clip (green)."""
    root = tmp_path_factory.mktemp("frames")
    n = sum(c[2] for c in CLIPS)
    frames = np.random.default_rng(0).integers(0, 256, (n, S, S, 3), dtype=np.uint8)
    frames[:, 0, 0, 0] = np.arange(n)
    clips, f0 = [], 0
    for k, (speaker, split, t) in enumerate(CLIPS):
        frames[f0 : f0 + t, 0, 0, 1] = k
        clips.append({"speaker": speaker, "utt": f"u{k}", "split": split, "frame_start": f0, "n_frames": t,
                      "audio_start": f0 * HOP, "n_samples": t * HOP, "text": ""})
        f0 += t
    np.save(root / "frames.npy", frames)
    np.save(root / "landmarks.npy", np.zeros((n, 68, 2), np.float32))
    np.save(root / "audio.npy", np.zeros(n * HOP, np.int16))
    (root / "meta.json").write_text(json.dumps({
        "format": FORMAT, "version": 1, "size": S, "margin": 0.0, "fps": 25, "sr": 16000, "source": "test",
        "landmarks": "ground truth", "speakers": {"s0": {"split": "train", "index": 0}, "s1": {"split": "test", "index": 1}},
        "clips": clips}))
    return root


def _expected(data: PreparedCorpus, frame: int, *, mirrored: bool) -> torch.Tensor:
    u8 = np.array(data.frames[frame])
    if mirrored:
        u8 = u8[:, ::-1]
    return torch.from_numpy(u8.transpose(2, 0, 1).astype(np.float32)).mul(1 / 127.5).sub(1)  # the dataset's arithmetic


def test_frames_are_exact_and_cover_the_split(prepared):
    ds = FrameDataset(prepared, "train", flip=False)
    assert isinstance(ds.data, PreparedCorpus) and ds.data.root == prepared
    assert len(ds) == 50
    frames = [ds[i]["frame"] for i in range(len(ds))]
    assert frames == [*range(0, 30), *range(35, 55)]                   # the train clips, not the test clip between
    item = ds[31]
    assert item["image"].shape == (3, S, S) and item["image"].dtype == torch.float32
    torch.testing.assert_close(item["image"], _expected(ds.data, 36, mirrored=False), rtol=0, atol=0)
    assert item["image"].min() >= -1 and item["image"].max() <= 1
    assert len(FrameDataset(prepared, "test")) == 5


def test_a_list_of_indices_is_the_whole_batch(prepared):
    ds = FrameDataset(prepared, "train", seed=1)
    ds.set_epoch(2)
    indices = [4, 0, 49, 4, 17]
    batch = ds[indices]
    assert batch["image"].shape == (5, 3, S, S) and batch["frame"].tolist() == [ds[i]["frame"] for i in indices]
    torch.testing.assert_close(batch["image"], torch.stack([ds[i]["image"] for i in indices]), rtol=0, atol=0)


def test_flips_are_deterministic_per_seed_epoch_and_index(prepared):
    ds = FrameDataset(prepared, "train", seed=3)
    plain = FrameDataset(prepared, "train", flip=False)

    def flips(dataset, epoch):
        dataset.set_epoch(epoch)
        batch = dataset[list(range(len(dataset)))]
        same = [torch.equal(batch["image"][i], plain[i]["image"]) for i in range(len(dataset))]
        for i in range(len(dataset)):  # every item is its frame, mirrored or not
            torch.testing.assert_close(batch["image"][i], _expected(ds.data, plain[i]["frame"], mirrored=not same[i]),
                                       rtol=0, atol=0)
        return np.array([not s for s in same])

    epoch0, epoch1 = flips(ds, 0), flips(ds, 1)
    assert 10 < epoch0.sum() < 40 and (epoch0 != epoch1).any()
    assert (flips(ds, 0) == epoch0).all()                               # back to epoch 0: the same flips
    assert (flips(FrameDataset(prepared, "train", seed=3), 0) == epoch0).all()
    assert (flips(FrameDataset(prepared, "train", seed=4), 0) != epoch0).any()
    assert not flips(plain, 5).any()


def test_errors_name_the_problem(prepared):
    with pytest.raises(InputError, match="no clip in split 'val'"):
        FrameDataset(prepared, "val")
    with pytest.raises(IndexError):
        FrameDataset(prepared, "test")[[0, 5]]
