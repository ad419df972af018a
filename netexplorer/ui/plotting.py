"""pyqtgraph, configured for netexplorer: every module that draws with pyqtgraph imports `pg`
from here, never pyqtgraph directly.

Importing pyqtgraph costs 0.35-0.5 s (it imports all its items and widgets), so the window
imports it only when it builds its plotting panels, after it has shown (main_window.py).
The image axis order is row-major: row 0 of a matrix at the top, like print(tensor).
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

__all__ = ["pg"]


def apply_plot_look(plot: pg.PlotWidget, look, labels: dict[str, str]) -> None:
    """A plot (loss curve, histogram) in the window's look: background, axis colours, tick
    and label fonts at the text scale. `labels`: axis name -> its label."""
    from PySide6.QtGui import QFont

    colors = look.colors
    plot.setBackground(colors.background)
    font = QFont()
    font.setPointSizeF(look.pt(9))
    for name in ("left", "bottom"):
        axis = plot.getAxis(name)
        axis.setPen(colors.text)
        axis.setTextPen(colors.text)
        # the tick labels' room grows and is kept: shrinking it with each new range (a
        # selection, a training frame) laid the plot out and painted it again
        axis.setStyle(tickFont=font, tickTextOffset=look.px(4), autoReduceTextSpace=False)
        axis.enableAutoSIPrefix(False)  # "loss (x0.001)" reads worse than the numbers
        if name in labels:
            plot.setLabel(
                name, labels[name], color=colors.text, **{"font-size": f"{look.pt(9.5):.1f}pt"}
            )
