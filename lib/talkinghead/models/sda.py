"""Speech-driven facial animation with temporal GANs (SDA / RSDGAN).

Papers:
    K. Vougioukas, S. Petridis, M. Pantic. "End-to-End Speech-Driven Facial Animation with Temporal GANs."
    BMVC 2018.
    K. Vougioukas, S. Petridis, M. Pantic. "Realistic Speech-Driven Facial Animation with GANs." IJCV 2019
    ("RSDGAN"): adds the synchronisation discriminator and the blink-friendly training the other seeds compare to.

The generator makes a video from one still frame and raw audio, frame by frame:

    still (3, H, W) --identity encoder (6 convs)--> identity latent + multi-scale features (U-Net skips)
    audio (T, 3200) --context encoder (1-D convs per 0.2 s window, 2-layer GRU)--> content (T, 256)
    N(0, σ²) (T, 10) --noise generator (1-layer GRU)--> noise (T, 10)
    [identity, content_t, noise_t] --frame decoder (U-Net, skips from the identity encoder)--> frame_t

Three discriminators judge it: the frame discriminator (6 convs on a frame beside the still frame: realism and
identity), the sequence discriminator (a CNN per frame → 2-layer GRU with the audio encoding as condition → a
2-layer classifier: natural motion and audio-video pairing), and the synchronisation discriminator (mouth region
of 0.2 s of video beside 0.2 s of audio, embedded, the squared distance of the embeddings into a one-unit
classifier: in sync or not). The generator also minimises L1 on the lower half of the face.

Choices the papers leave open (or our synthetic benchmark asks to change), all in ``Config``:
    - Channel widths: the papers give the layer counts, not the widths; ``paper`` uses 64 … 512 (DCGAN-like),
      ``synth128`` narrower so it trains on a CPU.
    - Identity latent: 50-d in BMVC 2018, 128-d in IJCV 2019: ``identity_dim`` (128 by default).
    - Noise: N(0, 0.6²) into a 1-layer GRU with 10 units (IJCV 2019).
    - Loss weights (IJCV 2019): λ_frame 1, λ_seq 0.2, λ_sync 0.8, λ_L1 600 on the mean absolute error of the
      lower half. Learning rates: G 1e-4, frame D 1e-3, sequence D 5e-5, sync D 1e-5 (Adam, β = (0.5, 0.999)).
    - Adversarial loss: the papers' minimax (binary cross-entropy); G uses the non-saturating form.
    - Sync discriminator: out-of-sync pairs are real video with its audio shifted by 2 … ``sync_max_shift`` frames
      (a random other window of the same clip); generated video with its own audio counts as fake, as in IJCV 2019.
    - The audio encoding that conditions the sequence discriminator is its own small 1-D CNN, not the generator's.
    - Sequence discriminator: ``seq_disc="bmvc"`` (default) is the conference paper's above; ``"ijcv"`` is the
      journal version's as we read it (spatio-temporal convolutions extract transient features at every time
      step, a 1-layer GRU, a single-layer classifier; no audio, sync being the sync discriminator's job). Kernel
      sizes are ours (3 frames × 4 × 4). At our CPU budgets neither rewards blinks (docs/RESULTS.md).
    - Normalisation: batch norm in the generator's encoders and decoder, none in the discriminators (spectral
      norm is not in the papers; the GRU discriminator trains without it on our data).
    - Not in the papers, off by default: ``w_div`` adds the diversity-sensitive term of Yang et al. (ICLR 2019),
      −w_div · min(``noise_sensitivity``, ``div_clip``), which rewards frames that change with the noise. Our
      CPU-trained generators learned to ignore their noise (two noise draws differ by 0.03 grey levels on
      average), which leaves the noise GRU nothing to make blinks with; docs/RESULTS.md has what the term did.

Diagnostics (why it does or does not blink; docs/RESULTS.md has the figures): ``noise_effect`` (how much the
noise and the clip move the upper face), ``blink_response`` (what a blink, a frozen window and the generated
window are worth to a sequence discriminator, and where its gradient lands), ``probe_sequence_discriminator``
(the same for a fresh one trained against a frozen generator), ``load_run`` (every network of a checkpoint).

Lengths: ``generate`` makes any number of frames and streams them in chunks with the GRU states carried; the
noise is drawn per frame from a seeded generator, so chunked and all-at-once generation give the same frames.
"""
from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field, replace

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from talkinghead.config import PresetConfig

__all__ = [
    "Config", "PRESETS", "IdentityEncoder", "ContextEncoder", "NoiseGenerator", "FrameDecoder", "Generator",
    "FrameDiscriminator", "SequenceDiscriminator", "SpatioTemporalSequenceDiscriminator", "SyncDiscriminator",
    "sequence_discriminator", "GeneratorState", "SDATask", "build_nets", "build_optimizers", "train_step", "generate",
    "stream", "lower_half_l1", "WEIGHTS_NAME", "load_generator",
    "add_train_sda_parser", "noise_sensitivity", "noise_effect", "blink_response", "probe_sequence_discriminator", "load_run",
]

WEIGHTS_NAME = "sda_synthgrid.safetensors"


