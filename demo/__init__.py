"""The Gradio demo: layout, controls, plots and examples. ``app.py`` builds it with ``build_demo()`` and launches it."""
from demo.ui import build_demo

__all__ = ["build_demo"]
