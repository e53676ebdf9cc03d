"""Training shared by every architecture: ``fit`` (the loop), checkpoints, EMA."""
from talkinghead.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint
from talkinghead.training.ema import EMA
from talkinghead.training.loop import BatchStream, FitResult, Phase, fit

__all__ = ["fit", "Phase", "FitResult", "BatchStream", "EMA", "save_checkpoint", "load_checkpoint", "latest_checkpoint"]
