"""``hpa serve`` as people use it: the command started in its own process on loopback,
a small load of concurrent uploads (some malformed), and the page driven in headless Chromium.

The screenshot of the page is saved in the test's folder; with
``HPA_DOCS_SCREENSHOT=1`` it is also copied to ``docs/serve_page.png``.
"""

from __future__ import annotations

import asyncio
import csv
import importlib.util
import json
import os
import shutil
import sys
import time
from pathlib import Path

import httpx
import pytest
from helpers import KAGGLE_LAYOUT, write_sample
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from serve_support import make_serve_run, real_sample_ids

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = next((p for p in map(shutil.which, ("chromium", "chromium-browser")) if p), None)
CHROMEDRIVER = shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="chromium and chromedriver not installed (Debian: apt-get install chromium chromium-driver)",
)
needs_real_samples = pytest.mark.skipif(
    not real_sample_ids(), reason=f"real HPA samples not found at {KAGGLE_LAYOUT}"
)


def _load_benchmark():
    spec = importlib.util.spec_from_file_location("serve_load", ROOT / "benchmarks" / "serve_load.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


bench = _load_benchmark()


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory):
    """``(base_url, log_path)`` of ``hpa serve`` running on 127.0.0.1 in its own process."""
    work = tmp_path_factory.mktemp("serve-live")
    run, _ = make_serve_run(work)
    port = bench.free_port()
    log = work / "serve.log"
    process = bench.start_server(run, port, log=log)
    base = f"http://127.0.0.1:{port}"
    try:
        bench.wait_ready(base, process, timeout=120)
        yield base, log
    finally:
        bench.stop_server(process)
    assert process.returncode == 0, log.read_text()[-3000:]


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, bytes]]:
    """The real samples when present, else four random 64 px samples in the same layout."""
    if real_sample_ids():
        return bench.sample_files(KAGGLE_LAYOUT, limit=4)
    folder = tmp_path_factory.mktemp("samples")
    for k in range(4):
        write_sample(folder, f"s{k}", size=64, seed=k)
    return bench.sample_files(folder)


def test_small_load(live, samples) -> None:
    """48 uploads, 8 at a time, every 12th malformed: each good one 200 with its labels, each bad one 4xx."""
    base, log = live
    expected = asyncio.run(bench.expected_labels(base, samples))
    load = asyncio.run(bench.run_load(base, samples, expected, requests=48, concurrency=8,
                                      malformed_every=12, time_limit=120, request_timeout=60))
    assert load.good_failed == [] and load.malformed_other == [] and load.not_sent == 0
    assert load.good_ok == 44 and load.malformed_4xx == 4
    assert load.images_per_s > 0 and 0 < load.percentile(50) <= load.percentile(95) < 60
    table = bench.table(load, 48, 8, None)
    assert table.count("\n") == 2 and "| 48 | 8 | 44 | 4 | 0 |" in table


def test_served_process_refuses_outsiders_and_oversize(live) -> None:
    base, _ = live
    assert httpx.get(f"{base}/healthz").json() == {"status": "ok"}
    big = httpx.post(f"{base}/v1/predict", content=b"x" * (65 * 2**20),
                     headers={"Content-Type": "multipart/form-data; boundary=b"}, timeout=60)
    assert big.status_code == 413


def _browser(download_dir: Path, profile: Path) -> webdriver.Chrome:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync", "--hide-scrollbars",
                 f"--user-data-dir={profile}", "--window-size=1366,800"):
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(download_dir),
                                              "download.prompt_for_download": False})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    driver.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(download_dir)})
    driver.set_page_load_timeout(60)
    return driver


def _wait(condition, timeout: float = 60.0, what: str = "the page"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _wait_file(folder: Path, name: str) -> Path:
    return _wait(lambda: (folder / name) if (folder / name).is_file() else None, 20, name)


@needs_chromium
@needs_real_samples
def test_page_in_chromium(live, tmp_path: Path) -> None:
    """Load the page, upload a real field's four channels, read the classes shown, download, screenshot."""
    base, _ = live
    sample = real_sample_ids()[0]
    paths = [KAGGLE_LAYOUT / f"{sample}_{c}.png" for c in ("red", "green", "blue", "yellow")]
    api = httpx.post(f"{base}/v1/predict", files={p.stem.rsplit("_", 1)[1]: p.read_bytes() for p in paths}).json()
    downloads = tmp_path / "downloads"
    downloads.mkdir()
    driver = _browser(downloads, tmp_path / "profile")
    try:
        driver.get(base + "/")
        find = lambda css: driver.find_element(By.CSS_SELECTOR, css)  # noqa: E731
        _wait(lambda: "from the run" in find("#model-line").text, what="the model line")
        assert find("#multichannel-note").is_displayed()  # one multi-channel file: said on the page
        pick = find("#pick")

        def choose(files: list[Path]) -> None:  # the hidden picker that "choose them" opens
            driver.execute_script("arguments[0].style.display = 'block'", pick)
            pick.send_keys("\n".join(str(p) for p in files))
            driver.execute_script("arguments[0].style.display = ''", pick)

        choose(paths)
        _wait(lambda: find("#classify").is_enabled(), what="the Classify button")
        find("#classify").click()
        _wait(lambda: find("#result").is_displayed() and driver.find_elements(By.CSS_SELECTOR, "#bars li"),
              what="the result")
        shown = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#verdict .name")]
        assert shown == api["names"]
        predicted = [e.text for e in driver.find_elements(By.CSS_SELECTOR, "#bars li.yes .cls")]
        assert predicted[: len(api["names"])] == predicted and sorted(predicted) == sorted(api["names"])
        assert len(driver.find_elements(By.CSS_SELECTOR, "#bars li .tick")) >= 10  # each bar marks its threshold
        assert driver.execute_script("return document.getElementById('composite').naturalWidth") == 512
        assert not find("#cam-section").is_displayed() and not find("#cells-toggle").is_displayed()
        # on a laptop screen (1366 x 800) the composite and the first bars are in view after classifying
        in_view = "const r = arguments[0].getBoundingClientRect(); return r.top >= 0 && r.top < innerHeight;"
        assert driver.execute_script(in_view, find("#composite"))
        assert driver.execute_script(in_view, find("#bars li"))
        png = tmp_path / "serve_page.png"
        driver.save_screenshot(str(png))
        assert png.stat().st_size > 20_000
        if os.environ.get("HPA_DOCS_SCREENSHOT") == "1":
            shutil.copyfile(png, ROOT / "docs" / "serve_page.png")
        find("#toggle-all").click()
        assert len(driver.find_elements(By.CSS_SELECTOR, "#bars li")) == 28
        find("#download-csv").click()
        rows = list(csv.DictReader(_wait_file(downloads, f"{sample}_classes.csv").open()))
        assert len(rows) == 28 and {r["class"] for r in rows if r["predicted"] == "1"} == set(api["names"])
        find("#download-json").click()
        doc = json.loads(_wait_file(downloads, f"{sample}_result.json").read_text())
        assert doc["result"]["labels"] == api["labels"] and "composite" not in doc["result"]
        bad = tmp_path / f"{sample}_red.png"
        bad.write_text("not an image")
        choose([bad])
        find("#classify").click()
        _wait(lambda: find("#error").is_displayed(), what="the error message")
        assert find("#error").text == "red: not a PNG, JPEG or TIFF file"
    finally:
        driver.quit()
