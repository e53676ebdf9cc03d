"""Audio: frame-aligned features (``features``) and speech synthesis with espeak-ng (``tts``)."""
