"""GraphiQL in a real headless Chromium, with every address outside loopback blocked."""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

import pytest
from conftest import ACME, Gateway, headers_for

from gateway.http.ide import example_query
from gateway.simulator import Simulator

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)"),
]
# Chromium must not reach anything but loopback: no name resolution, no background traffic.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
]
#: Generous: two cores shared by several test runs, and a 5 MB bundle to compile.
TIMEOUT_MS = 60_000


@pytest.fixture
def browser_page() -> Iterator[object]:
    """A fresh headless Chromium page (Debian's binary, driven by Playwright)."""
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as profile, sync_playwright() as playwright:
        context = playwright.chromium.launch_persistent_context(
            profile, executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            yield context.new_page()
        finally:
            context.close()


def test_graphiql_runs_the_example_query_offline(
    start_gateway: Callable[..., Gateway], browser_page: object
) -> None:
    """GraphiQL 5 renders from the gateway alone, runs its example, shows a direct POST's counts.

    Every request the page (and its Monaco workers) makes goes to the gateway's
    own address, and its Content-Security-Policy is never violated.
    """
    from playwright.sync_api import ConsoleMessage, Page, Request, Worker

    page: Page = browser_page  # type: ignore[assignment]
    gateway = start_gateway(upstream_url="embedded", graphiql=True)
    requested: list[str] = []
    workers: list[str] = []
    console_errors: list[str] = []

    def note_request(request: Request) -> None:
        requested.append(request.url)

    def note_worker(worker: Worker) -> None:
        workers.append(worker.url)

    def note_console(message: ConsoleMessage) -> None:
        if message.type == "error":
            console_errors.append(message.text)

    page.on("request", note_request)
    page.on("worker", note_worker)
    page.on("console", note_console)
    # Violations are events in the page; collect them from before the first script runs.
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', (e) =>"
        " window.__violations.push(`${e.violatedDirective} ${e.blockedURI}`));"
    )
    page.goto(f"{gateway.url}/graphql")
    page.wait_for_selector(".graphiql-container", timeout=TIMEOUT_MS)
    page.wait_for_selector(".graphiql-query-editor .monaco-editor", timeout=TIMEOUT_MS)
    assert "Loading GraphiQL" not in page.inner_text("body")
    editor = page.locator(".graphiql-query-editor").inner_text()
    assert "answeredThisWeek" in editor

    page.locator(".graphiql-execute-button").click()
    page.wait_for_function(
        r"""() => /"today":\s*\d+/.test(
            document.querySelector('.result-window')?.innerText ?? '')""",
        timeout=TIMEOUT_MS,
    )
    shown = page.locator(".result-window").inner_text()
    data = json.loads(re.sub(r"\s+", " ", shown))["data"]
    assert set(data) == {"today", "answeredThisWeek"}
    assert all(isinstance(value, int) for value in data.values())

    # The page's own example, POSTed with the header it prefilled, gives the same numbers.
    today = dt.datetime.now(ZoneInfo("Asia/Kolkata")).date()
    assert ACME.ssid is not None
    assert ACME.ssid in page.locator(".graphiql-editor-tool").inner_text()
    assert gateway.query(example_query(today), headers_for(ACME)) == {"data": data}

    # The Explorer plugin lists the schema's fields, built from introspection.
    page.get_by_role("button", name="Show GraphiQL Explorer").click()
    page.get_by_text("callCountSeries").first.wait_for(timeout=TIMEOUT_MS)

    origin = urlsplit(gateway.url)
    assert {(urlsplit(url).hostname, urlsplit(url).port) for url in requested} == {
        (origin.hostname, origin.port)
    }, requested
    assert any(url.endswith("/graphql/ide/graphiql.js") for url in requested)
    # monaco-graphql starts its worker when its language service first runs: on a busy
    # machine, after everything above. Look again (each wait lets Playwright deliver events).
    for _ in range(150):
        if any(url.endswith("/graphql.worker.js") for url in workers):
            break
        page.wait_for_timeout(200)
    assert any(url.endswith("/graphql.worker.js") for url in workers), workers
    assert page.evaluate("window.__violations") == []
    assert not [text for text in console_errors if "Content Security Policy" in text]


def _replace_editor_text(page: object, editor: str, text: str) -> None:
    """Put ``text`` in one of GraphiQL's editors, as pasted (no brackets closed for us)."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.locator(editor).first.click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Delete")
    page.keyboard.insert_text(text)


def test_graphiql_shows_a_subscriptions_events_as_they_arrive(
    start_gateway: Callable[..., Gateway], sim: Simulator, browser_page: object
) -> None:
    """A subscription run in GraphiQL streams over the WebSocket with the headers tab's
    credential: the count shows at once, and the new count once calls come in."""
    from playwright.sync_api import Page

    page: Page = browser_page  # type: ignore[assignment]
    gateway = start_gateway(graphiql=True, live_min_every=1, cache_ttl=0.5)
    page.goto(f"{gateway.url}/graphql")
    page.wait_for_selector(".graphiql-query-editor .monaco-editor", timeout=TIMEOUT_MS)
    _replace_editor_text(
        page,
        ".graphiql-query-editor .monaco-editor",
        "subscription Live { watch(every: 1) { n: callCount(filter: {campaignId: 9501}) } }",
    )
    page.get_by_role("button", name="Headers").click()
    headers_editor = '.graphiql-editor-tool .monaco-editor[data-uri*="headers"]'
    _replace_editor_text(page, headers_editor, json.dumps(headers_for(ACME)))
    page.locator(".graphiql-execute-button").click()
    shows = r"""(n) => new RegExp(`"n":\\s*${n}\\b`).test(
        document.querySelector('.result-window')?.innerText ?? '')"""
    page.wait_for_function(shows, arg=0, timeout=TIMEOUT_MS)
    sim.add_calls("acme", 2, campaign_id=9501)
    page.wait_for_function(shows, arg=2, timeout=TIMEOUT_MS)
