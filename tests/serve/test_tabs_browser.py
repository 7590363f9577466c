"""Slow tier: each tab's happy path and one bad input in a real browser, two sessions at once, screenshots.

Screenshots go to $GENLAB_SCREENSHOTS (the README's come from `GENLAB_SCREENSHOTS=docs/serve`), else tmp.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tests.helpers import SHARED_DATA, run_genlab
from tests.serve.conftest import free_port, start_app

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def app_url(tiny_t2i_run, tmp_path):
    from genlab.serve.app import ServeConfig

    config = ServeConfig(workdir=tmp_path / "work", port=free_port(), t2i_model=tiny_t2i_run,
                         env={"GENLAB_CACHE": str(tmp_path / "cache")})
    app, url = start_app(config)
    yield url, config
    app.close()


def _shot(driver, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("GENLAB_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(folder / f"{name}.png"))


def _open_tab(driver, url: str, title: str):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    wait = WebDriverWait(driver, 600)
    tab = wait.until(ec.element_to_be_clickable((By.XPATH, f"//button[@role='tab' and contains(., '{title}')]")))
    tab.click()
    return wait


def _upload(driver, elem_id: str, *paths: Path) -> None:
    """Give files to a File component (tabs render on first visit, so wait for its input)."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    css = (By.CSS_SELECTOR, f"#{elem_id} input[type=file]")
    WebDriverWait(driver, 30).until(ec.presence_of_element_located(css))
    driver.find_element(*css).send_keys("\n".join(str(p) for p in paths))


def _await(wait, found):
    """wait.until(found), failing at once with the page's message if an error is shown instead."""
    from selenium.webdriver.common.by import By

    def check(driver):
        errors = [e.text for e in driver.find_elements(By.CSS_SELECTOR, ".toast-body.error")]
        assert not errors, f"the page shows an error: {errors}"
        return found(driver)

    return wait.until(check)


def _wait_text(wait, css: str, needle: str):
    from selenium.webdriver.common.by import By

    def found(driver):
        for elem in driver.find_elements(By.CSS_SELECTOR, css):
            text = elem.get_attribute("value") or elem.text
            if needle in text:
                return text
        return False

    return _await(wait, found)


def _error_shown(wait, needle: str) -> str:
    """The page's error message (Gradio's error toast) naming `needle`; it is then dismissed."""
    from selenium.webdriver.common.by import By

    def toast(driver):
        for elem in driver.find_elements(By.CSS_SELECTOR, ".toast-body.error"):
            if needle in elem.text:
                return elem
        return False

    elem = wait.until(toast)
    text = elem.text
    for close in elem.find_elements(By.CSS_SELECTOR, "button"):
        close.click()
    wait.until(lambda driver: not driver.find_elements(By.CSS_SELECTOR, ".toast-body.error"))  # gone before the next step
    return text


def _clear(driver, elem_id: str) -> None:
    from selenium.webdriver.common.by import By

    for button in driver.find_elements(By.CSS_SELECTOR, f"#{elem_id} button[aria-label='Clear']"):
        button.click()


