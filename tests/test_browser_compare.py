"""The comparison dashboard in a real browser: bands, the ranking pane and the parallel
coordinates of a 2-axis grid with repeats must render with no console error and no request
leaving localhost. Set VIZLAB_COMPARE_PNG=path to also write the screenshot there.

Needs Debian's `chromium` and `chromium-driver` and the `selenium` package; skipped otherwise.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from urllib.parse import urlparse

import pytest
from idxdata import write_idx_dataset
from test_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    LOCAL_HOSTS,
    _browser,
    _network,
    open_env,
    selenium,
    started_server,
)

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not (CHROMIUM and CHROMEDRIVER), reason="needs chromium and chromedriver"),
    pytest.mark.skipif(selenium is None, reason="needs selenium (pip install selenium)"),
]
ENV = "grid-with-bands"


@pytest.fixture
def compare_dashboard(tmp_path, monkeypatch):
    with started_server(tmp_path, monkeypatch) as url:
        data = write_idx_dataset(tmp_path / "data", n_train=192, n_test=64)
        run = subprocess.run(
            [sys.executable, "-m", "vizlab", "compare", "mlp", "--activation", "relu,sigmoid",
             "--lr", "0.01,0.001", "--repeats", "2", "--epochs", "3", "--batch-size", "32",
             "--data-dir", str(data), "--runs-dir", str(tmp_path / "runs"), "--name", ENV,
             "--visdom-url", url, "--progress", "plain", "--target", "90"],
            capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert run.returncode == 0, run.stderr
        yield url


def test_compare_dashboard_renders_bands_ranking_and_parcoords(compare_dashboard, tmp_path):
    driver = _browser(tmp_path)
    try:
        open_env(driver, compare_dashboard, ENV, """
            const fills = document.querySelectorAll('.scatterlayer .trace path.js-fill');
            const axes = [...document.querySelectorAll('.parcoords .axis-title')]
                .map(t => t.textContent);
            const table = [...document.querySelectorAll('td')].map(t => t.textContent);
            return fills.length >= 12 && axes.includes('final acc. (%)')
                && table.includes('best');""")
        shot = tmp_path / "compare.png"
        assert driver.save_screenshot(str(shot))
        if os.environ.get("VIZLAB_COMPARE_PNG"):
            shutil.copyfile(shot, os.environ["VIZLAB_COMPARE_PNG"])
        errors = [e for e in driver.get_log("browser") if e["level"] == "SEVERE"]
        urls, failed = _network(driver)
    finally:
        driver.quit()
    assert errors == []
    assert failed == []
    web = [u for u in urls if urlparse(u).scheme not in ("data", "blob")]
    assert [u for u in web if urlparse(u).hostname not in LOCAL_HOSTS] == []
