"""A genlab web app on a free local port, and headless Chromium (Debian's) driving it with Selenium."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def tiny_t2i_run(tmp_path_factory) -> Path:
    """A t2i run trained here in seconds (the tiny preset), standing in for the cached digits model."""
    from tests.helpers import run_genlab

    run = tmp_path_factory.mktemp("t2i") / "run"
    result = run_genlab("t2i", "train", "--preset", "tiny", "--out", str(run))
    assert result.returncode == 0, result.stderr
    return run


def start_app(config):
    """Launch `build_app(config)` in this process; returns (app, base URL)."""
    pytest.importorskip("gradio")
    from genlab.serve.app import build_app

    app = build_app(config)
    app.launch(server_name="127.0.0.1", server_port=config.port, prevent_thread_lock=True, quiet=True,
               footer_links=[])
    return app, f"http://127.0.0.1:{config.port}"


@pytest.fixture
def browser():
    """Headless Chromium. `--no-sandbox`: CI runs as root, where Chromium's own sandbox refuses to start."""
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them as root)")
    webdriver = pytest.importorskip("selenium.webdriver")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1400,1800"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()
