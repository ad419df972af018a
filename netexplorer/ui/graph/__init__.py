"""The Graph tab (panel.py) and what it is made of: building in a worker (builder.py,
tasks.py), putting items on screen a batch at a time (loader.py), the scene and its items
(scene.py, items.py), the canvas and its minimap (canvas.py, overview.py), the selection
(selection.py) and export (export.py)."""

from .panel import GraphPanel

__all__ = ["GraphPanel"]
