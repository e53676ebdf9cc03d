"""StyleGAN2 inversion: the projector (Karras et al. 2020), an e4e/pSp-style encoder, pivotal tuning (Roich et al.
2022), GANSpace directions, a perceptual distance, and the measurement. See docs/INVERSION.md."""
from talkinghead.inversion.api import Inversion, edit, invert, to_tensor, tune
from talkinghead.inversion.common import load_generator
from talkinghead.inversion.editing import Directions, apply_direction, principal_directions
from talkinghead.inversion.encoder import Encoder, EncoderTask, load_encoder
from talkinghead.inversion.perceptual import load_perceptual
from talkinghead.inversion.projector import Projection, project
from talkinghead.inversion.pti import TunedGenerator, pivotal_tuning

__all__ = [
    "Inversion", "invert", "tune", "edit", "to_tensor", "load_generator", "Directions", "principal_directions",
    "apply_direction", "Encoder", "EncoderTask", "load_encoder", "load_perceptual", "Projection", "project",
    "TunedGenerator", "pivotal_tuning",
]
