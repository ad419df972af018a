"""Shared test setup: Qt draws offscreen unless a test says otherwise (the e2e test uses xcb);
settings (recent files) go to a temporary folder, in this process and the ones it starts,
never to the user's."""

import os
import tempfile

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PYQTGRAPH_QT_LIB", "PySide6")
os.environ.setdefault("QT_NO_GLIB", "1")  # as make_app: the GUI gate (ui/gui_gate.py) needs it
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="netexplorer-test-config-")
# Hugging Face tests use tiny models they save themselves: never the network
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
