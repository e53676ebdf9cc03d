"""SynthGRID: a synthetic GRID-style audio-visual corpus with exact ground truth.

``generate_corpus`` writes a corpus; ``plan_clip`` + ``FaceRenderer`` make one clip from any text (the demo's
path). See ``corpus.py`` for the layout on disk.
"""
from talkinghead.data.synthgrid.corpus import (
    GRID_GRAMMAR,
    Clip,
    Speaker,
    generate_corpus,
    make_speakers,
    plan_clip,
    random_sentence,
    render_clip,
    render_text,
    speaker_from_seed,
    utterance_id,
    write_clip,
)
from talkinghead.data.synthgrid.face import FaceState, Identity, sample_identity
from talkinghead.data.synthgrid.render import FaceRenderer, RenderedFrame

__all__ = [
    "GRID_GRAMMAR", "Clip", "Speaker", "FaceState", "Identity", "FaceRenderer", "RenderedFrame",
    "generate_corpus", "make_speakers", "plan_clip", "random_sentence", "render_clip", "render_text", "sample_identity", "speaker_from_seed",
    "utterance_id", "write_clip",
]
