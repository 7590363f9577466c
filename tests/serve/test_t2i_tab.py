"""Fast smoke test of the web app: text to image in a real browser equals `genlab t2i sample` pixel for pixel."""

from __future__ import annotations

import urllib.request

import numpy as np
import pytest
from PIL import Image

from tests.helpers import run_genlab
from tests.serve.conftest import free_port, start_app


def _generate(driver, url: str, prompt: str, seed: int, steps: int) -> bytes:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 120)
    box = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#t2i-prompt textarea")))
    box.clear()
    box.send_keys(prompt)
    for elem_id, value in (("t2i-seed", seed), ("t2i-steps", steps)):
        field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} input")
        field.clear()
        field.send_keys(str(value))
    driver.find_element(By.CSS_SELECTOR, "#t2i-run").click()
    img = wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#t2i-image img")))
    with urllib.request.urlopen(img.get_attribute("src"), timeout=30) as response:
        return response.read()


def test_text_to_image_in_the_browser_equals_the_cli(browser, tiny_t2i_run, tmp_path):
    from genlab.serve.app import ServeConfig

    config = ServeConfig(workdir=tmp_path / "work", port=free_port(), t2i_model=tiny_t2i_run,
                         env={"GENLAB_CACHE": str(tmp_path / "cache")})
    app, url = start_app(config)
    try:
        page = _generate(browser, url, "a handwritten digit three", seed=5, steps=3)
    finally:
        app.close()
    cli = tmp_path / "cli.png"
    result = run_genlab("t2i", "sample", "--model", str(tiny_t2i_run), "--prompt", "a handwritten digit three",
                        "--seed", "5", "--steps", "3", "--out", str(cli))
    assert result.returncode == 0, result.stderr
    (tmp_path / "page.png").write_bytes(page)
    ours, theirs = np.asarray(Image.open(tmp_path / "page.png")), np.asarray(Image.open(cli))
    assert ours.shape == theirs.shape and ours.std() > 0  # an image, not a blank
    assert np.array_equal(ours, theirs)


pytestmark = pytest.mark.timeout(300)
