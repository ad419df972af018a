"""End to end: the real window on Xvfb with Qt's xcb platform, started as a user would."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PySide6.QtGui import QImage

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def xvfb_display():
    if shutil.which("Xvfb") is None:
        if os.environ.get("NETEXPLORER_E2E") == "required":
            pytest.fail("Xvfb is missing: run `bash .ci/system-deps` (make test does)")
        pytest.skip("Xvfb is not installed")
    read_fd, write_fd = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1920x1200x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    os.close(write_fd)
    with os.fdopen(read_fd) as pipe:
        display = pipe.readline().strip()  # Xvfb writes its display number when ready
    try:
        assert display, "Xvfb did not start"
        yield f":{display}"
    finally:
        server.terminate()
        server.wait(10)


def run_real_window(display: str, *args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "DISPLAY": display, "QT_QPA_PLATFORM": "xcb"}
    return subprocess.run(
        [sys.executable, str(ROOT / "main.py"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
    )


def count(image: QImage, x0: float, x1: float, test) -> int:
    """Pixels in the vertical band [x0, x1) (fractions of the width) that pass `test`."""
    n = 0
    for y in range(0, image.height(), 3):
        for x in range(int(x0 * image.width()), int(x1 * image.width()), 3):
            c = image.pixelColor(x, y)
            n += test(c.red(), c.green(), c.blue())
    return n


def test_tied_example_window_shows_tree_and_coloured_heatmap(xvfb_display, tmp_path):
    out = tmp_path / "out.png"
    done = run_real_window(
        xvfb_display, "example:tied", "--select", "2.weight", "--screenshot", str(out)
    )
    assert done.returncode == 0, done.stderr
    image = QImage(str(out))
    assert (image.width(), image.height()) == (1640, 980)
    # the tree (left third): dark text on a light background, and a selected row
    dark_text = count(image, 0.0, 0.3, lambda r, g, b: r + g + b < 200)
    selection = count(image, 0.0, 0.3, lambda r, g, b: b > 150 and r < 120)
    assert dark_text > 300 and selection > 50
    # the heatmap (centre): many strongly red or blue pixels, not a blank canvas
    red = count(image, 0.35, 0.7, lambda r, g, b: r > 160 and b < 120 and g < 140)
    blue = count(image, 0.35, 0.7, lambda r, g, b: b > 160 and r < 150)
    assert red > 500 and blue > 500


def test_real_window_refuses_a_bad_source_with_one_line(xvfb_display):
    done = run_real_window(xvfb_display, "example:nope")
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("netexplorer: unknown example 'nope'")
