"""Faces: 68-point landmark conventions and measures (``landmarks``)."""
