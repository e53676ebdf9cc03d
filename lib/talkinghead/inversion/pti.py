"""Pivotal tuning (Roich et al., "Pivotal Tuning for Latent-based Editing of Real Images", ACM TOG 2022,
arXiv 2106.05744): after an inversion gives a pivot latent w_p, fine-tune the generator so that G(w_p) reproduces
the target image(s), while a locality regulariser keeps the generator unchanged away from the pivot.

    L = l2_weight · MSE(G_t(w_p), x) + perceptual_weight · LPIPS(G_t(w_p), x)
      + locality_weight · [MSE(G_t(w_r), G(w_r)) + LPIPS(G_t(w_r), G(w_r))]
    w_r = w_p + α (w_z - w_p) / ||w_z - w_p||₂,   w_z = mapping(z), z ~ N(0, I)

Defaults are the paper's: 350 steps of Adam at 3e-4, weights 1 / 1, locality weight 0.1 with α = 30 and one
w_r per step. α is a distance in W: 30 suits the 512-dimensional W of the FFHQ networks (whose spread
``sqrt(E||w - w̄||²)`` is of that order); smaller networks need it scaled to their spread (``common.w_stats``).
Several target images (a short video's frames) are tuned together, each frame at its own pivot; the locality
samples start from a randomly chosen frame's pivot.

What is tuned and how it is stored (``TunedGenerator``): the synthesis network's parameters only (the mapping is
unchanged, so w's mean the same thing before and after). ``rank=None`` tunes every synthesis parameter as in the
paper and stores the difference to the base weights in float16; ``rank=r`` tunes every weight matrix (convolutions
flattened to (out, in·k·k)) as base + U·V with U (out, r) starting at zero and V (r, in·k·k) random (the LoRA
parametrisation, Hu et al. 2021), the small tensors (biases, styles' biases, noise strengths, the 4×4 constant) in
full, and stores U, V and those differences in float16. Either way the returned generator already uses the stored
float16 values, so a saved and reloaded delta reproduces it exactly. Files are safetensors with metadata
(format, rank, settings, base fingerprint).

Cache: ``pivotal_tuning(..., cache=True)`` keys a result by the sha256 of the target's float32 bytes, the pivot's,
the settings and a fingerprint of the base generator's tensors, and keeps it in ``$TALKINGHEAD_CACHE/pti``
(default ``~/.cache/talkinghead/pti``); a second call with the same inputs loads it instead of tuning.
Files are written to a temporary name and moved into place.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.inversion.common import Progress, as_batch, report, synthesize
from talkinghead.io import InputError

__all__ = ["PTISettings", "TunedGenerator", "pivotal_tuning", "cache_dir", "generator_fingerprint", "delta_nbytes"]

FORMAT = "talkinghead.pti.delta/1"
CACHE_ENV = "TALKINGHEAD_CACHE"


@dataclass(frozen=True)
class PTISettings:
    """Everything that changes a tuning result (and so the cache key)."""

    steps: int = 350                 # tuning steps (paper: 350)
    lr: float = 3e-4                 # Adam learning rate (paper: 3e-4)
    l2_weight: float = 1.0           # pixel MSE on the target (paper: 1)
    perceptual_weight: float = 1.0   # perceptual distance on the target (paper: 1, LPIPS)
    locality_weight: float = 0.1     # weight of the locality regulariser (paper: 0.1 for its L2 and LPIPS terms)
    locality_alpha: float = 30.0     # distance of w_r from the pivot, in W (paper: 30)
    locality_samples: int = 1        # w_r per step (paper: 1)
    rank: int | None = None          # None: tune every weight (paper); r: low-rank deltas of rank r
    perceptual: str = "auto"         # the perceptual distance ("auto", "lpips", "structural" or a module's class)
    seed: int = 0                    # locality samples and the low-rank V init


def cache_dir() -> Path:
    """``$TALKINGHEAD_CACHE/pti``, default ``~/.cache/talkinghead/pti``."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "talkinghead")) / "pti"


