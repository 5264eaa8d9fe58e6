"""The chat page in a real browser: headless Chromium (Debian's chromium + chromium-driver,
driven by selenium) asks a question on 127.0.0.1 and sees the answer stream in, piece by piece;
reset clears the conversation. Skipped, saying why, where Chromium or its driver is absent
(.ci/run installs them)."""

from __future__ import annotations

import shutil
import time

import pytest

from model.inference import answer
from serving.api import create_app
from serving.background import BackgroundServer
from serving.engine import ChatEngine
from tests.inference_helpers import build_tokenizer, tiny_gpt

CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.usefixtures("one_torch_thread"),
    pytest.mark.skipif(
        CHROMIUM is None or DRIVER is None,
        reason="needs Debian's chromium and chromium-driver (apt-get install -y chromium chromium-driver)",
    ),
]

NAME = "ww2lm-page"
QUESTION = "Who commanded the 6th Army at Stalingrad?"
# every flag keeps the browser from reaching out (updates, sync, field trials) or needing a GPU
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--window-size=1000,700",
)
PIECE_DELAY_S = 0.05  # slow enough that the page must show several partial answers


class SlowEngine(ChatEngine):
    """Pauses after each piece, as a large model would, so streaming is visible in the DOM."""

    def pieces(self, prompt, sampling, reply):
        for piece in super().pieces(prompt, sampling, reply):
            time.sleep(PIECE_DELAY_S)
            yield piece


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    tokenizer = build_tokenizer(tmp_path_factory.mktemp("page"))
    return SlowEngine(tiny_gpt(vocab_size=tokenizer.vocab_size, context_length=96), tokenizer, NAME)


@pytest.fixture
def browser(tmp_path):
    from selenium import webdriver  # imported here: a module-level import would fail collection without it
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (*CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / 'profile'}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=DRIVER), options=options)  # no driver download
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def wait_for(condition, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


# records every text the answer shows while it streams in
WATCH_ANSWERS = """
window.seen = [];
new MutationObserver(() => {
  const answers = document.querySelectorAll('.msg.assistant');
  if (answers.length) window.seen.push(answers[answers.length - 1].textContent);
}).observe(document.getElementById('log'), {childList: true, subtree: true, characterData: true});
"""


def test_a_question_gets_a_streamed_answer_and_reset_clears_it(engine, browser, tmp_path):
    from selenium.webdriver.common.by import By

    expected, _ = answer(engine.model, engine.tokenizer, [{"role": "user", "content": QUESTION}], 40, temperature=0.0)
    with BackgroundServer(create_app(engine)) as server:
        browser.get(server.url + "/")
        info = wait_for(lambda: NAME in (t := browser.find_element(By.ID, "model-info").text) and t, what="model info")
        assert "context 96" in info and "2 layers" in info
        for field, value in (("temperature", "0"), ("max-tokens", "40")):
            browser.find_element(By.ID, field).clear()
            browser.find_element(By.ID, field).send_keys(value)
        browser.execute_script(WATCH_ANSWERS)
        browser.find_element(By.ID, "question").send_keys(QUESTION)
        browser.find_element(By.ID, "send").click()
        shown = wait_for(
            lambda: (
                browser.find_element(By.ID, "send").is_enabled()
                and (a := browser.find_elements(By.CSS_SELECTOR, ".msg.assistant"))
                and a[-1].get_attribute("textContent")
            ),
            what="the answer",
        )
        browser.save_screenshot(str(tmp_path / "chat_page.png"))
        assert shown == expected
        partial = [t for t in browser.execute_script("return window.seen") if t and t != expected]
        assert len(set(partial)) >= 3 and all(expected.startswith(t) for t in partial)  # it grew piece by piece
        assert browser.find_element(By.CSS_SELECTOR, ".msg.user").text == QUESTION
        browser.find_element(By.ID, "reset").click()
        assert browser.find_elements(By.CSS_SELECTOR, ".msg") == []