def test_motion_tab_fits_a_program_and_refuses_a_fake_video(browser, app_url, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = app_url
    synth = tmp_path / "synth"
    assert run_genlab("motion", "synth", "jumping_jack", "--out", str(synth)).returncode == 0
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    wait = _open_tab(browser, url, "Motion programs")
    _upload(browser, "motion-upload", fake)
    browser.find_element(By.CSS_SELECTOR, "#motion-run").click()
    assert "cannot open video fake.mp4" in _error_shown(wait, "fake.mp4")  # the command's one line, in the page
    _clear(browser, "motion-upload")
    _upload(browser, "motion-upload", synth / "keypoints.npy")
    browser.find_element(By.CSS_SELECTOR, "#motion-run").click()
    text = _wait_text(wait, "#motion-program textarea, #motion-program .cm-content", "segment")
    assert text.startswith("program skeleton=coco17")
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#motion-video video"))
    _shot(browser, "motion", tmp_path)


def test_concepts_tab_describes_a_track(browser, app_url, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = app_url
    data = tmp_path / "data"
    assert run_genlab("motion", "concepts", "make-data", "--split", "test", "--n", "1", "--out", str(data)).returncode == 0
    wait = _open_tab(browser, url, "Motion concepts")
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"\0" * 10)
    _upload(browser, "concepts-upload", bad)
    browser.find_element(By.CSS_SELECTOR, "#concepts-run").click()
    _error_shown(wait, "bad.npz")
    _clear(browser, "concepts-upload")
    _upload(browser, "concepts-upload", data / "test_000.npz")
    browser.find_element(By.CSS_SELECTOR, "#concepts-run").click()
    text = _wait_text(wait, "#concepts-description textarea, #concepts-description .cm-content", "description frames=")
    assert any(name in text for name in ("jumping_jack", "squat", "arm_circle", "lunge", "walk")), text
    _shot(browser, "concepts", tmp_path)


def test_curation_tab_curates_and_refilters(browser, app_url, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = app_url
    video = SHARED_DATA / "video" / "opencv_vtest_480x360.avi"
    if not video.is_file():
        pytest.skip(f"shared video not found at {video}")
    fake = tmp_path / "fake.mp4"
    fake.write_text("not a video")
    wait = _open_tab(browser, url, "Curation")
    _upload(browser, "curation-upload", video)
    browser.find_element(By.CSS_SELECTOR, "#curation-run").click()
    _wait_text(wait, "#curation-table", "opencv_vtest")
    _set(browser, "curation-motion", 7.5, "input[type=number]")
    browser.find_element(By.CSS_SELECTOR, "#curation-refilter").click()
    _wait_text(wait, "#curation-command", "motion_score=7.5")  # the same run, re-filtered
    _wait_text(wait, "#curation-table", "opencv_vtest")
    _shot(browser, "curation", tmp_path)
    _clear(browser, "curation-upload")
    _upload(browser, "curation-upload", fake)
    browser.find_element(By.CSS_SELECTOR, "#curation-run").click()
    _error_shown(wait, "fake.mp4")


def test_two_browsers_at_once_get_their_own_images(browser, app_url, tmp_path, tiny_t2i_run):
    from concurrent.futures import ThreadPoolExecutor

    from tests.serve.test_t2i_tab import _generate

    url, config = app_url
    second = _second_browser()
    try:
        with ThreadPoolExecutor(2) as pool:
            jobs = [pool.submit(_generate, d, url, "a handwritten digit four", seed, 3)
                    for d, seed in ((browser, 1), (second, 2))]
            pages = [j.result() for j in jobs]
        _shot(browser, "t2i", tmp_path)
        assert len(list((config.workdir / "sessions").iterdir())) == 2  # one folder per browser session
    finally:
        second.quit()
    deadline = time.monotonic() + 60
    while len(list((config.workdir / "sessions").iterdir())) > 1 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert len(list((config.workdir / "sessions").iterdir())) == 1  # the closed session's folder is gone
    for seed, page in zip((1, 2), pages):
        cli = tmp_path / f"cli{seed}.png"
        assert run_genlab("t2i", "sample", "--model", str(tiny_t2i_run), "--prompt", "a handwritten digit four",
                          "--seed", str(seed), "--steps", "3", "--out", str(cli)).returncode == 0
        (tmp_path / f"page{seed}.png").write_bytes(page)
        assert np.array_equal(np.asarray(Image.open(tmp_path / f"page{seed}.png")), np.asarray(Image.open(cli)))
    assert pages[0] != pages[1]


def _second_browser():
    import selenium.webdriver as webdriver
    from selenium.webdriver.chrome.service import Service

    from tests.serve.conftest import CHROMEDRIVER, CHROMIUM

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                 "--disable-background-networking", "--window-size=1400,1800"):
        options.add_argument(flag)  # --no-sandbox: CI runs as root
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _set(driver, elem_id: str, value, tag: str = "input") -> None:
    from selenium.webdriver.common.by import By

    field = driver.find_element(By.CSS_SELECTOR, f"#{elem_id} {tag}")
    field.clear()
    field.send_keys(str(value))


def test_video_tab_makes_a_playable_mp4(browser, tmp_path):
    import av
    from selenium.webdriver.common.by import By

    from genlab.serve.app import ServeConfig
    from tests.systems.video.svd_tiny import save_tiny

    svd = tmp_path / "svd"
    save_tiny(svd)
    config = ServeConfig(workdir=tmp_path / "work", port=free_port(), video_pretrained=svd,
                         env={"GENLAB_CACHE": str(tmp_path / "cache")})
    app, url = start_app(config)
    try:
        picture = tmp_path / "chelsea.png"
        from skimage import data

        Image.fromarray(data.chelsea()).save(picture)
        wait = _open_tab(browser, url, "Image to video")
        _upload(browser, "video-image", picture)
        for elem_id, value in (("video-frames", 4), ("video-steps", 2)):
            _set(browser, elem_id, value)
        _set(browser, "video-size", "64x128", "textarea")
        browser.find_element(By.CSS_SELECTOR, "#video-run").click()
        src = _await(wait, lambda d: (d.find_elements(By.CSS_SELECTOR, "#video-out video") or [None])[0]
                         and d.find_element(By.CSS_SELECTOR, "#video-out video").get_attribute("src"))
        _shot(browser, "video", tmp_path)
        mp4 = tmp_path / "page.mp4"
        import urllib.request

        with urllib.request.urlopen(src, timeout=30) as response:
            mp4.write_bytes(response.read())
        with av.open(str(mp4)) as container:
            stream = container.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        assert stream.codec_context.name == "h264" and len(frames) == 4 and frames[0].shape == (64, 128, 3)
        _set(browser, "video-size", "65x128", "textarea")  # not a multiple of 64: the command's one line
        browser.find_element(By.CSS_SELECTOR, "#video-run").click()
        _error_shown(wait, "65x128")
    finally:
        app.close()


def test_insertion_tab_puts_a_person_into_a_photo(browser, tmp_path):
    from selenium.webdriver.common.by import By
    from skimage import data

    from genlab.serve.app import ServeConfig
    from tests.systems.insertion.tiny_real import save_folder, tiny_parts

    weights = save_folder(tiny_parts(), tmp_path / "weights")
    config = ServeConfig(workdir=tmp_path / "work", port=free_port(), insertion_weights=weights,
                         env={"GENLAB_CACHE": str(tmp_path / "cache")})
    app, url = start_app(config)
    scene, person = tmp_path / "coffee.png", tmp_path / "astronaut.png"
    Image.fromarray(data.coffee()).save(scene)
    Image.fromarray(data.astronaut()).save(person)
    try:
        wait = _open_tab(browser, url, "Human insertion")
        _upload(browser, "insertion-scene", scene)
        _upload(browser, "insertion-person", person)
        _set(browser, "insertion-box", "60,120,200,380", "textarea")
        for elem_id, value in (("insertion-steps", 2), ("insertion-size", 64)):
            _set(browser, elem_id, value)
        browser.find_element(By.CSS_SELECTOR, "#insertion-run").click()
        img = _await(wait, lambda d: (d.find_elements(By.CSS_SELECTOR, "#insertion-out img") or [False])[0])
        _shot(browser, "insertion", tmp_path)
        import urllib.request

        with urllib.request.urlopen(img.get_attribute("src"), timeout=30) as response:
            (tmp_path / "page.png").write_bytes(response.read())
        overview = Image.open(tmp_path / "page.png")
        assert overview.width > 3 * overview.height  # scene | reference | results
        _set(browser, "insertion-box", "900,900,950,950", "textarea")  # outside the 600x400 photo
        browser.find_element(By.CSS_SELECTOR, "#insertion-run").click()
        _error_shown(wait, "box")
    finally:
        app.close()


def test_spoc_tab_finds_a_program_that_compiles(browser, app_url, tmp_path):
    import subprocess

    from selenium.webdriver.common.by import By

    url, _ = app_url
    wait = _open_tab(browser, url, "SPoC")
    browser.find_element(By.CSS_SELECTOR, "#spoc-run").click()  # the example in the page: read two numbers, add
    program = _wait_text(wait, "#spoc-program textarea, #spoc-program .cm-content", "int main")
    _shot(browser, "spoc", tmp_path)
    source = tmp_path / "found.cpp"
    source.write_text(browser.execute_script(
        "return document.querySelector('#spoc-program .cm-content').innerText") or program)
    compiled = subprocess.run(["g++", "-x", "c++", "-o", str(tmp_path / "found"), str(source)], capture_output=True,
                              text=True, timeout=120)
    assert compiled.returncode == 0, compiled.stderr
    assert subprocess.run([str(tmp_path / "found")], input="2 3\n", capture_output=True, text=True,
                          timeout=10).stdout.strip() == "5"
    _set(browser, "spoc-budget", 0)  # not a budget: the command's one line in the page
    browser.find_element(By.CSS_SELECTOR, "#spoc-run").click()
    _error_shown(wait, "budget")


def test_t2i_tab_shows_a_bad_setting_and_serves_the_next_request(browser, app_url, tmp_path):
    from selenium.webdriver.common.by import By

    url, _ = app_url
    wait = _open_tab(browser, url, "Text to image")
    _set(browser, "t2i-steps", -3)
    browser.find_element(By.CSS_SELECTOR, "#t2i-run").click()
    assert "steps" in _error_shown(wait, "steps")  # the command's one line, in the page
    _set(browser, "t2i-steps", 2)
    browser.find_element(By.CSS_SELECTOR, "#t2i-run").click()
    _await(wait, lambda d: d.find_elements(By.CSS_SELECTOR, "#t2i-image img"))
