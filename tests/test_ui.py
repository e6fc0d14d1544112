"""The chat page end to end: Debian's Chromium, driven by Playwright's Python client,
against one real `ragline serve` (vLLM on the embedded model) with `samples/` in "demo"
and API keys configured.

Setup (scripts/setup.sh does both): `apt-get install chromium` and the `playwright`
package from the dev extra. `playwright install` is never needed: the tests launch
/usr/bin/chromium (override with RAGLINE_CHROMIUM). Screenshots, desktop and phone, go
to pytest's tmp folder (`--basetemp` to choose it); docs/chat-page*.png came from here.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from servers import REPO, ServeProcess, key_hash

from ragline.ingest.collection import Collection
from ragline.ingest.pipeline import IngestPipeline, Status
from ragline.settings import load_settings

pytestmark = pytest.mark.slow

CHROMIUM = os.environ.get("RAGLINE_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_KEY = "sk-ragline-ui-admin"
QUESTION = "What does LayoutParser provide?"
COUNTING = "Count from 1 to 500, separated by commas: 1, 2, 3, 4, 5,"
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
START_TIMEOUT_S = 400
ANSWER_TIMEOUT_MS = 180_000
NOTE = b"The tenant handbook says lunch is served at noon on the roof.\n"
ZEBRA = b"# Zebra facts\n\nThe zebra crossing was introduced in 1951 in Slough.\n"


@dataclass
class Server:
    url: str
    log: Path

    def http(self, key: str | None = ADMIN_KEY, timeout: float = 120) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=timeout)

    def health(self) -> dict[str, Any]:
        with self.http(None) as http:
            body: dict[str, Any] = http.get("/health").json()
        return body


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, llm_models_dir: Path) -> Iterator[Server]:
    """One server for the module: this checkout's code (PYTHONPATH), one key, admission of
    1 streaming + 1 waiting so that a 429 is reachable."""
    root = tmp_path_factory.mktemp("ui-server")
    data = root / "var"
    env = {
        "RAGLINE_STORAGE__DATA_DIR": str(data),
        "RAGLINE_STORAGE__MODELS_DIR": str(llm_models_dir),
        "RAGLINE_GENERATION__KV_CACHE_GB": "1",
        "RAGLINE_GENERATION__MAX_TOKENS": "48",
        "RAGLINE_PARSING__WORKERS": "1",
        "RAGLINE_API__MAX_ACTIVE_GENERATIONS": "1",
        "RAGLINE_API__MAX_QUEUED": "1",
        "RAGLINE_API__RETRY_AFTER_S": "1",
        # The Stop test needs a long answer to a question the samples do not cover.
        "RAGLINE_GENERATION__ABSTAIN_BELOW": "0",
        "RAGLINE_API__KEYS": json.dumps([{"sha256": key_hash(ADMIN_KEY), "name": "admin"}]),
    }
    # "demo" is ingested before the server starts: nothing of the ingest (its lock, its
    # parse workers) overlaps the server's start-up.
    settings = load_settings(storage={"data_dir": data}, parsing={"workers": 1})
    demo = Collection.open(settings.storage.collections_dir, "demo", settings.index, True)
    report = IngestPipeline(settings, demo).run([REPO / "samples"])
    demo.close()
    assert report.count(Status.INGESTED) >= 7, report.failures
    process = ServeProcess(env, root / "server.log")  # jobs and cache in-process
    try:
        server = Server(process.wait_ready(START_TIMEOUT_S), process.log)
        _check_answers(server)
        yield server
    finally:
        process.stop()


def _check_answers(server: Server) -> None:
    """One short answer over "demo" through the whole path before any page opens: a
    failure here says what the server did (its log), not only that a page waited."""
    body = {"model": "demo", "messages": [{"role": "user", "content": QUESTION}], "max_tokens": 8}
    try:
        with server.http(timeout=ANSWER_TIMEOUT_MS / 1000) as http:
            response = http.post("/v1/chat/completions", json=body)
        ok = response.status_code == 200 and bool(response.json()["sources"])
        detail = response.text[:500]
    except httpx.HTTPError as exc:
        ok, detail = False, repr(exc)
    tail = "\n".join(server.log.read_text(errors="replace").splitlines()[-80:])
    assert ok, f"no answer over demo: {detail}\nserver log:\n{tail}"


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not shutil.which(CHROMIUM):
        pytest.skip(f"{CHROMIUM} not found: apt-get install chromium")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("screenshots")


class Page:
    """A browser tab on the chat page; JavaScript errors fail the test."""

    def __init__(self, browser: Any, server: Server, key: str | None, viewport: dict[str, int]):
        self.context = browser.new_context(
            base_url=server.url,
            viewport=viewport,
            device_scale_factor=2 if viewport == PHONE else 1,
            color_scheme="light",
            reduced_motion="reduce",
        )
        self.context.set_default_timeout(60_000)
        if key is not None:
            # What the settings dialog stores: the key for this tab only.
            self.context.add_init_script(
                f"sessionStorage.setItem('ragline.apiKey', {json.dumps(json.dumps(key))})"
            )
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("console", self._console)
        self.page.goto("/")

    def _console(self, message: Any) -> None:
        # Chromium logs every 4xx/5xx a fetch gets ("Failed to load resource"): expected
        # here. Anything else (a CSP refusal, a script error) is a bug.
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            self.errors.append(message.text)

    def pick(self, collection: str = "demo") -> None:
        self.page.wait_for_selector(f"#collection option[value='{collection}']", state="attached")
        self.page.select_option("#collection", collection)

    def ask(self, question: str) -> None:
        self.page.fill("#question", question)
        self.page.press("#question", "Enter")

    def last_answer(self) -> Any:
        return self.page.locator(".turn-assistant").last

    def wait_answer(self) -> Any:
        turn = self.last_answer()
        turn.locator(".answer[aria-busy='false']").wait_for(timeout=ANSWER_TIMEOUT_MS)
        return turn

    def screenshot(self, path: Path) -> None:
        """Without focus rings or hover: the page as it looks at rest."""
        self.page.evaluate("document.activeElement && document.activeElement.blur()")
        self.page.mouse.move(self.page.viewport_size["width"] // 2, 30)  # the empty top bar
        self.page.screenshot(path=str(path))

    def close(self) -> None:
        self.context.close()
        assert not self.errors, self.errors


@pytest.fixture
def open_page(browser: Any, server: Server) -> Iterator[Any]:
    pages: list[Page] = []

    def make(key: str | None = ADMIN_KEY, viewport: dict[str, int] = DESKTOP) -> Page:
        page = Page(browser, server, key, viewport)
        pages.append(page)
        return page

    yield make
    for page in pages:
        page.close()


def _idle(server: Server, timeout: float = 60) -> dict[str, Any]:
    """Wait until nothing generates or waits: no admission slot and no vLLM request."""
    deadline = time.monotonic() + timeout
    while True:
        health = server.health()
        if health["generation"] == {"active": 0, "queued": 0} and not health["engine"].get(
            "unfinished_requests"
        ):
            return health
        assert time.monotonic() < deadline, health
        time.sleep(0.1)


def test_page_and_assets_need_no_key(server: Server) -> None:
    with server.http(None) as http:
        page = http.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "default-src 'self'" in page.headers["content-security-policy"]
        for asset, kind in (
            ("/ui/app.js", "javascript"),
            ("/ui/api.js", "javascript"),
            ("/ui/dom.js", "javascript"),
            ("/ui/style.css", "text/css"),
            ("/ui/icon.svg", "image/svg+xml"),
        ):
            response = http.get(asset)
            assert response.status_code == 200, asset
            assert kind in response.headers["content-type"], response.headers
        assert http.get("/ui/nope.js").status_code == 404
        assert http.get("/v1/models").status_code == 401  # only the API needs the key
    # No CDN: every script and style the page loads comes from /ui/.
    assert "http://" not in page.text and "https://" not in page.text
    assert f"chat page: {server.url}/" in server.log.read_text()


def test_wrong_key_is_explained_and_settings_fix_it(open_page: Any) -> None:
    tab = open_page(key="sk-wrong")
    banner = tab.page.locator("#banner")
    banner.wait_for()
    assert "API key was refused" in banner.inner_text()
    tab.page.get_by_role("button", name="Enter API key", exact=True).click()
    dialog = tab.page.locator("#settings-dialog")
    assert dialog.is_visible()
    assert tab.page.evaluate("document.activeElement.id") == "api-key"
    tab.page.fill("#api-key", ADMIN_KEY)
    tab.page.press("#api-key", "Enter")  # submits: Save
    assert not dialog.is_visible()
    tab.pick("demo")
    assert banner.is_hidden()
    assert tab.page.evaluate("JSON.parse(sessionStorage.getItem('ragline.apiKey'))") == ADMIN_KEY
    tab.page.locator("#documents li").nth(6).wait_for()  # samples/ listed


def test_chat_streams_with_sources_and_preview(server: Server, open_page: Any, shots: Path) -> None:
    tab = open_page()
    page = tab.page
    tab.pick("demo")
    # Record the answer's length at every change: streamed text grows in steps.
    page.evaluate(
        """() => {
        window.lengths = [];
        new MutationObserver(() => {
          const answers = document.querySelectorAll('.answer');
          const last = answers[answers.length - 1];
          if (last) window.lengths.push(last.textContent.length);
        }).observe(document.getElementById('log'),
                   {subtree: true, childList: true, characterData: true});
    }"""
    )
    # Shift+Enter is a new line, Enter sends.
    page.fill("#question", "first line")
    page.press("#question", "Shift+Enter")
    page.keyboard.type("second")
    assert page.input_value("#question") == "first line\nsecond"
    page.fill("#question", QUESTION)
    with page.expect_request("**/v1/chat/completions") as request:
        page.press("#question", "Enter")
    body = request.value.post_data_json
    assert body["model"] == body["collection"] == "demo" and body["stream"] is True
    assert page.locator("#stop").is_visible()
    answer = page.locator(".turn-assistant .answer").first
    assert answer.get_attribute("aria-live") == "polite"
    turn = tab.wait_answer()
    assert page.locator("#send").is_visible()

    text = turn.locator(".answer").inner_text()
    assert text.strip()
    lengths = [n for n in page.evaluate("window.lengths") if n > 0]
    assert len(set(lengths)) >= 3, f"the answer did not stream: {lengths}"
    status = turn.locator(".answer-status")
    assert "error" not in (status.get_attribute("class") or ""), status.inner_text()
    sources = turn.locator(".source-item")
    assert sources.count() >= 1
    kinds = set(sources.evaluate_all("els => els.map(e => e.dataset.kind)"))
    assert kinds <= {"cited", "attributed", "retrieved"}
    names = sources.evaluate_all("els => els.map(e => e.querySelector('.name').textContent)")
    assert "layout-parser-paper-fast.pdf" in names

    # A chip when the model wrote [n], else the first source listed.
    chips = turn.locator(".answer button.chip")
    trigger = chips.first if chips.count() else sources.first
    trigger.click()
    dialog = page.locator("#source-dialog")
    assert dialog.is_visible()
    assert page.evaluate("document.activeElement.getAttribute('aria-label')") == "Close source"
    assert page.locator("#source-title").inner_text().split("] ", 1)[1] in names
    assert page.locator("#source-text").inner_text().strip()
    assert page.locator("#source-meta").inner_text().count("Score") == 1
    if page.locator("#source-text mark").count():
        assert page.locator("#source-quote").inner_text().strip()
    page.screenshot(path=str(shots / "chat-page-source.png"))
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    assert page.evaluate(
        "document.activeElement.classList.contains('source-item') || "
        "document.activeElement.classList.contains('chip')"
    )

    tab.screenshot(shots / "chat-page.png")

    # A follow-up carries the conversation.
    with page.expect_request("**/v1/chat/completions") as request:
        tab.ask("Who are its authors?")
    roles = [m["role"] for m in request.value.post_data_json["messages"]]
    assert roles == ["user", "assistant", "user"]
    tab.wait_answer()
    assert page.locator(".turn-assistant").count() == 2

    # The collection is remembered by this browser.
    page.reload()
    page.wait_for_selector("#collection option[value='demo']", state="attached")
    assert page.input_value("#collection") == "demo"


def test_stop_ends_the_stream_and_the_generation(server: Server, open_page: Any) -> None:
    _idle(server)
    tab = open_page()
    page = tab.page
    tab.pick("demo")
    page.get_by_role("button", name="Settings", exact=True).click()
    page.fill("#max-tokens", "400")
    page.get_by_role("button", name="Save", exact=True).click()
    tab.ask(COUNTING)
    answer = page.locator(".turn-assistant .answer").last
    page.wait_for_function(
        "() => { const a = [...document.querySelectorAll('.answer')].pop();"
        " return a && a.textContent.length >= 12; }",
        timeout=ANSWER_TIMEOUT_MS,
    )
    assert answer.get_attribute("aria-busy") == "true", "the answer ended before Stop"
    health = server.health()
    assert health["generation"]["active"] == 1 and health["engine"]["unfinished_requests"] == 1
    page.get_by_role("button", name="Stop", exact=True).click()
    turn = tab.wait_answer()
    assert turn.locator(".answer-status").inner_text().startswith("Stopped")
    stopped_at = len(answer.inner_text())
    _idle(server, timeout=15)  # the server aborted the vLLM request
    time.sleep(1)
    assert len(answer.inner_text()) == stopped_at
    assert page.locator("#send").is_visible() and page.locator("#stop").is_hidden()
    assert page.evaluate("document.activeElement.id") == "question"


def test_429_is_retried_after_retry_after(server: Server, open_page: Any) -> None:
    _idle(server)
    tab = open_page()
    page = tab.page
    tab.pick("demo")
    blocker_body = {
        "model": "builtin:smollm2-135m-instruct",
        "prompt": "1, 2, 3, 4, 5,",
        "max_tokens": 400,
        "temperature": 0,
        "stream": True,
    }
    waiting: list[int] = []
    with server.http() as http:
        with http.stream("POST", "/v1/completions", json=blocker_body) as blocker:
            lines = blocker.iter_lines()
            while not next(lines).startswith("data:"):
                pass  # the blocker holds the only slot

            def wait_in_queue() -> None:
                body = {"model": "demo", "messages": [{"role": "user", "content": "hi"}]}
                with server.http() as other:
                    response = other.post("/v1/chat/completions", json={**body, "max_tokens": 4})
                    waiting.append(response.status_code)

            queued = threading.Thread(target=wait_in_queue)
            queued.start()
            deadline = time.monotonic() + 15
            while server.health()["generation"]["queued"] != 1:
                assert time.monotonic() < deadline
                time.sleep(0.05)
            tab.ask(QUESTION)  # refused with 429: the page waits and retries
            status = tab.last_answer().locator(".answer-status")
            page.wait_for_function(
                "() => [...document.querySelectorAll('.answer-status')].pop()"
                ".textContent.includes('Server busy')",
                timeout=20_000,
            )
            assert "retrying in" in status.inner_text()
        # The blocker is gone; the waiting request runs, then the page's retry.
        queued.join(120)
    assert waiting == [200]
    turn = tab.wait_answer()
    assert turn.locator(".answer").inner_text().strip()
    assert "error" not in (turn.locator(".answer-status").get_attribute("class") or "")
    assert turn.locator(".source-item").count() >= 1


def test_upload_progress_list_search_and_delete(server: Server, open_page: Any) -> None:
    tab = open_page()
    page = tab.page
    tab.pick("demo")
    page.wait_for_selector("#documents li")
    before = page.locator("#documents li").count()

    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="choose files").click()
    chooser.value.set_files([{"name": "zebra.md", "mimeType": "text/markdown", "buffer": ZEBRA}])
    # A corrupt PDF dropped on the drop zone: its job reports the file's error.
    page.evaluate(
        """() => {
        const data = new DataTransfer();
        const bytes = new Uint8Array(2048).map((_, i) => i % 256);
        data.items.add(new File(['%PDF-1.4\\n', bytes], 'broken.pdf', {type: 'application/pdf'}));
        const zone = document.getElementById('dropzone');
        zone.dispatchEvent(new DragEvent('dragenter', {dataTransfer: data, bubbles: true}));
        zone.dispatchEvent(new DragEvent('drop', {dataTransfer: data, bubbles: true}));
    }"""
    )
    jobs = page.locator("#jobs .job")
    jobs.nth(1).wait_for()
    for job in (jobs.nth(0), jobs.nth(1)):
        page.wait_for_function(
            "job => ['succeeded', 'failed'].includes(job.dataset.status)",
            arg=job.element_handle(),
            timeout=ANSWER_TIMEOUT_MS,
        )
    by_title = {job.locator(".job-title").inner_text(): job for job in (jobs.nth(0), jobs.nth(1))}
    zebra, broken = by_title["zebra.md"], by_title["broken.pdf"]
    assert zebra.get_attribute("data-status") == "succeeded"
    assert "1 ingested" in zebra.locator(".job-status").inner_text()
    bar = zebra.locator("progress")
    assert bar.get_attribute("value") == bar.get_attribute("max") == "1"
    assert "1 failed" in broken.locator(".job-status").inner_text()
    assert broken.locator(".job-errors").inner_text().startswith("broken.pdf: ")

    row = page.locator("#documents li[data-name='zebra.md']")
    row.wait_for()
    assert page.locator("#documents li").count() == before + 1
    assert page.locator("#documents li[data-name='broken.pdf']").count() == 0
    with server.http() as http:
        query = {"query": "zebra crossing Slough", "collection": "demo"}
        hit = http.post("/v1/retrieve", json=query).json()
        assert hit["passages"][0]["source"] == "zebra.md"

        # Delete takes two clicks: the first arms the button.
        row.get_by_role("button", name="Delete zebra.md", exact=True).click()
        row.get_by_role("button", name="Confirm: delete zebra.md", exact=True).click()
        row.wait_for(state="detached")
        assert page.locator("#documents li").count() == before
        names = {d["name"] for d in http.get("/v1/collections/demo/documents").json()["data"]}
        assert "zebra.md" not in names

    # A new collection is created on the server by its first upload.
    page.get_by_text("New collection", exact=True).click()
    page.fill("#new-collection-name", "notes")
    page.press("#new-collection-name", "Enter")
    assert page.input_value("#collection") == "notes"
    with page.expect_file_chooser() as chooser:
        page.get_by_role("button", name="choose files").click()
    chooser.value.set_files([{"name": "note.txt", "mimeType": "text/plain", "buffer": NOTE}])
    page.locator("#documents li[data-name='note.txt']").wait_for(timeout=ANSWER_TIMEOUT_MS)
    assert page.locator("#collection option[value='notes']").inner_text() == "notes · 1 doc"


def test_phone_layout_documents_drawer_and_dark_theme(
    server: Server, open_page: Any, shots: Path
) -> None:
    _idle(server)
    tab = open_page(viewport=PHONE)
    page = tab.page
    tab.pick("demo")
    assert page.locator("#sidebar").is_hidden()  # a drawer on a phone
    toggle = page.get_by_role("button", name="Documents", exact=True)
    toggle.click()
    assert toggle.get_attribute("aria-expanded") == "true"
    page.locator("#sidebar").wait_for(state="visible")
    page.locator("#documents li").first.wait_for()
    page.get_by_role("button", name="choose files").focus()
    page.keyboard.press("Escape")
    assert toggle.get_attribute("aria-expanded") == "false"

    tab.ask(QUESTION)
    turn = tab.wait_answer()
    assert turn.locator(".source-item").count() >= 1
    width = page.evaluate("document.documentElement.scrollWidth")
    assert width <= PHONE["width"], f"horizontal scroll on a phone: {width}px"
    tab.screenshot(shots / "chat-page-phone.png")

    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    page.get_by_role("button", name="Switch to dark theme").click()
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.evaluate("getComputedStyle(document.body).backgroundColor") != background
    tab.screenshot(shots / "chat-page-phone-dark.png")
    page.reload()  # the choice is remembered
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert page.get_by_role("button", name="Switch to light theme").is_visible()
