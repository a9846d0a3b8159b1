"""The GraphiQL page, opened with an example query and the credential header names."""

from __future__ import annotations

import datetime as dt
import json

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
  <link rel="stylesheet" href="https://unpkg.com/graphiql@3.8.3/graphiql.min.css">
  <script crossorigin src="https://unpkg.com/react@18.2.0/umd/react.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/react-dom@18.2.0/umd/react-dom.production.min.js"></script>
  <script crossorigin src="https://unpkg.com/graphiql@3.8.3/graphiql.min.js"></script>
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


def graphiql_page(today: dt.date, example_headers: dict[str, str] | None = None) -> str:
    """The GraphiQL HTML for ``today``; ``example_headers`` prefill the headers tab."""
    headers = example_headers or {SSID_HEADER: "<your session id>"}
    return _PAGE.replace("__QUERY__", _script_literal(example_query(today))).replace(
        "__HEADERS__", _script_literal(json.dumps(headers, indent=2))
    )


def _script_literal(text: str) -> str:
    # A JSON string literal that cannot close the <script> element it sits in.
    return json.dumps(text).replace("<", "\\u003c")