def generator_fingerprint(G: nn.Module) -> str:
    """sha256 over the names, shapes and bytes of G's state dict: which base generator a delta belongs to."""
    h = hashlib.sha256()
    for name, tensor in sorted(G.state_dict().items()):
        h.update(name.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()


def _lowrank_shape(param: torch.Tensor, rank: int | None) -> tuple[int, int] | None:
    """(out, in·k·k) when ``param`` is tuned as a rank-``rank`` product, else None (tuned in full)."""
    if rank is None or param.ndim < 2:
        return None
    rows, cols = param.shape[0], param[0].numel()
    return (rows, cols) if min(rows, cols) > rank else None


class TunedGenerator(nn.Module):
    """A base StyleGAN2 generator plus a compact delta on its synthesis parameters.

    ``tensors`` holds ``delta.<name>`` (full differences) and ``u.<name>`` / ``v.<name>`` (low-rank factors);
    ``pivot`` the latents the generator was tuned at, (B, num_ws, w_dim). ``synthesis(ws)`` renders with the tuned
    weights and the base's constant noise; the base generator itself is never modified."""

    def __init__(self, G: nn.Module, tensors: dict[str, torch.Tensor], pivot: torch.Tensor, *, settings: PTISettings,
                 fingerprint: str | None = None, history: list[dict] | None = None, from_cache: bool = False):
        super().__init__()
        self.G = G
        self.tensors = dict(tensors)
        self.pivot = pivot
        self.settings = settings
        self.fingerprint = fingerprint
        self.history = history or []
        self.from_cache = from_cache
        self.seconds = 0.0  # time spent tuning (0 when loaded)
        self.img_resolution, self.num_ws, self.w_dim = G.img_resolution, G.num_ws, G.w_dim

    def tuned_params(self) -> dict[str, torch.Tensor]:
        """Synthesis parameter name -> base + delta, for every tuned parameter."""
        base = {k: v.detach() for k, v in self.G.synthesis.named_parameters()}  # gradients reach the delta only
        out = {}
        for key, value in self.tensors.items():
            kind, name = key.split(".", 1)
            if kind == "delta":
                out[name] = base[name] + value.to(base[name])
            elif kind == "u":
                v = self.tensors[f"v.{name}"].to(base[name])
                out[name] = base[name] + (value.to(base[name]) @ v).reshape(base[name].shape)
        return out

    def synthesis(self, ws: torch.Tensor) -> torch.Tensor:
        """ws (B, num_ws, w_dim) -> img (B, 3, R, R) through the tuned synthesis network (constant noise)."""
        return synthesize(self.G, ws, params=self.tuned_params())

    def forward(self, ws: torch.Tensor) -> torch.Tensor:
        return self.synthesis(ws)

    def image(self) -> torch.Tensor:
        """The tuned reconstruction of the target(s): synthesis at the pivot, (B, 3, R, R)."""
        with torch.no_grad():
            return self.synthesis(self.pivot)

    def materialize(self) -> nn.Module:
        """A standalone ``Generator`` with the tuned weights merged in (a full copy: use for export only)."""
        import copy

        G = copy.deepcopy(self.G)
        with torch.no_grad():
            for name, value in self.tuned_params().items():
                G.synthesis.get_parameter(name).copy_(value)
        return G

    def nbytes(self) -> int:
        """Bytes of the stored delta tensors (the pivot not counted)."""
        return sum(t.numel() * t.element_size() for t in self.tensors.values())

    def save(self, path: str | os.PathLike) -> Path:
        """Write the delta, the pivot (float32) and the settings to ``path`` (safetensors), atomically."""
        from safetensors.torch import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tensors = {k: v.detach().cpu().contiguous() for k, v in self.tensors.items()}
        tensors["pivot"] = self.pivot.detach().cpu().to(torch.float32).contiguous()
        meta = {"format": FORMAT, "settings": json.dumps(asdict(self.settings)), "fingerprint": self.fingerprint or "",
                "history": json.dumps(self.history[-1:] if self.history else [])}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        save_file(tensors, str(tmp), metadata=meta)
        os.replace(tmp, path)
        return path

    @classmethod
    def load(cls, path: str | os.PathLike, G: nn.Module, *, check_fingerprint: bool = True) -> "TunedGenerator":
        """Read a delta written by ``save`` onto the base generator ``G`` (which must be the one it was tuned from)."""
        from safetensors import safe_open

        path = Path(path)
        if not path.is_file():
            raise InputError(f"{path} does not exist: tune first (talkinghead.inversion.pti.pivotal_tuning)")
        device = next(G.parameters()).device
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
        if meta.get("format") != FORMAT:
            raise InputError(f"{path} is not a pivotal-tuning delta (format {meta.get('format')!r}, expected {FORMAT!r})")
        fingerprint = meta.get("fingerprint") or None
        if check_fingerprint and fingerprint and fingerprint != generator_fingerprint(G):
            raise InputError(f"{path} was tuned from another generator: load it onto the same base weights")
        names = dict(G.synthesis.named_parameters())
        unknown = [k for k in tensors if k != "pivot" and k.split(".", 1)[1] not in names]
        if unknown:
            raise InputError(f"{path} has tensors for parameters this generator lacks: {unknown[:4]}")
        pivot = tensors.pop("pivot").to(device)
        settings = PTISettings(**json.loads(meta["settings"]))
        return cls(G, {k: v.to(device) for k, v in tensors.items()}, pivot, settings=settings, fingerprint=fingerprint,
                   history=json.loads(meta.get("history", "[]")))


def delta_nbytes(G: nn.Module, rank: int | None, *, bytes_per_value: int = 2) -> int:
    """Bytes a delta of ``G``'s synthesis network takes at ``rank`` (None: full), without tuning anything."""
    total = 0
    for param in G.synthesis.parameters():
        shape = _lowrank_shape(param, rank)
        total += (shape[0] + shape[1]) * rank if shape else param.numel()
    return total * bytes_per_value


def _init_tensors(G: nn.Module, rank: int | None, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Trainable delta tensors: zeros (full) or U = 0, V ~ N(0, 1/r) (low-rank); the product starts at 0."""
    tensors = {}
    for name, param in G.synthesis.named_parameters():
        shape = _lowrank_shape(param, rank)
        if shape is None:
            tensors[f"delta.{name}"] = torch.zeros_like(param)
        else:
            tensors[f"u.{name}"] = torch.zeros(shape[0], rank, device=param.device)
            tensors[f"v.{name}"] = (torch.randn(rank, shape[1], generator=gen) / rank**0.5).to(param.device)
    return {k: v.requires_grad_(True) for k, v in tensors.items()}


def _cache_key(target: torch.Tensor, pivot: torch.Tensor, settings: PTISettings, fingerprint: str) -> str:
    h = hashlib.sha256()
    for t in (target, pivot):
        h.update(str(tuple(t.shape)).encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    h.update(json.dumps(asdict(settings), sort_keys=True).encode())
    h.update(fingerprint.encode())
    return h.hexdigest()


def pivotal_tuning(
    G: nn.Module,
    target: torch.Tensor,
    pivot: torch.Tensor,
    *,
    steps: int = 350,
    lr: float = 3e-4,
    l2_weight: float = 1.0,
    perceptual_weight: float = 1.0,
    locality_weight: float = 0.1,
    locality_alpha: float = 30.0,
    locality_samples: int = 1,
    rank: int | None = None,
    perceptual: nn.Module | str = "auto",
    cache: bool = True,
    cache_root: str | os.PathLike | None = None,
    progress: Progress | None = None,
    seed: int = 0,
) -> TunedGenerator:
    """Tune ``G``'s synthesis weights so that ``G(pivot)`` reproduces ``target``; ``G`` itself is not modified.

    Args:
        G: the base StyleGAN2 generator.
        target: (3, R, R) or (B, 3, R, R) in [-1, 1]: one image or a short clip's frames.
        pivot: (num_ws, w_dim) or (B, num_ws, w_dim), from ``api.invert`` (encoder and/or projector).
        steps, lr, l2_weight, perceptual_weight, locality_weight, locality_alpha, locality_samples: see the module
            docstring (defaults: the paper's).
        rank: None tunes every synthesis parameter (the paper); an int tunes low-rank deltas of that rank.
        perceptual: a module ``(x, y) -> (B,)`` or a kind for ``perceptual.load_perceptual``.
        cache: reuse / store the result in ``cache_root`` (default ``cache_dir()``).
        progress: called with ("tune", fraction).
        seed: locality samples and the low-rank init.
    Returns:
        a ``TunedGenerator`` (``from_cache`` True when it was loaded rather than tuned).
    """
    device = next(G.parameters()).device
    target = as_batch(target, G.img_resolution).to(device)                          # (B, 3, R, R)
    pivot = pivot.detach().to(device, torch.float32)
    if pivot.ndim == 2:
        pivot = pivot.unsqueeze(0)
    if pivot.shape != (target.shape[0], G.num_ws, G.w_dim):
        raise InputError(f"pivot has shape {tuple(pivot.shape)}, expected {(target.shape[0], G.num_ws, G.w_dim)}: one "
                         "pivot per target frame (api.invert gives them)")
    if isinstance(perceptual, str):
        from talkinghead.inversion.perceptual import load_perceptual

        perceptual_name, perceptual = perceptual, load_perceptual(perceptual, device=device)
    else:
        perceptual_name = type(perceptual).__name__
    settings = PTISettings(steps=steps, lr=lr, l2_weight=l2_weight, perceptual_weight=perceptual_weight,
                           locality_weight=locality_weight, locality_alpha=locality_alpha,
                           locality_samples=locality_samples, rank=rank,
                           perceptual=f"{perceptual_name}:{type(perceptual).__name__}", seed=seed)

    # 1. The cache.
    fingerprint = generator_fingerprint(G)
    path = None
    if cache:
        path = Path(cache_root or cache_dir()) / f"{_cache_key(target, pivot, settings, fingerprint)}.safetensors"
        if path.is_file():
            tuned = TunedGenerator.load(path, G, check_fingerprint=False)
            tuned.from_cache = True
            report(progress, "tune", 1.0)
            return tuned

    # 2. Trainable deltas; the base generator's tensors are read, never written.
    gen = torch.Generator().manual_seed(seed)
    tensors = _init_tensors(G, rank, gen)
    optimizer = torch.optim.Adam(list(tensors.values()), lr=lr)
    tuned = TunedGenerator(G, tensors, pivot, settings=settings, fingerprint=fingerprint)

    history = []
    start = time.perf_counter()
    for step in range(steps):
        # 3. Reconstruction at the pivot.
        params = tuned.tuned_params()
        img = synthesize(G, pivot, params=params)                                    # (B, 3, R, R)
        l2 = F.mse_loss(img, target)
        dist = perceptual(img, target).mean()
        loss = l2_weight * l2 + perceptual_weight * dist
        row = {"step": step, "l2": l2.item(), "perceptual": dist.item()}

        # 4. Locality: w_r at distance alpha from a pivot towards random w's; keep G_t(w_r) at G(w_r).
        if locality_weight > 0:
            z = torch.randn(locality_samples, G.z_dim, generator=gen).to(device)
            with torch.no_grad():
                w_z = G.mapping(z, None, update_w_avg=False)                         # (N, num_ws, w_dim)
                frames = torch.randint(0, pivot.shape[0], (locality_samples,), generator=gen).to(device)
                w_p = pivot[frames]                                                  # (N, num_ws, w_dim)
                direction = w_z - w_p
                w_r = w_p + locality_alpha * direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-8)
                img_orig = synthesize(G, w_r)                                        # (N, 3, R, R)
            img_r = synthesize(G, w_r, params=params)
            locality = F.mse_loss(img_r, img_orig) + perceptual(img_r, img_orig).mean()
            loss = loss + locality_weight * locality
            row["locality"] = locality.item()

        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        row["loss"] = loss.item()
        history.append(row)
        report(progress, "tune", (step + 1) / steps)

    # 5. Round to the stored precision, so that a saved delta reproduces this generator exactly.
    with torch.no_grad():
        tuned.tensors = {k: v.detach().to(torch.float16) for k, v in tensors.items()}
    tuned.history, tuned.seconds = history, time.perf_counter() - start
    if path is not None:
        tuned.save(path)
    return tuned
