"""Fixtures for widget tests: a window on an example, and a guard against leftover work."""

import pytest
from PySide6.QtCore import QSettings

from netexplorer.ui import settings
from netexplorer.ui.main_window import MainWindow
from netexplorer.ui.workers import wait_for_workers


@pytest.fixture(autouse=True)
def temporary_settings(monkeypatch, tmp_path):
    """Each test starts from no saved settings (window geometry, pass settings, recent
    files) and writes to a file of its own, never the user's."""
    path = str(tmp_path / "settings.ini")
    monkeypatch.setattr(settings, "app_settings", lambda: QSettings(path, QSettings.IniFormat))
    return path


@pytest.fixture(autouse=True)
def no_work_left_running(qapp):
    """Fail a test that leaves a worker running after it ends (in the pool or a thread of
    its own)."""
    yield
    assert wait_for_workers(5_000), "the test left a worker running"


@pytest.fixture
def window(qtbot):
    """A window (not shown) factory: window(spec, select=None). As in the app, its plotting
    panels are made after the source is open and selected (they catch up with it)."""

    def make(spec: str | None = None, select: str | None = None) -> MainWindow:
        w = MainWindow()
        qtbot.addWidget(w)
        if spec is not None:
            w.open_source_now(spec)
        if select is not None:
            w.document.select(select)
        w.build_panels()
        return w

    return make


@pytest.fixture
def dialogs(monkeypatch):
    """Record message boxes instead of showing them (a modal dialog would block the test)."""
    from PySide6.QtWidgets import QMessageBox

    shown: list[tuple[str, str]] = []

    def record(kind):
        def show(_parent, title, text, *args, **kwargs):
            shown.append((kind, f"{title}: {text}"))
            return QMessageBox.StandardButton.Ok

        return show

    for kind in ("warning", "critical", "information"):
        monkeypatch.setattr(QMessageBox, kind, record(kind))
    return shown


@pytest.fixture
def press(qtbot):
    """press(window, key, modifiers=None): a key pressed in `window` as a person does it:
    the window active, the key sent to the widget with the focus (where Qt looks up
    shortcuts from)."""
    from PySide6.QtCore import Qt
    from PySide6.QtTest import QTest
    from PySide6.QtWidgets import QApplication

    def press_key(window, key, modifiers=None) -> None:
        window.activateWindow()
        qtbot.waitUntil(window.isActiveWindow, timeout=2000)
        target = QApplication.focusWidget() or window
        QTest.keyClick(target, key, modifiers or Qt.KeyboardModifier.NoModifier)

    return press_key
