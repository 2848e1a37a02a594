"""The HTML reports render in a real browser: headless Chromium takes a screenshot of each."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pytest

from hpa_classify.analysis.analyze import analyze

CHROMIUM = next(
    (p for p in map(shutil.which, ("chromium", "chromium-browser", "google-chrome")) if p), None
)
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium not installed (Debian: apt-get install chromium)"
)
WIDTH, HEIGHT = 1200, 2000
#: Bar colours of the charts, as BGR: #4c72b0 (counts, per-class F1) and #d62728 (rare classes).
BAR_BGR = (np.array([176, 114, 76]), np.array([40, 39, 214]))


def screenshot(html: Path, png: Path) -> np.ndarray:
    """Render ``html`` in headless Chromium, save the screenshot to ``png``, return it as BGR."""
    assert CHROMIUM is not None
    profile = png.parent / f".chromium-{png.stem}"
    cmd = [
        CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
        "--no-first-run", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--hide-scrollbars", f"--user-data-dir={profile}",
        f"--screenshot={png}", f"--window-size={WIDTH},{HEIGHT}", html.resolve().as_uri(),
    ]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert png.is_file(), f"no screenshot (exit {result.returncode}): {result.stderr[-2000:]}"
    image = cv2.imread(str(png), cv2.IMREAD_COLOR)
    assert image is not None and image.shape[:2] == (HEIGHT, WIDTH), image.shape
    return image


def bar_pixels(image: np.ndarray) -> int:
    """Pixels of the bar colours: present only if the embedded PNG figures were drawn."""
    pixels = image.astype(int)
    return int(sum((np.abs(pixels - bgr).max(axis=-1) <= 6).sum() for bgr in BAR_BGR))


@needs_chromium
def test_analysis_report_renders(synth_root: Path, tmp_path: Path) -> None:
    result = analyze(synth_root, tmp_path / "analysis", max_images=16, per_class=2)
    image = screenshot(result.html, tmp_path / "analysis.png")
    assert image.std() > 20, "blank page"
    assert bar_pixels(image) > 2000, "the class-frequency chart did not render"


@needs_chromium
def test_run_report_renders(trained_run: Path, tmp_path: Path) -> None:
    image = screenshot(trained_run / "report" / "report.html", tmp_path / "run_report.png")
    assert image.std() > 20, "blank page"
    assert bar_pixels(image) > 500, "the figures did not render"
