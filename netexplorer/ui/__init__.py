"""The window: PySide6 + pyqtgraph widgets over `netexplorer.core`.

Importing this package pins pyqtgraph to PySide6 (pyqtgraph prefers PyQt6 when both exist)
and sets the image axis order to row-major: row 0 of a matrix at the top, like print(tensor).
"""

import os

os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")

# isort: off
import PySide6  # noqa: F401  (before pyqtgraph, which picks its Qt binding on import)
import pyqtgraph as pg

# isort: on

# antialiasing is set per curve where it shows (the loss curve): heatmap axes are straight
# lines, and drawing them antialiased costs frames while training
pg.setConfigOptions(imageAxisOrder="row-major", antialias=False)
