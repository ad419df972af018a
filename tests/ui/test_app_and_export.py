"""Starting the window from the command line and a notebook; exporting heatmaps."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PySide6.QtGui import QImage
from PySide6.QtSvg import QSvgRenderer
from torch import nn

import netexplorer
from netexplorer.cli import main

ROOT = Path(__file__).resolve().parents[2]


def test_screenshot_draws_the_window_offscreen(tmp_path):
    out = tmp_path / "shot.png"
    assert main(["example:tied", "--select", "2.weight", "--screenshot", str(out)]) == 0
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1640, 980)


def test_screenshot_of_the_gallery_without_source(tmp_path):
    out = tmp_path / "gallery.png"
    assert main(["--screenshot", str(out)]) == 0
    assert not QImage(str(out)).isNull()


@pytest.mark.parametrize("suffix", [".png", ".svg"])
def test_export_heatmap_writes_png_or_svg(tmp_path, suffix):
    out = tmp_path / f"w{suffix}"
    assert main(["example:tied", "--select", "2.weight", "--export-heatmap", str(out)]) == 0
    if suffix == ".png":
        image = QImage(str(out))
        assert image.width() >= 900 and not image.isNull()
    else:
        text = out.read_text()
        assert "<svg" in text and "2.weight" in text
        assert QSvgRenderer(str(out)).isValid()


def test_export_heatmap_mistakes_exit_2(tmp_path, capsys):
    assert main(["example:tied", "--select", "2.weight", "--export-heatmap", "w.jpg"]) == 2
    assert "PNG or SVG" in capsys.readouterr().err
    assert main(["example:tied", "--export-heatmap", str(tmp_path / "w.png")]) == 2
    assert "--select" in capsys.readouterr().err
    missing = tmp_path / "no" / "such" / "folder" / "w.png"
    assert main(["example:tied", "--select", "2.weight", "--export-heatmap", str(missing)]) == 2
    assert capsys.readouterr().err.count("\n") == 1


def test_show_opens_the_explorer_on_a_live_module(qtbot):
    net = nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 1))
    window = netexplorer.show(net, select="0.bias", block=False).window
    qtbot.addWidget(window)
    assert window.isVisible()
    assert window.document.tree.module is net
    assert window.heatmap_panel.loaded.path == "0.bias"
    with torch.no_grad():
        net[0].bias.fill_(0.5)  # the window reads the live module
    window.document.notify_values_changed()
    assert (window.heatmap_panel.view.image.image == 0.5).all()


def test_a_file_opened_from_the_command_line_is_in_open_recent(tmp_path, monkeypatch):
    from PySide6.QtWidgets import QApplication

    from netexplorer.ui.opening import RecentSources

    path = tmp_path / "w.pt"
    torch.save({"w": torch.ones(2)}, path)
    monkeypatch.setattr(QApplication, "exec", lambda _app: 0)  # the window shows, then returns
    assert main([str(path)]) == 0
    for widget in QApplication.topLevelWidgets():
        widget.close()
    assert RecentSources().paths()[0] == str(path)


def without_display() -> dict[str, str]:
    env = dict(os.environ)
    for name in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM"):
        env.pop(name, None)
    return env


def test_the_window_without_a_display_exits_2_with_one_line():
    # `make run` on a machine without a screen: one line, not an invisible window forever
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "example:tied"],
        env=without_display(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "no display" in lines[0] and "--screenshot" in lines[0]


def test_a_screenshot_needs_no_display(tmp_path):
    out = tmp_path / "shot.png"
    done = subprocess.run(
        [sys.executable, str(ROOT / "main.py"), "example:tied", "--screenshot", str(out)],
        env=without_display(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert not QImage(str(out)).isNull()
