"""The HTML pages rendered by a real browser: headless Chromium (Debian package
``chromium``; .ci/run installs it) takes a screenshot of the leaderboard page and of a
report page, and the screenshots must not be blank: many non-white pixels, the tables'
and plots' colours among them."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from harness.cli import main

SMOKE = Path(__file__).resolve().parent / "data" / "smoke"
CHROMIUM = next((p for p in (os.environ.get("CHROMIUM"), shutil.which("chromium"),
                             shutil.which("chromium-browser"), shutil.which("google-chrome"))
                 if p), None)
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="no headless Chromium "
                                "(apt-get install -y chromium, or set $CHROMIUM)")


def screenshot(page: Path, out: Path, tmp_path: Path) -> np.ndarray:
    import matplotlib.image

    cmd = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
           f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1280,1400",
           f"--screenshot={out}", page.resolve().as_uri()]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert out.is_file(), done.stderr[-2000:]
    return matplotlib.image.imread(str(out))[..., :3]  # RGB in [0, 1]


def assert_not_blank(pixels: np.ndarray) -> None:
    assert pixels.shape[0] >= 1000 and pixels.shape[1] >= 1200
    ink = (pixels < 0.9).any(-1)  # not (near) white
    assert ink.mean() > 0.02, f"only {ink.mean():.2%} of the pixels are not white"
    colours = {tuple(c) for c in np.round(pixels[ink][::50] * 8).astype(int)}
    assert len(colours) > 10  # text, table shading, the plot's lines: not one flat colour


def test_the_leaderboard_and_report_pages_render_in_chromium(tmp_path):
    board = tmp_path / "board.html"
    assert main(["leaderboard", str(SMOKE / "smoke_logistic"), str(SMOKE / "smoke_grid_rl"),
                 "--format", "html", "-o", str(board)]) == 0
    assert_not_blank(screenshot(board, tmp_path / "board.png", tmp_path))
    report = tmp_path / "report.html"
    assert main(["report", str(SMOKE / "smoke_logistic"), "--format", "html", "--metric",
                 "all", "-o", str(report)]) == 0
    assert_not_blank(screenshot(report, tmp_path / "report.png", tmp_path))
