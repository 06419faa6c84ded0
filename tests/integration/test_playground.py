"""The playground page in a real browser (Debian chromium via selenium) against the real stack with an API key.

One browser session for the module; the tests run in file order (key first, the wrong key last).
PLAYGROUND_SCREENSHOT=docs/playground.png makes the run refresh the README's screenshot.
"""
from __future__ import annotations

import os
import re

import httpx
import numpy as np
import openai
import pytest

from tests.browser.chromium import ensure_chromium, start_chrome

pytestmark = pytest.mark.integration

KEY = "sk-playground-test-0123456789"
WRONG = "sk-playground-wrong-key"
DEMO = {"tiny-llama-3": "text-generation", "tiny-sdxl": "image-generation", "all-MiniLM-L6-v2": "embeddings"}
WAIT_S = 180  # generous: CPU inference on a shared machine


@pytest.fixture(scope="module")
def secured(start_adapter):
    return start_adapter(env={"API_KEYS": KEY})


@pytest.fixture(scope="module")
def client(secured) -> openai.OpenAI:
    return openai.OpenAI(base_url=secured.base_url, api_key=KEY, max_retries=0, timeout=300)


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    reason = ensure_chromium()
    if reason:
        print(f"skipping the browser tests: {reason}")
        pytest.skip(reason)
    driver = start_chrome(tmp_path_factory.mktemp("chromium-profile"))
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page(browser, secured):
    """The page loaded with the right key typed in (kept in localStorage across a reload)."""
    browser.get(f"{secured.url}/playground")
    _wait_text(browser, "models-error", "You didn't provide an API key")  # open page, locked API
    _type(browser, "api-key", KEY)
    browser.refresh()
    assert browser.find_element("id", "api-key").get_attribute("value") == KEY
    return browser


def _wait(driver, condition, timeout: float = WAIT_S):
    from selenium.webdriver.support.ui import WebDriverWait  # noqa: PLC0415

    return WebDriverWait(driver, timeout, poll_frequency=0.1).until(lambda d: condition(d))


def _text(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).get_attribute("textContent")


def _value(driver, element_id: str) -> str:
    return driver.find_element("id", element_id).get_attribute("value")


def _wait_text(driver, element_id: str, needle: str) -> str:
    try:
        return _wait(driver, lambda d: needle in _text(d, element_id) and _text(d, element_id), 30)
    except Exception:  # selenium's TimeoutException says nothing useful: show what the page shows
        pytest.fail(f"#{element_id} never showed {needle!r}; it shows {_text(driver, element_id)!r}")


def _type(driver, element_id: str, text: str) -> None:
    field = driver.find_element("id", element_id)
    field.clear()
    field.send_keys(text)
    driver.execute_script("arguments[0].dispatchEvent(new Event('change'))", field)


def test_page_is_open_and_api_stays_locked(secured):
    for path in ("/", "/playground"):
        resp = httpx.get(secured.url + path)
        assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/html")
        assert "<script>" in resp.text and "://" not in resp.text  # no external assets
    assert httpx.get(f"{secured.base_url}/models").status_code == 401


def test_models_listed_by_task(page, client):
    served = {m.id: m.model_extra["task"] for m in client.models.list().data}
    assert DEMO.items() <= served.items()
    _wait(page, lambda d: d.find_elements("css selector", "#model-list li"), 30)
    listed = {li.get_attribute("data-model-id"): li.find_element("xpath", "ancestor::div[@data-task]")
              .get_attribute("data-task") for li in page.find_elements("css selector", "#model-list li")}
    assert listed == served
    sizes = [o.get_attribute("value") for o in page.find_elements("css selector", "#image-size option")]
    assert sizes == client.models.retrieve("tiny-sdxl").model_extra["sizes"] and "64x64" in sizes


def _chat(page, client, text: str, stop: list[str] | None = None, typed_stop: str = ""):
    """Send `text` from the page at temperature 0; the reply element and the same request made non-streamed."""
    page.find_element("id", "chat-clear").click()
    _type(page, "chat-stop", typed_stop)
    _type(page, "chat-input", text)
    page.find_element("id", "chat-send").click()
    reply = _wait(page, lambda d: d.find_element("css selector", ".msg.assistant[data-done]"))
    assert _text(page, "chat-error") == ""
    expected = client.chat.completions.create(
        model="tiny-llama-3", temperature=0, max_tokens=12, stop=stop,
        messages=[{"role": "system", "content": _value(page, "chat-system").strip()},
                  {"role": "user", "content": text}])
    assert reply.find_element("css selector", ".text").get_attribute("textContent") == \
        expected.choices[0].message.content  # streamed in the page == non-streamed at temperature 0
    return reply, expected


