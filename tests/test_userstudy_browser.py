"""A rater's sheet in a real headless chromium (selenium): loads from file://, every video decodes and animates,
answering and saving downloads an answers file the vote count accepts, and an HTML prompt stays literal text."""

import hashlib
import io
import json
import shutil
import subprocess
import time

import pytest
from PIL import Image
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from dcm.eval.userstudy.aggregate import aggregate
from dcm.eval.userstudy.sheets import make_sheets
from tests.helpers import REPO
from tests.test_userstudy import COMPARISONS, write_sample_sets

HOSTILE_PROMPT = "<b>bold</b><script>window.pwned=1</script>"
CHROMIUM_FLAGS = ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-default-apps", "--no-first-run", "--window-size=1200,3000",
                  "--force-device-scale-factor=1"]


@pytest.fixture(scope="module")
def browser_paths():
    """(chromium, chromedriver), installed by scripts/install_chromium.sh when missing."""
    if not (shutil.which("chromium") and shutil.which("chromedriver")):
        proc = subprocess.run(["bash", str(REPO / "scripts" / "install_chromium.sh")], check=False,
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return shutil.which("chromium"), shutil.which("chromedriver")


@pytest.fixture
def driver(browser_paths, tmp_path):
    options = webdriver.ChromeOptions()
    options.binary_location = browser_paths[0]
    for flag in CHROMIUM_FLAGS:
        options.add_argument(flag)
    options.add_experimental_option("prefs", {"download.default_directory": str(tmp_path / "downloads"),
                                              "download.prompt_for_download": False})
    chrome = webdriver.Chrome(options=options, service=Service(executable_path=browser_paths[1]))
    chrome.execute_cdp_cmd("Browser.setDownloadBehavior", {"behavior": "allow",
                                                           "downloadPath": str(tmp_path / "downloads")})
    yield chrome
    chrome.quit()


def _distinct_looks(chrome, images, seconds=4.0):
    """How many different pictures each image showed in screenshots over up to `seconds` (stops once all showed
    two); the window is tall enough that every image is on screen, so nothing scrolls between screenshots."""
    assert chrome.execute_script("return document.documentElement.scrollHeight <= window.innerHeight")
    boxes = [(round(r["x"]) + 2, round(r["y"]) + 2, round(r["x"] + r["width"]) - 2, round(r["y"] + r["height"]) - 2)
             for r in (image.rect for image in images)]
    seen = [set() for _ in images]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and min(map(len, seen)) < 2:
        screen = Image.open(io.BytesIO(chrome.get_screenshot_as_png())).convert("RGB")
        for looks, box in zip(seen, boxes):
            looks.add(hashlib.sha256(screen.crop(box).tobytes()).hexdigest())
        time.sleep(0.05)
    return [len(looks) for looks in seen]


def test_rater_sheet_in_chromium(driver, tmp_path):
    sample_sets = write_sample_sets(tmp_path / "run", ["a red circle moving left", HOSTILE_PROMPT], [0])
    key = make_sheets(sample_sets, COMPARISONS, raters=2, pairs_per_rater=None, seed=3,
                      out_dir=tmp_path / "sheets", key_path=tmp_path / "key.json")
    driver.get((tmp_path / "sheets" / "rater-01" / "index.html").as_uri())

    images = driver.find_elements(By.TAG_NAME, "img")
    assert len(images) == 8  # 2 comparisons x 2 videos, two images each
    WebDriverWait(driver, 10).until(lambda d: d.execute_script(
        "return [...document.images].every(i => i.complete && i.naturalWidth > 0)"))
    assert driver.execute_script("return [...document.images].map(i => i.naturalWidth)") == [256] * 8
    assert min(_distinct_looks(driver, images)) >= 2, "a video does not animate"

    prompts = [p.text for p in driver.find_elements(By.CSS_SELECTOR, "p.prompt")]
    assert f"Prompt: {HOSTILE_PROMPT}" in prompts
    assert driver.find_elements(By.CSS_SELECTOR, "p.prompt b, p.prompt script") == []
    assert driver.execute_script("return typeof window.pwned") == "undefined"

    # text alignment: left everywhere; motion: right everywhere; visual quality: 'same' on the first pair
    for question, side in (("text_alignment", "left"), ("motion_quality", "right")):
        for radio in driver.find_elements(By.CSS_SELECTOR, f'input[data-question="{question}"][value="{side}"]'):
            radio.click()
    driver.find_element(By.CSS_SELECTOR, 'input[data-question="visual_quality"][value="same"]').click()
    driver.find_element(By.ID, "save").click()

    saved = tmp_path / "downloads" / "answers-rater-01.json"
    WebDriverWait(driver, 10).until(lambda d: saved.is_file())
    answers = json.loads(saved.read_text())
    assert answers == json.loads(driver.find_element(By.ID, "answers").get_attribute("value"))
    assert answers["rater"] == "rater-01" and len(answers["answers"]) == 4 + 4 + 1
    assert "9 of 12 questions answered" in driver.find_element(By.ID, "status").text

    rows = {(r["comparison"], r["question"]): r for r in aggregate([saved], tmp_path / "key.json")}
    pairs = key["raters"]["rater-01"].values()
    for c, (ours, baseline) in enumerate(COMPARISONS):
        ours_left = sum(p["left"] == ours for p in pairs if p["comparison"] == c)
        name = f"{ours} vs {baseline}"
        row = rows[name, "text_alignment"]
        assert (row["answers"], row["prefer_method"]) == (2, ours_left)
        assert rows[name, "motion_quality"]["prefer_method"] == 2 - ours_left
    assert sum(r["same"] for r in rows.values() if r["question"] == "visual_quality") == 1
