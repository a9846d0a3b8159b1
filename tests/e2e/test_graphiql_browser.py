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
from conftest import Gateway

from gateway.ide import example_query, local_assets_present
from gateway.ide_fetch import DEFAULT_DEST

CHROMIUM = shutil.which("chromium")
pytestmark = [
    pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (installed by .ci/run)"),
    pytest.mark.skipif(
        not local_assets_present(DEFAULT_DEST),
        reason="needs the GraphiQL assets: deepcall-gateway fetch-ide (run by .ci/run)",
    ),
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
    """The page loads only from the gateway, runs its two-alias example, and shows the counts."""
    from playwright.sync_api import Page, Request

    page: Page = browser_page  # type: ignore[assignment]
    gateway = start_gateway(upstream_url="embedded", graphiql=True)
    requested: list[str] = []

    def note(request: Request) -> None:
        requested.append(request.url)

    page.on("request", note)
    page.goto(f"{gateway.url}/graphql")
    page.wait_for_selector(".graphiql-container", timeout=20_000)
    page.locator(".graphiql-execute-button").click()
    page.wait_for_function(
        r"""() => /"today":\s*\d+/.test(
            document.querySelector('.result-window')?.innerText ?? '')""",
        timeout=20_000,
    )
    shown = page.locator(".result-window").inner_text()
    rendered = json.loads(re.sub(r"\s+", " ", shown))
    data = rendered["data"]
    assert set(data) == {"today", "answeredThisWeek"}
    assert all(isinstance(value, int) for value in data.values())

    # The page's own example, POSTed with the header it prefilled, gives the same numbers.
    assert "X-DeepCall-SSID" in page.content()
    zone = ZoneInfo("Asia/Kolkata")
    direct = gateway.query(
        example_query(dt.datetime.now(zone).date()), {"X-DeepCall-SSID": "demo-ssid-acme"}
    )
    assert direct == {"data": data}

    hosts = {urlsplit(url).hostname for url in requested}
    assert hosts == {"127.0.0.1"}, requested
    assert any(url.endswith("/graphql/ide/graphiql.min.js") for url in requested)
