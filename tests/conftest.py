"""Shared test setup: Qt draws offscreen unless a test says otherwise (the e2e test uses xcb)."""

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
