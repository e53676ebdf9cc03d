"""The example photos of the main tab, and how they were made: ``python -m demo.assets`` writes them again.

- ``astronaut.jpg``: Eileen Collins, NASA's first woman shuttle pilot, from scikit-image (``skimage.data.astronaut``);
  a NASA photograph, public domain.
- ``synthgrid_<n>.png``: SynthGRID speaker ``n`` (``talkinghead.data.synthgrid.corpus.speaker_from_seed``), one
  256-pixel frame of a rendered clip: the faces the shipped models were trained on.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

__all__ = ["EXAMPLES_DIR", "EXAMPLE_SPEAKERS", "examples", "write_examples"]

EXAMPLES_DIR = Path(__file__).resolve().parent / "examples"
EXAMPLE_SPEAKERS = (3, 7)


def examples() -> list[list[str]]:
    """Rows for ``gr.Examples``: (photo, speech from, text, language, voice variant)."""
    typed = "Typed text"
    return [
        [str(EXAMPLES_DIR / "synthgrid_3.png"), typed, "bin blue at f two now", "en-US", "m3"],
        [str(EXAMPLES_DIR / "synthgrid_7.png"), typed, "place red by g nine soon", "en-GB-scotland", "f2"],
        [str(EXAMPLES_DIR / "astronaut.jpg"), typed, "Houston, the photo is talking.", "en-US", "f4"],
    ]


def synthgrid_still(speaker: int, *, size: int = 256) -> np.ndarray:
    """(size, size, 3) uint8: a mid-sentence frame of SynthGRID speaker ``speaker``."""
    from talkinghead.data.synthgrid import FaceRenderer
    from talkinghead.data.synthgrid.corpus import plan_clip, speaker_from_seed

    speaker = speaker_from_seed(speaker)
    clip = plan_clip("bin blue at f two now", speaker, seed=0)
    return FaceRenderer(speaker.identity, size=size).render(clip.states[0]).image


def write_examples(folder: Path = EXAMPLES_DIR) -> None:
    """Write the example photos into ``folder``."""
    import skimage.data
    from PIL import Image

    folder.mkdir(parents=True, exist_ok=True)
    Image.fromarray(skimage.data.astronaut()).save(folder / "astronaut.jpg", quality=90)
    for speaker in EXAMPLE_SPEAKERS:
        Image.fromarray(synthgrid_still(speaker)).save(folder / f"synthgrid_{speaker}.png")


if __name__ == "__main__":
    write_examples()