def test_chat_streams_into_the_page(page, client):
    from selenium.webdriver.support.ui import Select  # noqa: PLC0415

    Select(page.find_element("id", "chat-model")).select_by_value("tiny-llama-3")
    _type(page, "chat-temperature", "0")
    _type(page, "chat-max-tokens", "12")
    reply, expected = _chat(page, client, "Hi")
    assert int(reply.get_attribute("data-chunks")) >= 2  # rendered delta by delta
    stats = _text(page, "chat-stats")
    assert re.search(r"time to first token \d+ ms", stats), stats
    usage = expected.usage
    assert f"{usage.prompt_tokens} prompt + {usage.completion_tokens} completion = {usage.total_tokens}" in stats
    assert "finish: length" in stats or "finish: stop" in stats


def test_image_appears(page):
    from selenium.webdriver.support.ui import Select  # noqa: PLC0415

    Select(page.find_element("id", "image-size")).select_by_value("64x64")
    _type(page, "image-n", "2")
    _type(page, "image-seed", "7")
    page.find_element("id", "image-generate").click()
    loaded = "return arguments[0].complete && arguments[0].naturalWidth"
    images = _wait(page, lambda d: [i for i in d.find_elements("css selector", "#image-results img")
                                    if d.execute_script(loaded, i)])
    assert _text(page, "image-error") == ""
    assert len(images) == 2
    assert [page.execute_script("return [arguments[0].naturalWidth, arguments[0].naturalHeight]", i)
            for i in images] == [[64, 64], [64, 64]]
    assert images[0].get_attribute("src") != images[1].get_attribute("src")  # image i uses seed + i


def test_similarity_matrix(page, client, tmp_path):
    page.find_element("id", "embed-run").click()
    _wait(page, lambda d: len(d.find_elements("css selector", "#embed-matrix tr")) == 4, 60)
    assert _text(page, "embed-error") == ""
    shown = np.array([[float(td.text) for td in tr.find_elements("tag name", "td")]
                      for tr in page.find_elements("css selector", "#embed-matrix tr")[1:]])
    texts = _value(page, "embed-input").strip().split("\n")
    vectors = np.array([d.embedding for d in client.embeddings.create(model="all-MiniLM-L6-v2", input=texts,
                                                                      encoding_format="float").data])
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    np.testing.assert_allclose(shown, vectors @ vectors.T, atol=1.5e-3)
    assert shown[0, 1] > shown[0, 2]  # the two cat sentences are closer than cat vs. stock market
    _screenshot(page, tmp_path / "playground.png")


def _screenshot(page, path) -> None:
    """Every test run takes it; PLAYGROUND_SCREENSHOT keeps a small copy (the README's)."""
    from PIL import Image  # noqa: PLC0415

    size = page.get_window_size()
    chrome = size["height"] - page.execute_script("return window.innerHeight")
    page.set_window_size(size["width"], page.execute_script("return document.body.scrollHeight") + chrome)
    page.save_screenshot(str(path))  # the whole page
    page.set_window_size(size["width"], size["height"])
    assert Image.open(path).size[0] >= 1000
    if os.environ.get("PLAYGROUND_SCREENSHOT"):
        Image.open(path).convert("RGB").quantize(colors=128).save(os.environ["PLAYGROUND_SCREENSHOT"], optimize=True)


def test_chat_stop_sequences(page, client):
    full = client.chat.completions.create(
        model="tiny-llama-3", temperature=0, max_tokens=12,
        messages=[{"role": "system", "content": _value(page, "chat-system").strip()},
                  {"role": "user", "content": "Hi"}]).choices[0].message.content
    stop = next(full[i:i + 2] for i in range(2, len(full) - 1) if not set(full[i:i + 2]) & set(",\\\ufffd"))
    _, expected = _chat(page, client, "Hi", stop=[stop, "\n"], typed_stop=stop + r",\n")
    assert len(expected.choices[0].message.content) < len(full) and expected.choices[0].finish_reason == "stop"


def test_wrong_key_shows_the_api_401_message(page, secured):
    message = httpx.get(f"{secured.base_url}/models", headers={"Authorization": f"Bearer {WRONG}"}).json()["error"]
    _type(page, "api-key", WRONG)  # change: stored and the models reloaded
    _wait_text(page, "models-error", f"{message['message']} (HTTP 401, invalid_api_key)")
    _type(page, "chat-input", "Hi again")
    page.find_element("id", "chat-send").click()
    _wait_text(page, "chat-error", message["message"])


def test_serve_prints_the_playground_url(serve, tmp_path):
    """`make serve` runs `launcher serve`: its banner names the page, and the page answers there."""
    (tmp_path / "repo").mkdir()  # no models: the quickest stack to start
    served = serve(tmp_path / "repo")
    served.wait_for(lambda: "/playground" in served.text, 30, "the playground line")
    url = re.search(r"http://\S+/playground", served.text).group(0)
    assert "triton-openai playground" in httpx.get(url).text
