"""StyleGAN2 training through ``talkinghead.training.fit`` (Karras et al., CVPR 2020, section 3 and appendix B).

``StyleGAN2Task`` describes one training step as four phases, in this order:

    D       logistic loss on real frames and generated images (detached)           every step
    D_reg   lazy R1 on real frames, times its interval                             every ``r1_every`` (16) steps
    G       non-saturating logistic loss                                           every step
    G_reg   lazy path-length penalty on half a batch, times its interval           every ``pl_every`` (4) steps

The generated batch of a step is made once (in the D phase, cached for the step) and reused by the G phase after
D's update, so a step runs the generator forward once for the main losses. Each network has one Adam optimiser
that both its phases step; its learning rate and betas are corrected for the lazy phase as in appendix B: with
``c = every / (every + 1)``, ``lr · c`` and ``betas ** c``.

Choices the paper left open, and ours (as in stylegan2-ada-pytorch unless said otherwise):
- R1 weight ``r1_gamma``: None (default) takes stylegan2-ada's heuristic ``0.0002 · R² / B`` with B the
  micro-batch (0.41 at 128 px and batch 8); set a number to fix it.
- Style mixing (probability 0.9): the ws after a random cutoff come from a second z, for the main and the
  path-length losses.
- Path length on ``B // 2`` fresh samples (``pl_batch_shrink = 2``), decay 0.01, weight 2.
- The running mean ``a`` of the path lengths lives in a parameter-free net ``"pl"`` (a ``PathLengthMean`` with one
  buffer ``mean``): fit checkpoints every net's state dict, so the mean survives a resume exactly, and G's
  state dict keeps NVIDIA's names (official weights still load strictly). With several processes fit takes
  rank 0's buffers after every step, so the mean follows rank 0's samples (official: the mean over all GPUs).
- Differentiable augmentation (DiffAugment, ``stylegan2.augment``; default policy ``color,translation,cutout``) of
  everything D sees, real and generated, in all D and G phases, R1 included. Not in the StyleGAN2 paper: our first
  SynthGRID run without it collapsed (18 identities are few enough for D to memorise). ``augment=""`` turns it
  off, as the official configs for large datasets are. No ADA and no label conditioning.
- Training hyper-parameters are the task's arguments, not ``Config`` fields, so that ``Config`` stays the shape of
  the networks; the command line uses the defaults. They are checkpointed as ``task.settings``, and fit refuses
  to resume a run with other ones.
- fit's evaluation harness and sample videos need ``task.system`` (audio → video), which an unconditional image
  generator does not have: leave ``eval_every`` and ``sample_every`` at 0. ``--ship`` measures the generator with
  ``stylegan2.quality`` instead (face rate at 128 px, precision / recall).
- Logs: ``D_loss``, ``D_real``, ``D_fake`` (mean logits), ``G_loss`` every step; ``R1`` and ``PL`` (unscaled by their
  interval) and ``pl_length`` on their steps. fit averages a log row's values over all its steps, so with
  ``log_every > 1`` the lazy terms read smaller by the share of steps they ran in.

    python -m talkinghead train stylegan2 --config synth128 --data data/prepared128 --out runs/sg2 --steps 20000
"""
from __future__ import annotations

import json

import torch
from torch import nn

from talkinghead.stylegan2.augment import diff_augment, parse_policy
from talkinghead.stylegan2.losses import d_logistic_loss, d_r1_loss, g_nonsaturating_loss, g_path_regularize
from talkinghead.stylegan2.networks import Config, Discriminator, Generator

__all__ = ["PathLengthMean", "StyleGAN2Task", "lazy_adam", "add_train_stylegan2_parser"]


class PathLengthMean(nn.Module):
    """Holds the running mean ``a`` of the path lengths (paper eq. 4) as a buffer, so that it is checkpointed."""

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros([]))  # scalar, 0 at the start of training


def lazy_adam(params, *, lr: float, betas: tuple[float, float], every: int) -> torch.optim.Adam:
    """Adam for a network whose regulariser runs every ``every`` steps (paper appendix B): the regularisation
    steps add ``1 / every`` optimiser steps per step, so ``lr`` and ``betas`` are rescaled by ``c = every / (every + 1)``
    to keep the same effective learning rate and averaging horizon. ``every=0`` or 1 means no correction."""
    c = every / (every + 1) if every > 1 else 1.0
    return torch.optim.Adam(params, lr=lr * c, betas=(betas[0] ** c, betas[1] ** c), eps=1e-8)