@dataclass(frozen=True)
class Config(PresetConfig):
    """An SDA model: sizes, loss weights and optimisation. Presets: ``Config.preset("synth128")``."""

    KIND = "SDA"
    name: str = "synth128"
    height: int = 128                 # frame height (pixels), a multiple of 2 ** len(enc_channels)
    width: int = 128                  # frame width (pixels)
    sr: int = 16000                   # audio sample rate
    fps: int = 25                     # video frame rate
    audio_window: int = 3200          # samples of raw audio per frame (0.2 s, centred)
    enc_channels: tuple[int, ...] = (16, 32, 64, 128, 128)   # identity encoder, one stride-2 conv each (+ 1 to 1×1)
    identity_dim: int = 128           # identity latent (50 in BMVC 2018, 128 in IJCV 2019)
    content_dim: int = 256            # audio content per frame (GRU units)
    audio_channels: tuple[int, ...] = (16, 32, 64, 128, 128)  # context encoder 1-D convs
    noise_dim: int = 10               # noise generator GRU units
    noise_std: float = 0.6            # std of the Gaussian fed to the noise GRU
    d_channels: tuple[int, ...] = (16, 32, 64, 128, 128)     # frame/sequence discriminator convs
    seq_hidden: int = 128             # sequence discriminator GRU units
    seq_disc: str = "bmvc"            # sequence D: "bmvc" (per-frame CNN + audio → 2-layer GRU) or "ijcv" (spatio-temporal)
    sync_frames: int = 5              # frames (0.2 s) per sync discriminator snippet
    sync_dim: int = 128               # sync discriminator embedding size
    sync_max_shift: int = 8           # out-of-sync pairs: audio shifted by 2 … this many frames
    T: int = 16                       # frames per training window
    w_frame: float = 1.0              # λ_frame
    w_seq: float = 0.2                # λ_seq
    w_sync: float = 0.8               # λ_sync
    w_l1: float = 600.0               # λ_L1 (lower half of the face)
    lr_G: float = 1e-4
    lr_frame: float = 1e-3
    lr_seq: float = 5e-5
    lr_sync: float = 1e-5
    betas: tuple[float, float] = (0.5, 0.999)
    discriminators: tuple[str, ...] = ("frame", "seq", "sync")  # ablations: () = L1 only, ("frame",) = L1 + frame D
    w_div: float = 0.0                # not in the papers: diversity-sensitive term (Yang et al. 2019), 0 = off
    div_clip: float = 0.01            # τ: the diversity term stops rewarding above this ratio


PRESETS: dict[str, Config] = {
    # Seconds on a CPU: for tests and the notebooks' CI run.
    "tiny": Config(name="tiny", height=32, width=32, enc_channels=(8, 16, 16), identity_dim=16, content_dim=32,
                   audio_channels=(4, 8, 16, 32, 32), noise_dim=4, d_channels=(8, 16, 16), seq_hidden=16,
                   sync_dim=16, sync_max_shift=4, T=8),
    # The shipped SynthGRID model: 128×128 crops, widths a CPU can train.
    "synth128": Config(),
    # The papers' setting: 96 wide × 128 high, DCGAN-like widths.
    "paper": Config(name="paper", height=128, width=96, enc_channels=(64, 128, 256, 512, 1024), d_channels=(64, 128, 256, 512, 1024),
                    audio_channels=(16, 32, 64, 128, 256), seq_hidden=256, T=75),
}
Config.PRESETS = PRESETS


def _check_shape(x: torch.Tensor, shape: tuple, what: str) -> None:
    """Raise if ``x`` does not have ``shape`` (None matches any size)."""
    if x.ndim != len(shape) or any(s is not None and s != d for s, d in zip(shape, x.shape)):
        raise ValueError(f"{what} must have shape {tuple('*' if s is None else s for s in shape)}, got {tuple(x.shape)}")


# --------------------------------------------------------------------------- generator


def _down(c_in: int, c_out: int, *, norm: bool) -> nn.Sequential:
    layers = [nn.Conv2d(c_in, c_out, 4, stride=2, padding=1, bias=not norm)]
    if norm:
        layers.append(nn.BatchNorm2d(c_out))
    layers.append(nn.LeakyReLU(0.2, inplace=True))
    return nn.Sequential(*layers)


