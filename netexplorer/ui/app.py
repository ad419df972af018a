"""Starting the window: from the command line (`run_app`) or a notebook (`show_module`)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from PySide6.QtWidgets import QApplication

from ..core.errors import NetExplorerError
from .gui_gate import gui_gate
from .main_window import MainWindow

if TYPE_CHECKING:
    from .notebook import Explorer
from .workers import wait_for_workers

if TYPE_CHECKING:
    from ..core.launch import LaunchRequest

SCREENSHOT_SIZE = (1640, 980)


class NoDisplayError(NetExplorerError):
    """The window was asked for where there is no screen to show it on."""


def has_display() -> bool:
    """Whether Qt can show a window here: a display server, another platform asked for
    (QT_QPA_PLATFORM, e.g. offscreen), or not Linux."""
    if not sys.platform.startswith("linux") or os.environ.get("QT_QPA_PLATFORM"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


GIL_SWITCH_SECONDS = 0.001


def make_app(*, offscreen_ok: bool = True) -> QApplication:
    """The running QApplication, or a new one. Without a display, drawing offscreen is
    fine for screenshots and exports (`offscreen_ok`); a window a person should see raises
    NoDisplayError instead of running invisibly forever."""
    app = QApplication.instance()
    if app is None:
        if not has_display():
            if not offscreen_ok:
                raise NoDisplayError(
                    "no display to show the window on (DISPLAY and WAYLAND_DISPLAY are not "
                    "set): run it in a desktop session, or use --screenshot FILE, --summary "
                    "or --json here"
                )
            os.environ["QT_QPA_PLATFORM"] = "offscreen"
        # Qt's own event dispatcher, not GLib's: it says when the GUI thread wakes to work
        # and when it goes to sleep, which the GUI gate needs (gui_gate.py; GLib's says
        # "about to block" before every round, work included)
        os.environ.setdefault("QT_NO_GLIB", "1")
        app = QApplication(sys.argv[:1])
        # The GUI thread gives up the GIL at every call into Qt and must win it back from
        # a busy worker each time: by default a wait of up to 5 ms per call, so a repaint
        # of a few hundred calls stalls for 0.4 s while a worker indexes a million-tensor
        # tree (bench/tree.py). Asking busy threads to hand it over after 1 ms instead
        # cut that to about 0.1 s; the workers lose a few percent.
        sys.setswitchinterval(GIL_SWITCH_SECONDS)
        app.setApplicationName("netexplorer")
        app.setOrganizationName("netexplorer")
    gui_gate()  # long workers give way while the GUI thread works (gui_gate.py)
    return app  # type: ignore[return-value]


def save_screenshot(window: MainWindow, path: str) -> None:
    window.resize(*SCREENSHOT_SIZE)
    window.show()
    window.wait_idle()
    window.grab().save(str(Path(path)))


def window_for(request: LaunchRequest) -> MainWindow:
    """The window as the request asks, not yet shown: opened, passes started (through the
    pass session, as the buttons do), selected, on the asked-for view. A bad source raises
    (exit 2) before any window, or any worker of one, exists."""
    from ..core.launch import open_compared, open_requested, requested_lesson

    lesson = requested_lesson(request)
    opens = request.opens_something and lesson is None
    tree = open_requested(request, architecture=False) if opens else None  # refined later
    compared = open_compared(request)  # B too: a bad file exits 2 before the window exists
    window = MainWindow(seed=request.seed)
    if lesson is not None:  # it opens what it opens, in a worker, then its first step
        window.lessons.start(lesson)
    if tree is not None:
        window.set_tree(tree)
        session = window.document.session
        if request.input is not None:  # checked against the model by its first pass
            session.configure(input_spec=request.input)
        if request.eval_mode:
            session.configure(eval_mode=True)
    if compared is not None:  # the relative changes compute in a worker
        window.checkpoint_actions.compare_with_tree(compared)
    if request.backward:
        window.document.session.run("backward", times=request.backward)
    if request.select:
        if tree is not None and tree.node_or_none(request.select) is None:
            window.hf_actions.select_when_refined(request.select)  # the architecture adds it
        else:
            window.document.select(request.select)
    if request.view:
        window.set_view(request.view)
    if request.present:
        window.view_actions.set_presenting(True)
    return window


def run_app(request: LaunchRequest) -> int:
    """The window, as the request asks: open, select, run passes, then show (or draw a
    screenshot and exit)."""
    app = make_app(offscreen_ok=bool(request.screenshot))
    window = window_for(request)
    if request.screenshot:
        save_screenshot(window, request.screenshot)
        window.close()
        wait_for_workers()  # a worker must not outlive the objects its signals belong to
        return 0
    if request.source and os.path.exists(request.source):  # Open recent lists it
        window.checkpoint_actions.recent.add(request.source)
    window.show()
    status = app.exec()
    wait_for_workers()
    return status


def show_module(net: Any, *, select: str | None = None, block: bool | None = None) -> Explorer:
    """`netexplorer.show(net)`: the explorer on a live module (ui/notebook.py). In IPython
    or Jupyter it returns at once (the shell's Qt event loop keeps the window live); in a
    plain script it blocks until the window is closed. `block` decides it otherwise."""
    from ..core.tree import tree_from_module
    from .notebook import Explorer, ModelWatcher, enable_qt_loop, ipython_shell

    app = make_app(offscreen_ok=False)  # no display: one clear error, never a hidden window
    window = MainWindow()
    tree = tree_from_module(net, source=f"live {type(net).__name__}")
    from ..core.hf_live import is_transformers_model

    if is_transformers_model(net):  # its own inputs and loss, as --live takes them
        from ..core.hf_inputs import model_inputs

        tree.default_input, tree.default_loss = model_inputs(net)
    window.set_tree(tree)
    watcher = ModelWatcher(window.document, window)
    if select is not None:
        window.document.select(select)
    window.show()
    shell = ipython_shell()
    if block is None:
        block = shell is None
    if shell is not None and not block:
        window.statusBar().showMessage(enable_qt_loop(shell), 8000)
    if block:
        app.exec()
    return Explorer(window, watcher)
