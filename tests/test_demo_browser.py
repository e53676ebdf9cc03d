"""The page in a real headless Chromium (Debian's ``chromium``, driven by Playwright): upload a photo and a speech
clip, press Generate, and get a playable video. Skipped only where no Chromium can be found.

``TALKINGHEAD_SCREENSHOT=docs/demo_screenshot.png python -m pytest tests/test_demo_browser.py`` also saves the
README's screenshot: the page with the first example's result (a typed sentence spoken by espeak-ng); add
``TALKINGHEAD_DEMO_WEIGHTS=sda=weights/sda_synthgrid.safetensors`` to show the shipped model instead of tiny random
weights.
"""
import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")  # before gradio is imported: no calls home

import shutil  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402
import soundfile  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
for path in (ROOT, Path(__file__).resolve().parent):  # demo/ and the helpers of test_demo_talk
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

from test_demo_talk import FACE, SR, save_tiny_sda, speech  # noqa: E402

CHROMIUM = next((found for name in ("chromium", "chromium-browser", "google-chrome") if (found := shutil.which(name))), None)
playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed: pip install -r requirements-dev.txt")
pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(CHROMIUM is None, reason="no Chromium found: apt-get install chromium (.ci/run does)")]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def examples_cache(tmp_path_factory):
    return tmp_path_factory.mktemp("examples")


@pytest.fixture(scope="module")
def url(tmp_path_factory, examples_cache):
    from demo import build_demo

    shipped = os.environ.get("TALKINGHEAD_DEMO_WEIGHTS")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_EXAMPLES_CACHE", str(examples_cache))  # not the repository's .gradio/
        demo = build_demo(None if shipped else {"sda": str(save_tiny_sda(tmp_path_factory.mktemp("weights")))})
        port = free_port()
        demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=port, quiet=True)
        try:
            yield f"http://127.0.0.1:{port}/"
        finally:
            demo.close()


@pytest.fixture()
def page(url):
    with playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 1300})
            page.goto(url, wait_until="networkidle")
            page.locator("#card").get_by_text("Temporal GAN").wait_for(timeout=30_000)  # the model card loaded
            yield page
        finally:
            browser.close()


def wait_for_video(page) -> str:
    """The ``src`` of the result's video element once it has one."""
    video = page.locator("#result video")
    video.wait_for(timeout=60_000)
    return video.get_attribute("src") or video.locator("source").first.get_attribute("src")


def test_upload_generate_and_watch(page, tmp_path):
    soundfile.write(tmp_path / "speech.wav", speech(1.6), SR)
    page.locator("#photo input[type=file]").set_input_files(FACE)
    page.locator("#speech input[type=file]").set_input_files(str(tmp_path / "speech.wav"))
    page.locator("#photo img").first.wait_for(timeout=15_000)  # both uploads shown before generating
    page.locator("#speech audio, #speech [data-testid=waveform-speech]").first.wait_for(state="attached", timeout=15_000)
    page.locator("#generate").click()
    source = wait_for_video(page)
    assert source and source.endswith(".mp4")
    page.locator("#summary").get_by_text("LSE-C").wait_for(timeout=10_000)
    duration = page.wait_for_function(
        "() => { const v = document.querySelector('#result video'); return v && v.readyState >= 1 && v.duration; }",
        timeout=15_000).json_value()
    assert abs(duration - 1.6) < 0.2  # the browser reads the mp4: 1.6 s of video
    page.wait_for_timeout(1500)  # let the plot and the landmark image settle for the screenshot
    page.screenshot(path=str(tmp_path / "page.png"), full_page=True)
    assert (tmp_path / "page.png").stat().st_size > 10_000


def test_an_example_is_generated_on_first_click_and_cached(page, examples_cache):
    page.get_by_text("bin blue at f two now").first.click()
    assert wait_for_video(page).endswith(".mp4")
    page.locator("#summary").get_by_text("LSE-C").wait_for(timeout=10_000)
    assert any(examples_cache.iterdir())  # kept for the next visitor
    if os.environ.get("TALKINGHEAD_SCREENSHOT"):  # the README's picture: a spoken sentence, video, scores, plot
        page.wait_for_timeout(1500)  # let the plot and the landmark image settle
        page.screenshot(path=os.environ["TALKINGHEAD_SCREENSHOT"], clip={"x": 0, "y": 0, "width": 1400, "height": 1500},
                        full_page=True)
