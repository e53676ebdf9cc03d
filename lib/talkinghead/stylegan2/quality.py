"""How good are a StyleGAN2's frames? Two measures against real frames of a held-out split, cheap enough for ``--ship``.

1. **Face rate**: the share of samples in which the shipped SynthGRID landmark net (``nn.landmark_net``) finds a
   plausible face. A face is plausible when the 68 predicted points, similarity-aligned to the canonical SynthGRID
   shape (``face.landmarks.canonical_shape``), lie within the 99th percentile of the same distance over real frames
   of the split (``shape_distance``: root-mean-square point distance after Procrustes alignment, in inter-ocular
   units). The net is trained on 128 px crops, so the rate is measured at 128 px only (None with a note otherwise).
2. **Precision and recall** (Kynkäänniemi et al., "Improved Precision and Recall Metric for Assessing Generative
   Models", NeurIPS 2019), k = 3, against frames of the training split (the distribution G learns; held-out
   speakers look different by design): precision is the share of samples inside the real manifold (the union of
   balls around each real feature reaching its k-th nearest real neighbour), recall the share of real frames
   inside the samples' manifold. Other real frames of the same split score about 0.95 / 0.90 (``prepared128``),
   the ceiling reported beside them. Recall is generous to scattered samples (their balls are wide). The paper uses VGG-16 features; we use a feature space that needs no extra network:
   ``pixel_features``, the top 64 principal components (fitted on the real frames) of the frames downsampled to
   32 × 32 pixels (antialiased bilinear). It sees layout, colour and shading, not fine texture.

    metrics = measure_generator(G_ema, PreparedCorpus.open("data/prepared128"))

Command line (re-measures shipped weights, and writes a sample grid):

    python -m talkinghead.stylegan2.quality --generator stylegan2_synthgrid.safetensors --data data/prepared128 \\
        --grid docs/stylegan2_synthgrid_samples.png
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["shape_distance", "face_rate", "precision_recall", "pixel_features", "sample_frames", "real_frames",
           "measure_generator", "to_uint8", "image_grid", "write_grid", "main"]

FEATURE_SPACE = "PCA-64 (fitted on the real frames) of the frames downsampled to 32x32 RGB"


def shape_distance(lmk: np.ndarray) -> np.ndarray:
    """Procrustes distance of landmark sets to the canonical SynthGRID shape.

    Args:
        lmk: (N, 68, 2) points in any pixel frame.
    Returns:
        (N,) root-mean-square distance between the canonical shape's points and each set similarity-aligned onto
        it, in inter-ocular units (the canonical shape's eye centres are 1 apart): 0 for a scaled, rotated and moved
        copy of the canonical shape.
    """
    from talkinghead.face.landmarks import canonical_shape, procrustes

    lmk = np.asarray(lmk, dtype=np.float64)
    if lmk.ndim != 3 or lmk.shape[1:] != (68, 2):
        raise ValueError(f"landmarks must be (N, 68, 2), got {lmk.shape}")
    target = canonical_shape()
    aligned, _ = procrustes(lmk, target)                                            # (N, 68, 2)
    return np.sqrt(((aligned - target) ** 2).sum(-1).mean(-1))


def face_rate(sample_lmk: np.ndarray, real_lmk: np.ndarray, *, percentile: float = 99.0) -> tuple[float, float]:
    """Share of samples whose landmarks form a plausible face, and the threshold used.

    A sample is plausible when its ``shape_distance`` is at most the ``percentile``-th percentile of the real
    frames' distances. Returns (rate in [0, 1], threshold in inter-ocular units).
    """
    threshold = float(np.percentile(shape_distance(real_lmk), percentile))
    return float((shape_distance(sample_lmk) <= threshold).mean()), threshold


def _distances(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact Euclidean distances (N, M) between rows of a (N, F) and b (M, F), in float64."""
    return torch.cdist(a.double(), b.double(), compute_mode="donot_use_mm_for_euclid_dist")


def precision_recall(real: np.ndarray | torch.Tensor, fake: np.ndarray | torch.Tensor, *, k: int = 3) -> tuple[float, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019) of ``fake`` features against ``real`` ones.

    Args:
        real: (N, F) features of real images; fake: (M, F) features of generated images; N, M > k.
        k: the manifold of a set is the union of balls around its points, each reaching the k-th nearest other
            point of the set.
    Returns:
        (precision, recall): the share of fakes inside the real manifold, the share of reals inside the fake one.
    """
    real, fake = torch.as_tensor(np.asarray(real)), torch.as_tensor(np.asarray(fake))
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(f"features must be (N, F) and (M, F) with the same F, got {tuple(real.shape)} and {tuple(fake.shape)}")
    if min(len(real), len(fake)) <= k:
        raise ValueError(f"need more than k={k} features in each set, got {len(real)} real and {len(fake)} generated")

    def radii(x: torch.Tensor) -> torch.Tensor:
        # Column 0 of the sorted distances is the point itself (0), so column k is its k-th nearest other point.
        return _distances(x, x).sort(dim=1).values[:, k]                             # (N,)

    cross = _distances(real, fake)                                                    # (N, M)
    precision = (cross <= radii(real)[:, None]).any(dim=0).double().mean()           # fake j inside some real ball
    recall = (cross <= radii(fake)[None, :]).any(dim=1).double().mean()              # real i inside some fake ball
    return float(precision), float(recall)


def _as_float_images(frames: np.ndarray) -> torch.Tensor:
    """uint8 (N, S, S, 3) -> float (N, 3, S, S) in [-1, 1]."""
    return torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float() / 127.5 - 1


def pixel_features(real: np.ndarray, fake: np.ndarray, *, size: int = 32, components: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """The feature space of ``precision_recall`` here: frames downsampled to ``size`` × ``size`` (antialiased
    bilinear), flattened, projected on the top ``components`` principal axes of the real frames.

    Args:
        real, fake: uint8 (N, S, S, 3) and (M, S, S, 3).
    Returns:
        (N, C) and (M, C) float32 features, C = min(components, N - 1) (PCA of N points has at most N - 1 axes).
    """
    def flat(frames: np.ndarray) -> torch.Tensor:
        x = _as_float_images(frames)
        if x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
        return x.flatten(1).double()                                                  # (N, 3 · size²)

    r, f = flat(real), flat(fake)
    mean = r.mean(0)
    _, _, vt = torch.linalg.svd(r - mean, full_matrices=False)                        # rows of vt: principal axes
    axes = vt[: min(components, len(r) - 1)].T                                        # (3 · size², C)
    return ((r - mean) @ axes).float().numpy(), ((f - mean) @ axes).float().numpy()


@torch.no_grad()
def sample_frames(G, n: int, *, seed: int = 0, batch_size: int = 32) -> np.ndarray:
    """``n`` images of ``G`` (eval mode, constant noise, no truncation) from latents seeded by ``seed``, as uint8
    (n, R, R, 3)."""
    device = next(G.parameters()).device
    z = torch.randn(n, G.z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
    was_training = G.training
    G.eval()
    try:
        images = [G(z[i : i + batch_size], noise_mode="const") for i in range(0, n, batch_size)]
    finally:
        G.train(was_training)
    return to_uint8(torch.cat(images))


def to_uint8(images: torch.Tensor) -> np.ndarray:
    """Generator images (N, 3, R, R) in [-1, 1] -> uint8 (N, R, R, 3)."""
    img = images.detach().float().cpu()
    return ((img.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).numpy()


def real_frames(corpus, split: str, n: int) -> np.ndarray:
    """``n`` frames of ``split`` evenly spaced over all its clips (all of them when it has fewer), uint8 (n, S, S, 3)."""
    ids = np.concatenate([np.arange(c["frame_start"], c["frame_start"] + c["n_frames"]) for c in corpus.clips(split)])
    pick = ids[np.unique(np.linspace(0, len(ids) - 1, min(n, len(ids))).round().astype(np.int64))]
    return np.asarray(corpus.frames[pick])


def measure_generator(
    G,
    corpus,
    *,
    n: int = 256,
    seed: int = 0,
    reference_split: str = "train",
    face_split: str = "test",
    landmark_net=None,
) -> dict:
    """Face rate, and precision / recall, of ``n`` samples of ``G``.

    Precision and recall compare the samples with ``n`` frames of ``reference_split``, the distribution G learns:
    SynthGRID's splits hold different speakers, so frames of held-out speakers are out of a perfect G's
    distribution (their precision against train frames is 0 in pixel space). As a ceiling, the same measure of
    ``n`` other real frames of that split is reported (``real_precision``, ``real_recall``). The face threshold
    comes from ``n`` frames of ``face_split``, speakers the landmark net and G never saw.

    Args:
        G: a ``stylegan2.Generator`` (the EMA generator, usually).
        corpus: an open ``PreparedCorpus`` with crops of G's resolution.
        n: samples, and real frames of each kind (fewer when a split has fewer).
        seed: the samples' latents.
        reference_split: real frames for precision and recall (2n evenly spaced frames, alternately reference
            and ceiling set).
        face_split: real frames that set the plausible-face threshold.
        landmark_net: the net that finds faces (default: the shipped ``LandmarkNet.from_pretrained()``, loaded
            only at 128 px).
    Returns:
        {"samples", "reference_frames", "face_rate", "face_threshold", "precision", "recall", "real_precision",
        "real_recall", "k", "feature_space"}, and a "note" when the face rate is not measured (None).
    """
    from talkinghead.io import InputError

    pool = real_frames(corpus, reference_split, 2 * n)
    reference, others = pool[0::2], pool[1::2]
    if reference.shape[1] != G.img_resolution:
        raise InputError(f"{corpus.root} has {reference.shape[1]} px crops but the generator makes {G.img_resolution} "
                         "px images: measure it on a corpus prepared at its resolution")
    fake = sample_frames(G, n, seed=seed)
    out: dict = {"samples": n, "reference_frames": len(reference), "face_rate": None, "face_threshold": None}
    if G.img_resolution == 128:
        if landmark_net is None:
            from talkinghead.nn.landmark_net import LandmarkNet

            landmark_net = LandmarkNet.from_pretrained(device=next(G.parameters()).device)
        held_out = real_frames(corpus, face_split, n)
        rate, threshold = face_rate(landmark_net.predict(fake), landmark_net.predict(held_out))
        out.update(face_rate=round(rate, 4), face_threshold=round(threshold, 4))
    else:
        out["note"] = f"face rate not measured: the landmark net reads 128 px crops, these are {G.img_resolution} px"
    precision, recall = precision_recall(*pixel_features(reference, fake), k=3)
    real_precision, real_recall = precision_recall(*pixel_features(reference, others), k=3)
    out.update(precision=round(precision, 4), recall=round(recall, 4), real_precision=round(real_precision, 4),
               real_recall=round(real_recall, 4), k=3, feature_space=FEATURE_SPACE)
    return out


def image_grid(images: np.ndarray, columns: int = 8, *, pad: int = 2, background: int = 255) -> np.ndarray:
    """Tile uint8 images (N, S, S, 3) into one (rows · (S + pad) + pad, columns · (S + pad) + pad, 3) image."""
    images = np.asarray(images)
    if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
        raise ValueError(f"images must be uint8 (N, S, S, 3), got {images.dtype} {images.shape}")
    n, h, w, _ = images.shape
    rows = -(-n // columns)
    grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, 3), background, np.uint8)
    for i, img in enumerate(images):
        r, c = divmod(i, columns)
        grid[pad + r * (h + pad): pad + r * (h + pad) + h, pad + c * (w + pad): pad + c * (w + pad) + w] = img
    return grid


def write_grid(path, images: np.ndarray, columns: int = 8) -> None:
    """``image_grid`` of uint8 images (N, S, S, 3) written to ``path`` as a PNG, atomically."""
    import io

    from PIL import Image

    from talkinghead.io import write_bytes_atomic

    buffer = io.BytesIO()
    Image.fromarray(image_grid(images, columns)).save(buffer, format="PNG")
    write_bytes_atomic(path, buffer.getvalue())


def main(argv: list[str] | None = None) -> int:
    """``python -m talkinghead.stylegan2.quality``: face rate and precision / recall of a generator's samples, and
    optionally a grid of samples (the first 8 × 8 of the measured ones, the same seed)."""
    import argparse
    import json

    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.inversion.common import load_generator

    p = argparse.ArgumentParser(prog="python -m talkinghead.stylegan2.quality", description=main.__doc__)
    p.add_argument("--generator", required=True, help="StyleGAN2 weights (path or weights/ name)")
    p.add_argument("--data", required=True, help="prepared corpus at the generator's resolution")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--grid", default=None, help="write an 8 x 8 grid of samples here (.png)")
    p.add_argument("--real-grid", default=None, help="write an 8 x 8 grid of real train frames here (.png), to compare")
    args = p.parse_args(argv)

    G = load_generator(args.generator)
    corpus = PreparedCorpus.open(args.data)
    metrics = measure_generator(G, corpus, n=args.samples, seed=args.seed)
    print(json.dumps(metrics, indent=1))
    for path, frames in ((args.grid, lambda: sample_frames(G, 64, seed=args.seed)),
                         (args.real_grid, lambda: real_frames(corpus, "train", 64))):
        if path:
            write_grid(path, frames())
            print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
