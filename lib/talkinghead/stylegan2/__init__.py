"""StyleGAN2 (Karras et al., CVPR 2020): networks with the official parameter names, custom ops with CUDA kernels and
PyTorch references, the losses, and a safe converter for NVIDIA's network pickles. See docs/STYLEGAN2.md."""
from talkinghead.stylegan2.networks import PRESETS, Config, Discriminator, Generator

__all__ = ["Config", "PRESETS", "Generator", "Discriminator"]
