"""The window: PySide6 + pyqtgraph widgets over `netexplorer.core`.

Importing this package pins pyqtgraph to PySide6 (pyqtgraph prefers PyQt6 when both exist);
pyqtgraph itself is imported, and configured, by `plotting.py` when a panel needs it.
"""

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

import PySide6  # noqa: F401  (before pyqtgraph, which picks its Qt binding on import)