class StyleGAN2Task:
    """StyleGAN2 for ``talkinghead.training.fit``: nets {"G", "D", "pl"}, optimisers {"G", "D"}, four phases.

    Args:
        cfg: the networks' shape (``stylegan2.Config``; its ``img_resolution`` must be the prepared crops').
        r1_gamma: R1 weight; None: ``0.0002 · R² / B`` (B the micro-batch size).
        r1_every: steps between R1 phases (lazy regularisation; 0 disables R1).
        pl_every: steps between path-length phases (0 disables it).
        pl_weight: path-length weight (2 in the paper's configs).
        pl_decay: decay of the running mean of path lengths.
        pl_batch_shrink: the path-length phase generates ``B // pl_batch_shrink`` images.
        style_mixing: probability of mixing two latents in a generated batch.
        lr: Adam learning rate of both networks (before the lazy correction).
        betas: Adam betas (before the lazy correction).
        augment: DiffAugment policy applied to every image D sees (``stylegan2.augment``); "" for none.
    """

    generator = "G"

    def __init__(
        self,
        cfg: Config,
        *,
        r1_gamma: float | None = None,
        r1_every: int = 16,
        pl_every: int = 4,
        pl_weight: float = 2.0,
        pl_decay: float = 0.01,
        pl_batch_shrink: int = 2,
        style_mixing: float = 0.9,
        lr: float = 0.0025,
        betas: tuple[float, float] = (0.0, 0.99),
        augment: str = "color,translation,cutout",
    ):
        if cfg.c_dim:
            raise ValueError(f"StyleGAN2Task trains unconditional generators; this config has c_dim={cfg.c_dim}")
        if min(r1_every, pl_every) < 0 or pl_batch_shrink < 1 or not 0 <= style_mixing <= 1:
            raise ValueError("need r1_every, pl_every ≥ 0, pl_batch_shrink ≥ 1 and style_mixing in [0, 1]")
        self.cfg = cfg
        self.r1_gamma, self.r1_every = r1_gamma, r1_every
        self.pl_every, self.pl_weight, self.pl_decay, self.pl_batch_shrink = pl_every, pl_weight, pl_decay, pl_batch_shrink
        self.style_mixing, self.lr, self.betas = style_mixing, lr, tuple(betas)
        self.augment = ",".join(parse_policy(augment))

    # -- what fit() asks for

    @property
    def settings(self) -> dict:
        """The training hyper-parameters (not in ``cfg``), checkpointed by fit."""
        return {"r1_gamma": self.r1_gamma, "r1_every": self.r1_every, "pl_every": self.pl_every,
                "pl_weight": self.pl_weight, "pl_decay": self.pl_decay, "pl_batch_shrink": self.pl_batch_shrink,
                "style_mixing": self.style_mixing, "lr": self.lr, "betas": list(self.betas), "augment": self.augment}

    @property
    def phases(self):
        from talkinghead.training import Phase

        phases = [Phase("D", optimizer="D", nets=("D",))]
        if self.r1_every:
            phases.append(Phase("D_reg", optimizer="D", nets=("D",), every=self.r1_every))
        phases.append(Phase("G", optimizer="G", nets=("G",)))
        if self.pl_every:
            phases.append(Phase("G_reg", optimizer="G", nets=("G",), every=self.pl_every))
        return tuple(phases)

    def build_nets(self) -> dict[str, nn.Module]:
        return {"G": Generator(self.cfg), "D": Discriminator(self.cfg), "pl": PathLengthMean()}

    def build_optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return {"G": lazy_adam(nets["G"].parameters(), lr=self.lr, betas=self.betas, every=self.pl_every),
                "D": lazy_adam(nets["D"].parameters(), lr=self.lr, betas=self.betas, every=self.r1_every)}

    def dataset(self, data, split: str, *, seed: int = 0):
        """Single frames of ``split``, mirrored at random (per seed and epoch)."""
        from talkinghead.data.datasets import FrameDataset
        from talkinghead.io import InputError

        ds = FrameDataset(data, split, seed=seed, flip=True)
        size = ds.data.meta["size"]
        if size != self.cfg.img_resolution:
            raise InputError(f"{ds.data.root} has {size}×{size} crops but the {self.cfg.name!r} StyleGAN2 config makes "
                             f"{self.cfg.img_resolution}×{self.cfg.img_resolution} images: prepare with "
                             f"--size {self.cfg.img_resolution} or pick a preset of {size} px")
        return ds

    def loss(self, phase: str, batch: dict, nets: dict[str, nn.Module], cache: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one phase ("D", "D_reg", "G", "G_reg") on one batch; ``cache`` lives for one step."""
        G, D = nets["G"], nets["D"]
        real = batch["image"]                                                          # (B, 3, R, R)
        if phase == "D":
            fake = self._fake(G, real, cache).detach()
            real_logits, fake_logits = D(self._aug(real)), D(self._aug(fake))          # (B, 1) each
            loss = d_logistic_loss(real_logits, fake_logits)
            return loss, {"D_loss": loss.item(), "D_real": real_logits.mean().item(), "D_fake": fake_logits.mean().item()}
        if phase == "D_reg":
            real = real.detach().requires_grad_(True)
            penalty = d_r1_loss(D(self._aug(real)), real, gamma=self.r1_weight(real.shape[0]))
            return penalty * self.r1_every, {"R1": penalty.item()}
        if phase == "G":
            loss = g_nonsaturating_loss(D(self._aug(self._fake(G, real, cache))))
            return loss, {"G_loss": loss.item()}
        if phase == "G_reg":
            n = max(1, real.shape[0] // self.pl_batch_shrink)
            ws = self._ws(G, n, real.device)                                          # (n, num_ws, w_dim)
            img = G.synthesis(ws)                                                     # (n, 3, R, R)
            mean = nets["pl"].mean
            penalty, new_mean, lengths = g_path_regularize(img, ws, mean, decay=self.pl_decay, weight=self.pl_weight)
            mean.copy_(new_mean.to(mean.dtype))
            return penalty * self.pl_every, {"PL": penalty.item(), "pl_length": lengths.mean().item()}
        raise ValueError(f"unknown phase {phase!r}: StyleGAN2 has phases D, D_reg, G and G_reg")

    # -- helpers

    def _aug(self, images: torch.Tensor) -> torch.Tensor:
        """DiffAugment of what D sees (identity when the policy is empty)."""
        return diff_augment(images, self.augment) if self.augment else images

    def r1_weight(self, batch_size: int) -> float:
        """The R1 weight for a micro-batch of ``batch_size``."""
        if self.r1_gamma is not None:
            return self.r1_gamma
        return 0.0002 * self.cfg.img_resolution**2 / batch_size

    def _ws(self, G: Generator, n: int, device) -> torch.Tensor:
        """ws (n, num_ws, w_dim) of fresh latents, with style mixing: with probability ``style_mixing`` the ws from
        a random cutoff in [1, num_ws) on come from a second latent (which does not move ``w_avg``)."""
        z = torch.randn(n, G.z_dim, device=device)
        ws = G.mapping(z, None)                                         # (n, num_ws, w_dim)
        if self.style_mixing > 0 and torch.rand([]).item() < self.style_mixing:
            cutoff = int(torch.randint(1, ws.shape[1], []).item())
            other = G.mapping(torch.randn_like(z), None, update_w_avg=False)
            ws = torch.cat([ws[:, :cutoff], other[:, cutoff:]], dim=1)
        return ws

    def _fake(self, G: Generator, real: torch.Tensor, cache: dict) -> torch.Tensor:
        """The step's generated batch, as many images as ``real``, made once per step (graph kept for the G phase)."""
        if "fake" not in cache:
            cache["fake"] = G.synthesis(self._ws(G, real.shape[0], real.device))        # (B, 3, R, R)
        return cache["fake"]


# --------------------------------------------------------------------------- command line


def _ship(result, args, cfg: Config) -> None:
    """Measure the EMA generator (``stylegan2.quality.measure_generator``) and write it to weights/ (fp16)."""
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.hub import save_weights
    from talkinghead.stylegan2.quality import measure_generator
    from talkinghead.training.cli import run_record, total_steps

    G = result.nets["G_ema"].cpu().eval()
    corpus = PreparedCorpus.open(args.data)
    metrics = measure_generator(G, corpus, reference_split="train", face_split="test")
    print("quality:", json.dumps(metrics))
    train_speakers = sorted({c["speaker"] for c in corpus.clips("train")})
    test_speakers = sorted({c["speaker"] for c in corpus.clips("test")})
    path = save_weights(
        G.state_dict(), args.ship, config=cfg.name, config_dict=cfg.to_dict(),
        steps=total_steps(result.step, result.init_from),
        data=f"{corpus.root.name}: single frames of train speakers {train_speakers}; precision / recall against "
             f"train frames, face threshold from test speakers {test_speakers}",
        metrics={"quality": metrics},
        training=run_record(result, args),
    )
    print(f"shipped {path} ({path.stat().st_size / 1e6:.2f} MB)")


def add_train_stylegan2_parser(sub) -> None:
    """Add ``stylegan2`` to ``python -m talkinghead train``."""
    from talkinghead.training.cli import add_fit_parser

    add_fit_parser(sub, "stylegan2", help="train an unconditional StyleGAN2 on the frames of a prepared corpus",
                   config_type=Config, make_task=StyleGAN2Task, ship=_ship)
