"""The GraphiQL page, opened with an example query and the credential header names."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from gateway.context import SSID_HEADER


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
  <style>body { margin: 0; height: 100vh; } #graphiql { height: 100vh; }</style>
  <link rel="stylesheet" href="__GRAPHIQL_CSS__">
  <script crossorigin src="__REACT__"></script>
  <script crossorigin src="__REACT_DOM__"></script>
  <script crossorigin src="__GRAPHIQL__"></script>
</head>
<body>
  <div id="graphiql">Loading GraphiQL…</div>
  <script>
    const fetcher = GraphiQL.createFetcher({ url: window.location.pathname });
    ReactDOM.createRoot(document.getElementById("graphiql")).render(
      React.createElement(GraphiQL, {
        fetcher,
        defaultQuery: __QUERY__,
        defaultHeaders: __HEADERS__,
        shouldPersistHeaders: false,
      })
    );
  </script>
</body>
</html>
"""


LOCAL_PREFIX = "/graphql/ide/"
CDN_ASSETS = {
    "__GRAPHIQL_CSS__": "https://unpkg.com/graphiql@3.8.3/graphiql.min.css",
    "__REACT__": "https://unpkg.com/react@18.3.1/umd/react.production.min.js",
    "__REACT_DOM__": "https://unpkg.com/react-dom@18.3.1/umd/react-dom.production.min.js",
    "__GRAPHIQL__": "https://unpkg.com/graphiql@3.8.3/graphiql.min.js",
}
LOCAL_ASSETS = {
    "__GRAPHIQL_CSS__": "graphiql.min.css",
    "__REACT__": "react.production.min.js",
    "__REACT_DOM__": "react-dom.production.min.js",
    "__GRAPHIQL__": "graphiql.min.js",
}


def local_assets_present(folder: Path) -> bool:
    """Whether ``folder`` holds every file the page loads (see ``gateway.ide_fetch``)."""
    return all((folder / name).is_file() for name in LOCAL_ASSETS.values())


def graphiql_page(
    today: dt.date, example_headers: dict[str, str] | None = None, *, local: bool = True
) -> str:
    """The GraphiQL HTML for ``today``; ``example_headers`` prefill the headers tab.

    With ``local`` the page loads its scripts from ``/graphql/ide/``, else from a CDN.
    """
    headers = example_headers or {SSID_HEADER: "<your session id>"}
    page = _PAGE.replace("__QUERY__", _script_literal(example_query(today))).replace(
        "__HEADERS__", _script_literal(json.dumps(headers, indent=2))
    )
    for marker, cdn in CDN_ASSETS.items():
        page = page.replace(marker, LOCAL_PREFIX + LOCAL_ASSETS[marker] if local else cdn)
    return page


def _script_literal(text: str) -> str:
    # A JSON string literal that cannot close the <script> element it sits in.
    return json.dumps(text).replace("<", "\\u003c")
