"""The GraphiQL page: GraphiQL 5 with the Explorer plugin, served from the package itself.

The built assets live in ``ide_assets/`` (rebuilt by ``ide/build.mjs``; each
file's SHA-256 in ``MANIFEST.json``): no CDN, no network, no inline script.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
from pathlib import Path
from typing import Final

from starlette.responses import HTMLResponse

from gateway.http.callers import SSID_HEADER

ASSETS: Final = Path(__file__).resolve().parent / "ide_assets"
ASSETS_PATH: Final = "/graphql/ide"
MANIFEST: Final = "MANIFEST.json"

#: Nothing but the gateway itself. Styles alone may also be inline: Monaco writes
#: its themes into <style> elements and renders each line as HTML with style
#: attributes (a stricter style-src leaves the editor unstyled). Never scripts.
CONTENT_SECURITY_POLICY: Final = "; ".join(
    (
        "default-src 'none'",
        "script-src 'self'",
        "worker-src 'self'",
        "style-src 'self' 'unsafe-inline'",
        "font-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    )
)


def example_query(today: dt.date) -> str:
    """A two-alias dashboard query over ``today`` and the week before it."""
    week_start = today - dt.timedelta(days=6)
    return f"""\
# Two aliases, two cached upstream questions, one round trip.
query Dashboard {{
  today: callCount(filter: {{from: "{today} 00:00:00", to: "{today} 23:59:59"}})
  answeredThisWeek: callCount(
    filter: {{from: "{week_start} 00:00:00", to: "{today} 23:59:59", statuses: ["answered"]}}
  )
}}
"""


_PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>deepcall-gateway GraphiQL</title>
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <link rel="stylesheet" href="{assets}/graphiql.css">
  <script type="module" src="{assets}/graphiql.js"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script type="application/json" id="graphiql-config">{config}</script>
</body>
</html>
"""


def graphiql_page(
    today: dt.date, endpoint: str = "/graphql", example_headers: dict[str, str] | None = None
) -> str:
    """The GraphiQL HTML for ``today``; ``example_headers`` prefill the headers tab.

    The example query and headers travel in a JSON data block that the bundled
    bootstrap reads: the page carries no script of its own.
    """
    headers = example_headers or {SSID_HEADER: "<your session id>"}
    config = {
        "url": endpoint,
        "query": example_query(today),
        "headers": json.dumps(headers, indent=2),
    }
    # A JSON data block is never run; "<" escaped, it cannot close its element either.
    data = json.dumps(config).replace("<", "\\u003c")
    return _PAGE.format(assets=html.escape(ASSETS_PATH), config=data)


def graphiql_response(
    today: dt.date, endpoint: str, example_headers: dict[str, str] | None
) -> HTMLResponse:
    """The GraphiQL page under its Content-Security-Policy."""
    return HTMLResponse(
        graphiql_page(today, endpoint, example_headers),
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
        },
    )


def check_assets(folder: Path = ASSETS) -> list[str]:
    """What differs between ``folder`` and its ``MANIFEST.json``; empty when they agree."""
    try:
        listed: dict[str, str] = json.loads((folder / MANIFEST).read_text())["sha256"]
    except (OSError, ValueError, KeyError) as exc:
        return [f"{folder / MANIFEST}: {exc}"]
    present = {
        path.relative_to(folder).as_posix()
        for path in folder.rglob("*")
        if path.is_file() and path.name != MANIFEST
    }
    problems = [f"missing: {name}" for name in sorted(listed.keys() - present)]
    problems += [f"not in the manifest: {name}" for name in sorted(present - listed.keys())]
    for name in sorted(listed.keys() & present):
        if hashlib.sha256((folder / name).read_bytes()).hexdigest() != listed[name]:
            problems.append(f"changed: {name}")
    return problems
