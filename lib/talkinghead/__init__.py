"""talkinghead: speech-driven talking heads.

One still face photo + a speech clip in, a lip-synced video of that face speaking out.
Submodules are imported on first use, so ``import talkinghead`` stays fast.
"""
__version__ = "0.1.0"
__all__ = ["InputError", "load_pipeline", "list_pipelines", "__version__"]


def __getattr__(name: str):
    if name == "InputError":
        from talkinghead.io import InputError

        return InputError
    if name in ("load_pipeline", "list_pipelines"):
        import talkinghead.pipelines as pipelines

        return getattr(pipelines, name)
    raise AttributeError(f"module 'talkinghead' has no attribute {name!r}")
