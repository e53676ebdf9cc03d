"""Exponential moving average of a network's weights (the generator every architecture ships)."""
from __future__ import annotations

import copy

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """A frozen copy of ``model`` whose parameters follow ``decay · ema + (1 − decay) · model``.

    The decay ramps up from 0 over the first steps (``min(decay, (1 + n) / (10 + n))`` after n updates), so the
    copy forgets the random initialisation quickly. Buffers (batch-norm statistics) are copied, not averaged.
    ``ema.model`` is in eval mode and never needs gradients.
    """

    def __init__(self, model: nn.Module, *, decay: float = 0.999):
        if not 0.0 <= decay < 1.0:
            raise ValueError(f"EMA decay must be in [0, 1), got {decay}")
        self.decay = decay
        self.updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the average one step towards ``model``'s current weights."""
        decay = min(self.decay, (1 + self.updates) / (10 + self.updates))
        for ema_p, p in zip(self.model.parameters(), model.parameters()):
            ema_p.lerp_(p.detach().to(ema_p.dtype), 1.0 - decay)
        for ema_b, b in zip(self.model.buffers(), model.buffers()):
            ema_b.copy_(b)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.model.state_dict()

    def load_state_dict(self, state: dict[str, torch.Tensor], *, updates: int) -> None:
        self.model.load_state_dict(state, strict=True)
        self.updates = updates
