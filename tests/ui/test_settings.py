"""Settings that outlive the window: where it was, and how passes were set up. The first
start fits the screen it opens on."""

from __future__ import annotations

from PySide6.QtCore import QRect
from PySide6.QtGui import QGuiApplication

from netexplorer.ui.main_window import MainWindow
from netexplorer.ui.settings import Settings


def test_pass_settings_survive_a_restart(qtbot, window):
    first = window("example:tied", select="2.weight")
    controls = first.controls
    controls.loss.setCurrentIndex(controls.loss.findData("cross_entropy"))
    controls.optimizer.setCurrentIndex(controls.optimizer.findData("adam"))
    controls.lr.setValue(0.003)
    controls.record.setChecked(False)
    first.close()

    second = window("example:mlp")  # another model, another start of the window
    config = second.document.session.engine.config
    assert (config.loss_name, config.optimizer_name, config.lr, config.record) == (
        "cross_entropy",
        "adam",
        0.003,
        False,
    )
    assert second.controls.loss.currentData() == "cross_entropy"
    assert second.controls.lr.value() == 0.003


def test_the_window_comes_back_where_it_was_left(qtbot, window):
    first = window("example:tied")
    first.show()
    qtbot.waitExposed(first)
    size = (first.minimumSizeHint().width() + 4, 560)  # within the offscreen 800x800 screen
    first.resize(*size)
    qtbot.waitUntil(lambda: (first.width(), first.height()) == size)
    first.close()
    second = MainWindow()
    qtbot.addWidget(second)
    assert (second.width(), second.height()) == size


class SmallScreen:
    def availableGeometry(self) -> QRect:
        return QRect(0, 0, 1366, 728)  # 1366x768 less a 40-pixel panel


def test_the_first_start_fits_a_small_screen(qtbot, monkeypatch):
    monkeypatch.setattr(QGuiApplication, "primaryScreen", staticmethod(lambda: SmallScreen()))
    w = MainWindow()
    qtbot.addWidget(w)
    assert w.width() <= 1366 and w.height() <= 728
    assert w.x() >= 0 and w.y() >= 0
    assert w.x() + w.width() <= 1366 and w.y() + w.height() <= 728


def test_unreadable_settings_fall_back_to_defaults(temporary_settings):
    with open(temporary_settings, "w") as f:
        f.write("[window]\nlr=not a number\nrecord=perhaps\nloss_name=hinge\n")
    loaded = Settings.load()
    assert loaded.lr == 0.0 and loaded.record is True  # defaults, not a crash


def test_a_saved_loss_this_version_lacks_does_not_stop_a_model_opening(
    qtbot, window, temporary_settings
):
    with open(temporary_settings, "w") as f:
        f.write("[window]\nloss_name=hinge\n")
    w = window("example:tied")
    assert w.document.session.engine is not None
    assert w.document.session.engine.config.loss_name in ("sum", "mse", "cross_entropy")