class IdentityEncoder(nn.Module):
    """Still frame → identity latent and the feature map of every scale (the U-Net skips).

    ``len(enc_channels)`` stride-2 convs and one last conv over the remaining map to a 1×1 latent: 6 layers at
    the ``synth128``/``paper`` presets, as in the papers.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        chans = (3, *cfg.enc_channels)
        self.blocks = nn.ModuleList(_down(a, b, norm=i > 0) for i, (a, b) in enumerate(zip(chans, chans[1:])))
        depth = len(cfg.enc_channels)
        self.bottom = (cfg.height >> depth, cfg.width >> depth)
        self.to_latent = nn.Sequential(nn.Conv2d(chans[-1], cfg.identity_dim, self.bottom), nn.Tanh())

    def forward(self, still: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """still (B, 3, H, W) → latent (B, identity_dim), skips [(B, C_i, H/2^(i+1), W/2^(i+1))]."""
        skips, x = [], still
        for block in self.blocks:
            x = block(x)
            skips.append(x)
        return self.to_latent(x).flatten(1), skips


class ContextEncoder(nn.Module):
    """Raw audio windows → content per frame: 1-D convs on each 0.2 s window, then a 2-layer GRU over frames."""

    def __init__(self, cfg: Config):
        super().__init__()
        c = cfg.audio_channels
        # First layer: 250-sample kernels with stride 50 (15.6 ms / 3.1 ms), then stride-2 convs to a short map.
        layers = [nn.Conv1d(1, c[0], 250, stride=50, padding=100, bias=False), nn.BatchNorm1d(c[0]), nn.ReLU(inplace=True)]
        for a, b in zip(c, c[1:]):
            layers += [nn.Conv1d(a, b, 4, stride=2, padding=1, bias=False), nn.BatchNorm1d(b), nn.ReLU(inplace=True)]
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            length = self.convs.eval()(torch.zeros(1, 1, cfg.audio_window)).shape[-1]
        self.convs.train()
        self.fc = nn.Linear(c[-1] * length, cfg.content_dim)
        self.rnn = nn.GRU(cfg.content_dim, cfg.content_dim, num_layers=2, batch_first=True)

    def forward(self, audio: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """audio (B, T, window) → content (B, T, content_dim), GRU state (2, B, content_dim)."""
        B, T, L = audio.shape
        x = self.convs(audio.reshape(B * T, 1, L)).flatten(1)        # (B·T, C·l)
        x = F.relu(self.fc(x)).view(B, T, -1)                         # (B, T, content_dim)
        return self.rnn(x, state)


class NoiseGenerator(nn.Module):
    """Gaussian noise per frame → a 1-layer GRU: temporally coherent randomness (blinks, small motions)."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.rnn = nn.GRU(cfg.noise_dim, cfg.noise_dim, batch_first=True)

    def forward(self, noise: torch.Tensor, state: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """noise (B, T, noise_dim) → (B, T, noise_dim), state (1, B, noise_dim)."""
        return self.rnn(noise, state)


class FrameDecoder(nn.Module):
    """[identity, content, noise] per frame → frame, a U-Net decoder fed the identity encoder's skips."""

    def __init__(self, cfg: Config):
        super().__init__()
        enc = cfg.enc_channels
        depth = len(enc)
        self.bottom = (cfg.height >> depth, cfg.width >> depth)
        latent = cfg.identity_dim + cfg.content_dim + cfg.noise_dim
        self.project = nn.Sequential(nn.ConvTranspose2d(latent, enc[-1], self.bottom, bias=False), nn.BatchNorm2d(enc[-1]),
                                     nn.ReLU(inplace=True))
        # Up block i takes [x, skip_i] and doubles the size: enc[-1] … enc[0], then to RGB at full size.
        ups = []
        c_in = enc[-1]
        for i in reversed(range(depth)):
            c_out = enc[i - 1] if i > 0 else enc[0]
            ups.append(nn.Sequential(nn.ConvTranspose2d(c_in + enc[i], c_out, 4, stride=2, padding=1, bias=False),
                                     nn.BatchNorm2d(c_out), nn.ReLU(inplace=True)))
            c_in = c_out
        self.ups = nn.ModuleList(ups)
        self.to_rgb = nn.Sequential(nn.Conv2d(c_in, 3, 3, padding=1), nn.Tanh())

    def forward(self, latent: torch.Tensor, skips: list[torch.Tensor]) -> torch.Tensor:
        """latent (N, L) with skips [(N, C_i, …)] → frames (N, 3, H, W) in [-1, 1]."""
        x = self.project(latent[:, :, None, None])                    # (N, C, h, w)
        for up, skip in zip(self.ups, reversed(skips)):
            x = up(torch.cat([x, skip], 1))
        return self.to_rgb(x)


@dataclass
class GeneratorState:
    """What carries over between chunks of one generation: GRU states and the frame counter for the noise."""

    content: torch.Tensor | None = None
    noise: torch.Tensor | None = None
    frame: int = 0
    identity: tuple[torch.Tensor, list[torch.Tensor]] | None = field(default=None, repr=False)


class Generator(nn.Module):
    """The SDA generator: still frame + raw audio windows (+ noise) → video."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.identity_encoder = IdentityEncoder(cfg)
        self.context_encoder = ContextEncoder(cfg)
        self.noise_generator = NoiseGenerator(cfg)
        self.decoder = FrameDecoder(cfg)

    def draw_noise(self, batch: int, first: int, n: int, *, seed: int | None, device) -> torch.Tensor:
        """Noise for frames first … first+n-1, (B, n, noise_dim): frame t's noise depends on (seed, t) only, so
        chunks of any size draw the same noise. ``seed=None`` draws from torch's global generator."""
        cfg = self.cfg
        if seed is None:
            return torch.randn(batch, n, cfg.noise_dim, device=device) * cfg.noise_std
        out = torch.empty(batch, n, cfg.noise_dim)
        for t in range(n):
            g = torch.Generator().manual_seed(seed * 1_000_003 + first + t)
            out[:, t] = torch.randn(batch, cfg.noise_dim, generator=g)
        return (out * cfg.noise_std).to(device)

    def forward(
        self,
        still: torch.Tensor,
        audio: torch.Tensor,
        *,
        noise: torch.Tensor | None = None,
        state: GeneratorState | None = None,
        seed: int | None = None,
    ) -> tuple[torch.Tensor, GeneratorState]:
        """Frames for the audio windows.

        Args:
            still: (B, 3, H, W) in [-1, 1], the identity frame.
            audio: (B, T, audio_window) raw audio, float in [-1, 1], window t centred on frame t.
            noise: (B, T, noise_dim) to use instead of drawing it.
            state: the state returned by the previous chunk (None for the first).
            seed: draw the noise per frame from this seed (reproducible and chunk-invariant); None: torch's RNG.
        Returns:
            frames (B, T, 3, H, W) in [-1, 1], the state after the last frame.
        """
        cfg = self.cfg
        _check_shape(still, (None, 3, cfg.height, cfg.width), "still frame")
        _check_shape(audio, (still.shape[0], None, cfg.audio_window), "audio windows")
        B, T, _ = audio.shape
        state = state or GeneratorState()
        identity = state.identity if state.identity is not None else self.identity_encoder(still)
        id_latent, skips = identity                                   # (B, I), [(B, C, h, w)]
        content, content_state = self.context_encoder(audio, state.content)            # (B, T, 256)
        if noise is None:
            noise = self.draw_noise(B, state.frame, T, seed=seed, device=audio.device)
        noise, noise_state = self.noise_generator(noise, state.noise)                  # (B, T, 10)
        latent = torch.cat([id_latent[:, None].expand(B, T, -1), content, noise], -1)  # (B, T, L)
        # Every frame decoded against the same skips: fold T into the batch.
        skips_bt = [s[:, None].expand(B, T, *s.shape[1:]).reshape(B * T, *s.shape[1:]) for s in skips]
        frames = self.decoder(latent.reshape(B * T, -1), skips_bt).view(B, T, 3, cfg.height, cfg.width)
        return frames, GeneratorState(content_state, noise_state, state.frame + T, identity)


# --------------------------------------------------------------------------- discriminators


class _FrameCNN(nn.Module):
    """Stride-2 convs (no normalisation) down to a small map, flattened: (N, C_in, H, W) → (N, features)."""

    def __init__(self, c_in: int, channels: tuple[int, ...], height: int, width: int):
        super().__init__()
        chans = (c_in, *channels)
        self.convs = nn.Sequential(*[_down(a, b, norm=False) for a, b in zip(chans, chans[1:])])
        self.features = chans[-1] * (height >> len(channels)) * (width >> len(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.convs(x).flatten(1)


class FrameDiscriminator(nn.Module):
    """Is this frame real, and the still frame's person? 6 layers: the frame beside the still frame (6 channels),
    ``len(d_channels)`` stride-2 convs and a last conv over the remaining map to one logit."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cnn = _FrameCNN(6, cfg.d_channels, cfg.height, cfg.width)
        self.out = nn.Linear(self.cnn.features, 1)

    def forward(self, frames: torch.Tensor, still: torch.Tensor) -> torch.Tensor:
        """frames (N, 3, H, W), still (N, 3, H, W) → logits (N,)."""
        return self.out(self.cnn(torch.cat([frames, still], 1))).squeeze(1)


class _AudioCNN(nn.Module):
    """A small 1-D CNN per raw audio window: (N, window) → (N, dim). Used by the discriminators."""

    def __init__(self, cfg: Config, dim: int):
        super().__init__()
        c = cfg.audio_channels
        layers = [nn.Conv1d(1, c[0], 250, stride=50, padding=100), nn.LeakyReLU(0.2, inplace=True)]
        for a, b in zip(c, c[1:]):
            layers += [nn.Conv1d(a, b, 4, stride=2, padding=1), nn.LeakyReLU(0.2, inplace=True)]
        self.convs = nn.Sequential(*layers)
        with torch.no_grad():
            length = self.convs(torch.zeros(1, 1, cfg.audio_window)).shape[-1]
        self.fc = nn.Linear(c[-1] * length, dim)

    def forward(self, audio: torch.Tensor) -> torch.Tensor:
        return self.fc(self.convs(audio[:, None]).flatten(1))


class SequenceDiscriminator(nn.Module):
    """Is this a real video for this audio? A CNN per frame and an audio encoding per frame into a 2-layer GRU;
    a 2-layer classifier on the last state."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cnn = _FrameCNN(3, cfg.d_channels, cfg.height, cfg.width)
        self.frame_fc = nn.Linear(self.cnn.features, cfg.seq_hidden)
        self.audio = _AudioCNN(cfg, cfg.seq_hidden // 2)
        self.rnn = nn.GRU(cfg.seq_hidden + cfg.seq_hidden // 2, cfg.seq_hidden, num_layers=2, batch_first=True)
        self.classifier = nn.Sequential(nn.Linear(cfg.seq_hidden, cfg.seq_hidden // 2), nn.LeakyReLU(0.2, inplace=True),
                                        nn.Linear(cfg.seq_hidden // 2, 1))

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """frames (B, T, 3, H, W), audio (B, T, window) → logits (B,)."""
        B, T = frames.shape[:2]
        v = F.leaky_relu(self.frame_fc(self.cnn(frames.flatten(0, 1))), 0.2).view(B, T, -1)   # (B, T, H)
        a = self.audio(audio.flatten(0, 1)).view(B, T, -1)                                     # (B, T, H/2)
        out, _ = self.rnn(torch.cat([v, a], -1))
        return self.classifier(out[:, -1]).squeeze(1)


class SpatioTemporalSequenceDiscriminator(nn.Module):
    """The journal version's sequence discriminator (IJCV 2019, ``seq_disc="ijcv"``): at every time step
    spatio-temporal convolutions extract transient features (how the face moves), a 1-layer GRU runs over them
    and a single-layer classifier on the last state judges the whole sequence. No audio: in that version
    synchronisation is the sync discriminator's job and this one judges expressions (blinks, brows).

    Ours: one (3 × 4 × 4) conv per ``d_channels`` entry, stride 1 in time with padding 1 (one feature map per
    frame, each seeing its neighbours: the first layer alone can take frame differences), stride 2 in space.
    """

    def __init__(self, cfg: Config):
        super().__init__()
        chans = (3, *cfg.d_channels)
        self.convs = nn.Sequential(*[
            layer for a, b in zip(chans, chans[1:])
            for layer in (nn.Conv3d(a, b, (3, 4, 4), stride=(1, 2, 2), padding=(1, 1, 1)), nn.LeakyReLU(0.2, inplace=True))])
        depth = len(cfg.d_channels)
        self.frame_fc = nn.Linear(chans[-1] * (cfg.height >> depth) * (cfg.width >> depth), cfg.seq_hidden)
        self.rnn = nn.GRU(cfg.seq_hidden, cfg.seq_hidden, num_layers=1, batch_first=True)
        self.classifier = nn.Linear(cfg.seq_hidden, 1)

    def forward(self, frames: torch.Tensor, audio: torch.Tensor | None = None) -> torch.Tensor:
        """frames (B, T, 3, H, W) (audio accepted and ignored, for the same call as the BMVC one) → logits (B,)."""
        x = self.convs(frames.transpose(1, 2))                                   # (B, C, T, h, w)
        x = x.transpose(1, 2).flatten(2)                                         # (B, T, C·h·w)
        out, _ = self.rnn(F.leaky_relu(self.frame_fc(x), 0.2))
        return self.classifier(out[:, -1]).squeeze(1)


class SyncDiscriminator(nn.Module):
    """Are these 0.2 s of mouth and these 0.2 s of audio in sync? (IJCV 2019.)

    The lower half of ``sync_frames`` frames (stacked as channels) and the audio of the snippet's centre frame
    are embedded; the squared distance between the embeddings goes through a one-unit classifier
    (logit = b − w·d, w > 0), so near embeddings mean "in sync"."""

    def __init__(self, cfg: Config):
        super().__init__()
        self.cfg = cfg
        self.video = _FrameCNN(3 * cfg.sync_frames, cfg.d_channels[:-1], cfg.height // 2, cfg.width)
        self.video_fc = nn.Linear(self.video.features, cfg.sync_dim)
        self.audio = _AudioCNN(cfg, cfg.sync_dim)
        self.log_scale = nn.Parameter(torch.zeros(()))
        self.bias = nn.Parameter(torch.full((), 2.0))  # unrelated unit vectors are ~√2 apart (d ≈ 2): logit ≈ 0

    def embed(self, frames: torch.Tensor, audio: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """frames (N, sync_frames, 3, H, W), audio (N, window) → video and audio embeddings (N, sync_dim)."""
        lower = frames[..., self.cfg.height // 2 :, :].flatten(1, 2)                 # (N, 3·F, H/2, W)
        return self.video_fc(self.video(lower)), self.audio(audio)

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        """frames (N, sync_frames, 3, H, W), audio (N, window) → logits (N,)."""
        v, a = self.embed(frames, audio)
        distance = (F.normalize(v, dim=1) - F.normalize(a, dim=1)).pow(2).sum(1)      # in [0, 4]
        return self.bias - self.log_scale.exp() * distance


# --------------------------------------------------------------------------- losses and training


def lower_half_l1(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """Mean absolute error over the lower half of the face (mouth and jaw): (…, 3, H, W) → scalar."""
    h = fake.shape[-2] // 2
    return (fake[..., h:, :] - real[..., h:, :]).abs().mean()


def noise_sensitivity(G: Generator, still: torch.Tensor, audio: torch.Tensor, fake: torch.Tensor,
                      noise: torch.Tensor) -> torch.Tensor:
    """How much the frames change per unit of change in the noise: the same still frame and audio with a second
    noise draw, mean |frames_1 - frames_2| / mean |noise_1 - noise_2| (Yang et al., "Diversity-Sensitive
    Conditional Generative Adversarial Networks", ICLR 2019). Near 0 when the generator ignores its noise."""
    other = G.draw_noise(noise.shape[0], 0, noise.shape[1], seed=None, device=noise.device)
    fake_2, _ = G(still, audio, noise=other)
    return (fake - fake_2).abs().mean() / (noise - other).abs().mean()


def _bce(logits: torch.Tensor, real: bool) -> torch.Tensor:
    return F.binary_cross_entropy_with_logits(logits, torch.full_like(logits, float(real)))


def _snippets(video: torch.Tensor, audio: torch.Tensor, starts: torch.Tensor, audio_offset: torch.Tensor | int, n: int):
    """Sync snippets: frames start … start+n-1 of each sequence and the audio window of its centre frame,
    shifted by ``audio_offset`` frames. video (B, T, 3, H, W), audio (B, T, L) → (B, n, 3, H, W), (B, L)."""
    B = video.shape[0]
    rows = torch.arange(B, device=video.device)
    idx = starts[:, None] + torch.arange(n, device=video.device)                 # (B, n)
    frames = video[rows[:, None], idx]                                           # (B, n, 3, H, W)
    centre = (starts + n // 2 + audio_offset).clamp(0, audio.shape[1] - 1)
    return frames, audio[rows, centre]


def sequence_discriminator(cfg: Config) -> nn.Module:
    """The sequence discriminator ``cfg.seq_disc`` names: "bmvc" (the conference paper's, the default) or "ijcv"."""
    kinds = {"bmvc": SequenceDiscriminator, "ijcv": SpatioTemporalSequenceDiscriminator}
    if cfg.seq_disc not in kinds:
        raise ValueError(f"unknown sequence discriminator {cfg.seq_disc!r}: seq_disc must be one of {', '.join(kinds)}")
    return kinds[cfg.seq_disc](cfg)


def build_nets(cfg: Config) -> dict[str, nn.Module]:
    """The generator and the discriminators ``cfg.discriminators`` names: {"G", "D_frame", "D_seq", "D_sync"}."""
    nets: dict[str, nn.Module] = {"G": Generator(cfg)}
    makers = {"frame": FrameDiscriminator, "seq": sequence_discriminator, "sync": SyncDiscriminator}
    for name in cfg.discriminators:
        if name not in makers:
            raise ValueError(f"unknown discriminator {name!r}: use any of {', '.join(makers)}")
        nets[f"D_{name}"] = makers[name](cfg)
    return nets


def build_optimizers(nets: dict[str, nn.Module], cfg: Config) -> dict[str, torch.optim.Optimizer]:
    """Adam per network with the papers' learning rates: {"G", "D"} — all discriminators in one optimiser with a
    parameter group (and learning rate) each."""
    opts = {"G": torch.optim.Adam(nets["G"].parameters(), lr=cfg.lr_G, betas=cfg.betas)}
    lrs = {"D_frame": cfg.lr_frame, "D_seq": cfg.lr_seq, "D_sync": cfg.lr_sync}
    groups = [{"params": list(nets[k].parameters()), "lr": lr, "name": k} for k, lr in lrs.items() if k in nets]
    if groups:
        opts["D"] = torch.optim.Adam(groups, lr=cfg.lr_G, betas=cfg.betas)
    return opts


class SDATask:
    """SDA for ``talkinghead.training.fit``: the networks, optimisers, phases (D then G) and their losses.

    Each training step generates the batch's windows once (cached for the step); the D phase scores them
    detached, the G phase backpropagates through the same graph after the discriminators' update.
    """

    generator = "G"

    def __init__(self, cfg: Config):
        self.cfg = cfg

    # -- what fit() asks for

    @property
    def phases(self):
        from talkinghead.training import Phase

        phases = [Phase("G", optimizer="G", nets=("G",))]
        if self.cfg.discriminators:
            d_nets = tuple(f"D_{n}" for n in self.cfg.discriminators)
            phases.insert(0, Phase("D", optimizer="D", nets=d_nets))
        return tuple(phases)

    def build_nets(self) -> dict[str, nn.Module]:
        return build_nets(self.cfg)

    def build_optimizers(self, nets: dict[str, nn.Module]) -> dict[str, torch.optim.Optimizer]:
        return build_optimizers(nets, self.cfg)

    def dataset(self, data, split: str, *, seed: int = 0):
        """Windows of ``cfg.T`` frames with raw audio and a random identity frame of the same speaker."""
        from talkinghead.data.datasets import WindowDataset

        ds = WindowDataset(data, split, T=self.cfg.T, features="raw", identity="random", seed=seed)
        size = ds.data.meta["size"]
        if (size, size) != (self.cfg.height, self.cfg.width):
            from talkinghead.io import InputError

            raise InputError(f"{ds.data.root} has {size}×{size} crops but the {self.cfg.name!r} preset makes "
                             f"{self.cfg.width}×{self.cfg.height} frames: prepare with --size {self.cfg.height} or pick another preset")
        return ds

    def loss(self, phase: str, batch: dict, nets: dict[str, nn.Module], cache: dict) -> tuple[torch.Tensor, dict[str, float]]:
        """The loss of one phase ("D" or "G") on one batch; ``cache`` lives for one step of one batch."""
        cfg = self.cfg
        still, real, audio = batch["identity"], batch["video"], batch["audio"]   # (B,3,H,W), (B,T,3,H,W), (B,T,L)
        if "fake" not in cache:
            if cfg.w_div:   # the noise drawn explicitly, so a second draw can be compared with it
                cache["noise"] = nets["G"].draw_noise(real.shape[0], 0, real.shape[1], seed=None, device=real.device)
            cache["fake"], _ = nets["G"](still, audio, noise=cache.get("noise"))
            B, T = real.shape[:2]
            n = min(cfg.sync_frames, T)
            cache["sync_start"] = torch.randint(0, T - n + 1, (B,), device=real.device)
            # Out-of-sync: the audio of another window of the same clip, 2 … max_shift frames away.
            shift = torch.randint(2, cfg.sync_max_shift + 1, (B,), device=real.device)
            cache["sync_shift"] = shift * (torch.randint(0, 2, (B,), device=real.device) * 2 - 1)
            cache["frame_pick"] = torch.randint(0, T, (B,), device=real.device)
        fake = cache["fake"]
        rows = torch.arange(real.shape[0], device=real.device)
        pick = cache["frame_pick"]
        n = min(cfg.sync_frames, real.shape[1])
        logs: dict[str, float] = {}
        if phase == "D":
            fake = fake.detach()
            total = real.new_zeros(())
            if "D_frame" in nets:
                d = nets["D_frame"]
                loss = _bce(d(real[rows, pick], still), True) + _bce(d(fake[rows, pick], still), False)
                logs["D_frame"] = loss.item()
                total = total + loss
            if "D_seq" in nets:
                d = nets["D_seq"]
                loss = _bce(d(real, audio), True) + _bce(d(fake, audio), False)
                logs["D_seq"] = loss.item()
                total = total + loss
            if "D_sync" in nets:
                d, start, shift = nets["D_sync"], cache["sync_start"], cache["sync_shift"]
                in_sync = d(*_snippets(real, audio, start, 0, n))
                off_sync = d(*_snippets(real, audio, start, shift, n))
                generated = d(*_snippets(fake, audio, start, 0, n))
                loss = _bce(in_sync, True) + 0.5 * (_bce(off_sync, False) + _bce(generated, False))
                logs["D_sync"] = loss.item()
                total = total + loss
            return total, logs
        if phase != "G":
            raise ValueError(f"unknown phase {phase!r}: SDA has phases D and G")
        l1 = lower_half_l1(fake, real)
        total = cfg.w_l1 * l1
        logs["L1"] = l1.item()
        if "D_frame" in nets:
            adv = _bce(nets["D_frame"](fake[rows, pick], still), True)
            logs["G_frame"] = adv.item()
            total = total + cfg.w_frame * adv
        if "D_seq" in nets:
            adv = _bce(nets["D_seq"](fake, audio), True)
            logs["G_seq"] = adv.item()
            total = total + cfg.w_seq * adv
        if "D_sync" in nets:
            adv = _bce(nets["D_sync"](*_snippets(fake, audio, cache["sync_start"], 0, n)), True)
            logs["G_sync"] = adv.item()
            total = total + cfg.w_sync * adv
        if cfg.w_div:
            ratio = noise_sensitivity(nets["G"], still, audio, fake, cache["noise"])
            logs["div"] = ratio.item()
            total = total - cfg.w_div * ratio.clamp(max=cfg.div_clip)
        return total, logs

    def samples(self, G: Generator, batch: dict, *, seed: int = 0) -> torch.Tensor:
        """Generated windows for a batch, (B, T, 3, H, W), for sample videos."""
        with torch.no_grad():
            return G(batch["identity"], batch["audio"], seed=seed)[0]

    def system(self, G: Generator, *, seed: int = 0, chunk: int = 75):
        """The generator as an evaluation ``System``: (identity uint8 (S,S,3), audio float (N,), n_frames) → uint8."""
        def run(identity: np.ndarray, audio: np.ndarray, n_frames: int) -> np.ndarray:
            return generate(G, identity, audio, n_frames=n_frames, seed=seed, chunk=chunk)

        return run


def train_step(batch: dict, nets: dict[str, nn.Module], opts: dict[str, torch.optim.Optimizer], cfg: Config) -> dict[str, float]:
    """One plain training step (D phase, then G phase) without ``fit``'s machinery: for notebooks and tests."""
    task, cache, logs = SDATask(cfg), {}, {}
    for phase in task.phases:
        params = [p for name in phase.nets for p in nets[name].parameters()]
        loss, phase_logs = task.loss(phase.name, batch, nets, cache)
        opts[phase.optimizer].zero_grad(set_to_none=True)
        loss.backward(inputs=params)
        opts[phase.optimizer].step()
        logs.update(phase_logs)
    return logs


# --------------------------------------------------------------------------- inference


def _to_tensor_image(image: np.ndarray | torch.Tensor, device) -> torch.Tensor:
    """uint8 (H, W, 3) or float (3, H, W) in [-1, 1] → (1, 3, H, W) float on device."""
    if isinstance(image, np.ndarray):
        if image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"identity image must be uint8 (H, W, 3), got {image.dtype} {image.shape}")
        image = torch.from_numpy(np.array(image)).permute(2, 0, 1).float() / 127.5 - 1
    return image.to(device)[None] if image.ndim == 3 else image.to(device)


@torch.no_grad()
def stream(
    G: Generator,
    identity: np.ndarray | torch.Tensor,
    audio: np.ndarray,
    *,
    n_frames: int | None = None,
    seed: int = 0,
    chunk: int = 75,
) -> Iterator[torch.Tensor]:
    """Frames for a whole clip, ``chunk`` frames at a time (bounded memory), GRU states carried between chunks.

    Args:
        G: the generator (eval mode is the caller's choice; ``generate`` uses whatever mode G is in).
        identity: the still frame, uint8 (H, W, 3) or float (3, H, W) in [-1, 1], aligned like the training crops.
        audio: mono float waveform (N,) at ``cfg.sr``.
        n_frames: frames to make (default: the audio's length at ``cfg.fps``).
        seed: the noise seed; the same seed gives the same frames for any ``chunk``.
    Yields:
        (n, 3, H, W) float frames in [-1, 1], n ≤ chunk.
    """
    from talkinghead.audio.features import FeatureConfig, frame_windows

    cfg = G.cfg
    device = next(G.parameters()).device
    still = _to_tensor_image(identity, device)
    feature_cfg = FeatureConfig(sr=cfg.sr, fps=cfg.fps, window_seconds=cfg.audio_window / cfg.sr)
    windows = frame_windows(np.asarray(audio, dtype=np.float32), cfg=feature_cfg, n_frames=n_frames)  # (T, L)
    state = None
    for first in range(0, len(windows), chunk):
        part = torch.from_numpy(windows[first : first + chunk]).to(device)[None]            # (1, n, L)
        frames, state = G(still, part, state=state, seed=seed)
        yield frames[0]


def generate(
    G: Generator,
    identity: np.ndarray | torch.Tensor,
    audio: np.ndarray,
    *,
    n_frames: int | None = None,
    seed: int = 0,
    chunk: int = 75,
) -> np.ndarray:
    """All frames of ``stream`` as uint8 (T, H, W, 3)."""
    parts = [((f.permute(0, 2, 3, 1) + 1) * 127.5).round().clamp(0, 255).to(torch.uint8).cpu().numpy()
             for f in stream(G, identity, audio, n_frames=n_frames, seed=seed, chunk=chunk)]
    return np.concatenate(parts) if parts else np.zeros((0, G.cfg.height, G.cfg.width, 3), np.uint8)


# --------------------------------------------------------------------------- diagnostics: why it does (not) blink


def noise_effect(G: Generator, corpus, split: str = "val", *, clips: int = 8, seeds: tuple[int, int] = (1, 2)) -> dict:
    """How much the noise changes the video: each of the first ``clips`` clips of ``split`` generated with two
    noise seeds from the same identity frame and audio; mean |difference| in grey levels (0–255) over the upper
    half of the crop (eyes, brows: where blinks live) and the lower half, and the largest per-clip mean of the
    upper half. The real frames' own change over time in the upper half (mean |frame_t − frame_0|: head motion,
    blinks, brows) is the scale a blink needs; the generated frames' (first seed) is set beside it. A generator
    that ignores its noise scores ≈ 0 (it cannot blink at random).

    Returns:
        {"clips", "upper", "lower", "upper_max", "real_upper_motion", "upper_motion"} in grey levels.
    """
    upper, lower, motion, own = [], [], [], []
    for clip in corpus.clips(split)[:clips]:
        real = np.asarray(corpus.clip_frames(clip))
        audio = corpus.clip_audio(clip)
        a, b = (generate(G, real[0], audio, n_frames=len(real), seed=s).astype(np.float32) for s in seeds)
        half = G.cfg.height // 2
        upper.append(float(np.abs(a[:, :half] - b[:, :half]).mean()))
        lower.append(float(np.abs(a[:, half:] - b[:, half:]).mean()))
        motion.append(float(np.abs(real[1:, :half].astype(np.float32) - real[:1, :half]).mean()))
        own.append(float(np.abs(a[1:, :half] - a[:1, :half]).mean()))
    return {"clips": len(upper), "upper": float(np.mean(upper)), "lower": float(np.mean(lower)),
            "upper_max": float(np.max(upper)), "real_upper_motion": float(np.mean(motion)),
            "upper_motion": float(np.mean(own))}


def blink_response(G: Generator, D_seq: nn.Module, corpus, split: str = "val", *, windows: int = 16) -> dict:
    """Does the sequence discriminator hold the missing blinks against the generator?

    For up to ``windows`` clips of ``split`` with a blink (the corpus's exact per-frame labels, SynthGRID's
    ``truth.npz``), a window of ``cfg.T`` frames around the clip's first blink is scored by ``D_seq`` four ways:
    as recorded; with the blinks taken out (each blinking frame's upper half replaced by that of the last open-eye
    frame before it); frozen (its first frame repeated); and as the generator makes it from the clip's first frame
    and the window's audio. The gradient of the last score with respect to the generated frames is where D pushes
    G: its share on a band of rows around the eyes (the exact eye landmarks ± 4 px) is set beside the band's share
    of the image.

    Returns:
        {"windows", "real", "deblinked", "static", "generated"} mean logits; "blink_worth" = mean(real −
        deblinked), what a blink is worth to D; "gap" = mean(real − generated), what D holds against G;
        "eye_grad_share" and "eye_area_share".
    """
    from talkinghead.audio.features import FeatureConfig, frame_windows

    cfg = G.cfg
    T, half, device = cfg.T, cfg.height // 2, next(G.parameters()).device
    if corpus.truth is None or "blink" not in corpus.truth:
        raise ValueError(f"{corpus.root} has no blink labels (truth.npz): blink_response needs a SynthGRID corpus")
    fcfg = FeatureConfig(sr=cfg.sr, fps=cfg.fps, window_seconds=cfg.audio_window / cfg.sr)

    def to_tensor(video: np.ndarray) -> torch.Tensor:                  # (T, H, W, 3) uint8 → (1, T, 3, H, W)
        return (torch.from_numpy(np.array(video)).permute(0, 3, 1, 2).float() / 127.5 - 1)[None].to(device)

    rows: dict[str, list[float]] = {"real": [], "deblinked": [], "static": [], "generated": [], "eye_grad_share": [],
                                    "eye_area_share": []}
    for clip in corpus.clips(split):
        flags = corpus.truth["blink"][clip["frame_start"] : clip["frame_start"] + clip["n_frames"]]
        first = int(np.argmax(flags))
        if len(flags) < T or not flags.any() or first == 0:
            continue
        start = min(max(first - T // 2, 0), len(flags) - T)            # < first: the window opens with eyes open
        real = np.asarray(corpus.clip_frames(clip))
        video, deblinked = real[start : start + T], real[start : start + T].copy()
        last_open = start
        for t in range(T):
            if flags[start + t]:
                deblinked[t, :half] = real[last_open, :half]
            else:
                last_open = start + t
        audio = frame_windows(corpus.clip_audio(clip), cfg=fcfg, n_frames=len(real))[start : start + T]
        audio = torch.from_numpy(np.array(audio))[None].to(device)
        with torch.no_grad():
            rows["real"].append(float(D_seq(to_tensor(video), audio)))
            rows["deblinked"].append(float(D_seq(to_tensor(deblinked), audio)))
            rows["static"].append(float(D_seq(to_tensor(video[:1].repeat(T, 0)), audio)))
            fake, _ = G(_to_tensor_image(real[0], device), audio, seed=0)
        fake = fake.detach().requires_grad_(True)
        logit = D_seq(fake, audio)
        rows["generated"].append(float(logit.detach()))
        grad = torch.autograd.grad(logit.sum(), fake)[0].abs().sum((0, 1, 2, 4))               # (H,) per row
        eyes = np.asarray(corpus.clip_landmarks(clip))[start : start + T, 36:48, 1]
        top, bottom = max(int(eyes.min()) - 4, 0), min(int(np.ceil(eyes.max())) + 5, cfg.height)
        rows["eye_grad_share"].append(float(grad[top:bottom].sum() / grad.sum()))
        rows["eye_area_share"].append((bottom - top) / cfg.height)
        if len(rows["real"]) == windows:
            break
    if not rows["real"]:
        raise ValueError(f"no clip of the {split!r} split has a blink after its first frame and {T} frames")
    out = {"windows": len(rows["real"]), **{k: float(np.mean(v)) for k, v in rows.items()}}
    out["blink_worth"] = float(np.mean(np.subtract(rows["real"], rows["deblinked"])))
    out["gap"] = float(np.mean(np.subtract(rows["real"], rows["generated"])))
    return out


class _LowPass(nn.Module):
    """A discriminator that sees its frames average-pooled by ``k`` and scaled back (k = 1: as they are)."""

    def __init__(self, D: nn.Module, k: int):
        super().__init__()
        self.D, self.k = D, k

    def forward(self, frames: torch.Tensor, audio: torch.Tensor) -> torch.Tensor:
        if self.k > 1:
            x = F.avg_pool2d(frames.flatten(0, 1), self.k)
            frames = F.interpolate(x, scale_factor=self.k, mode="bilinear", align_corners=False).view(frames.shape)
        return self.D(frames, audio)


def probe_sequence_discriminator(G: Generator, corpus, split: str = "val", *, steps: int = 400, lowpass: int = 1,
                                 batch_size: int = 2, lr: float = 2e-4, windows: int = 16, seed: int = 0,
                                 kind: str | None = None) -> dict:
    """What a sequence discriminator learns to hold against a frozen generator: a fresh sequence discriminator of
    ``kind`` ("bmvc" or "ijcv"; default G's ``cfg.seq_disc``), seeded, trained ``steps`` steps on real training
    windows of ``cfg.T`` frames against G's windows from the same identity frames and audio (G in its current
    mode, no gradient), optionally on frames low-passed by ``lowpass`` (average pooling, then bilinear back up),
    then asked ``blink_response`` on ``split``.

    Returns:
        {"steps", "lowpass", "kind", "d_loss" (mean of the last 50 steps), **blink_response}.
    """
    cfg = G.cfg
    torch.manual_seed(seed)
    D = _LowPass(sequence_discriminator(replace(cfg, seq_disc=kind or cfg.seq_disc)), lowpass)
    opt = torch.optim.Adam(D.parameters(), lr=lr, betas=cfg.betas)
    dataset = SDATask(cfg).dataset(corpus, "train", seed=seed)
    pick = torch.Generator().manual_seed(seed)
    losses = []
    for _ in range(steps):
        batch = dataset[torch.randint(len(dataset), (batch_size,), generator=pick).tolist()]   # one batch, built whole
        still, real, audio = batch["identity"], batch["video"], batch["audio"]
        with torch.no_grad():
            fake, _ = G(still, audio)
        loss = _bce(D(real, audio), True) + _bce(D(fake, audio), False)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    return {"steps": steps, "lowpass": lowpass, "kind": kind or cfg.seq_disc, "d_loss": float(np.mean(losses[-50:])),
            **blink_response(G, D, corpus, split, windows=windows)}


# --------------------------------------------------------------------------- weights and command line


def load_run(run, *, device=None) -> dict[str, nn.Module]:
    """Every network of a training run's checkpoint (a run folder: its latest; or a checkpoint folder), rebuilt
    from the config it records: {"G", "D_frame", …, "G_ema"}, in eval mode. For diagnostics such as
    ``blink_response``; what ships is ``load_generator``'s EMA generator."""
    from talkinghead.training.checkpoint import load_nets, resolve_checkpoint
    from talkinghead.training.ema import EMA

    path = resolve_checkpoint(run)
    cfg = Config.from_dict(json.loads((path / "state.json").read_text())["config"])
    nets = build_nets(cfg)
    ema = EMA(nets["G"])
    load_nets(path, nets=nets, ema=ema)
    nets["G_ema"] = ema.model
    return {k: v.eval().to(device or "cpu") for k, v in nets.items()}


def load_generator(name: str = WEIGHTS_NAME, *, root=None, device=None) -> Generator:
    """The shipped EMA generator (``weights/`` first, then the Hub; see ``talkinghead.hub``), in eval mode.

    The manifest entry's ``config_dict`` rebuilds the exact config; every tensor's name and shape is checked.
    """
    from talkinghead.hub import WeightsError, load_state_strict, load_weights, read_manifest, weights_path

    path = weights_path(name, root=root)
    entry = read_manifest(path.parent).get(path.name) or {}
    if "config_dict" not in entry:
        raise WeightsError(f"{path} has no manifest entry with its 'config_dict': ship it with "
                           "`python -m talkinghead train sda … --ship NAME`")
    G = Generator(Config.from_dict(entry["config_dict"]))
    load_state_strict(G, load_weights(str(path)), problem=f"{path} does not fit its config", fix="download or ship it again")
    return G.eval().to(device or "cpu")


def _ship(result, args, cfg: Config) -> None:
    """Measure the EMA generator on the test split beside the baselines and write it to weights/ (fp16)."""
    from talkinghead.data.prepare import PreparedCorpus
    from talkinghead.hub import save_weights
    from talkinghead.metrics.evaluate import evaluate, from_system, markdown_table, means_table, write_report
    from talkinghead.training.cli import run_record, total_steps

    G = result.nets["G_ema"].cpu().eval()
    task = SDATask(cfg)
    corpus = PreparedCorpus.open(args.data)
    report = evaluate(corpus, split="test", systems={"sda": from_system(task.system(G))})
    write_report(report, result.out / "eval_test")
    print(markdown_table(report))
    table = means_table(report)
    speakers = {split: sorted({c["speaker"] for c in corpus.clips(split)}) for split in ("train", "val", "test")}
    path = save_weights(
        G.state_dict(), args.ship, config=cfg.name, config_dict=cfg.to_dict(),
        steps=total_steps(result.step, result.init_from),
        data=f"{corpus.root.name}: train speakers {speakers['train']}, measured on test speakers {speakers['test']} ({report['n_clips']} clips)",
        metrics={"test": table},
        training=run_record(result, args),
    )
    print(f"shipped {path} ({path.stat().st_size / 1e6:.2f} MB)")


def add_train_sda_parser(sub) -> None:
    """Add ``sda`` to ``python -m talkinghead train``."""
    from talkinghead.training.cli import add_fit_parser

    add_fit_parser(sub, "sda", help="train the Temporal GAN (SDA/RSDGAN) on a prepared corpus", config_type=Config,
                   make_task=SDATask, ship=_ship)
