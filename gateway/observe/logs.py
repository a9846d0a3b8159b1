"""Log formats: one JSON object per line for machines, ``key=value`` text for people.

Records may carry an ``event`` mapping (``logger.info("request", extra={"event": {...}})``);
both formats render its fields. Nothing here knows about credentials: callers
only ever put ids, counts, durations and codes into an event.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import sys
from typing import Any, Final

FORMATS: Final = ("text", "json")
_TEXT: Final = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, event fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` as a single line of JSON."""
        line: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, dict):
            line.update(event)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """The classic line, with an event's fields appended as ``key=value``."""

    def __init__(self) -> None:
        super().__init__(_TEXT)

    def format(self, record: logging.LogRecord) -> str:
        """Render ``record`` for a terminal."""
        text = super().format(record)
        event = getattr(record, "event", None)
        if isinstance(event, dict) and event:
            fields = " ".join(f"{key}={value}" for key, value in event.items())
            head, newline, rest = text.partition("\n")  # keep a traceback below
            text = f"{head} {fields}{newline}{rest}"
        return text


def configure_logging(level: str, format: str) -> None:
    """Send every logger's records to stderr at ``level`` in ``format`` (text or json)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Our own request lines replace uvicorn's access log, the WebSocket's too.
    logging.getLogger("uvicorn.access").disabled = True
    error_log = logging.getLogger("uvicorn.error")
    if not any(isinstance(known, NoSocketAccessLog) for known in error_log.filters):
        error_log.addFilter(NoSocketAccessLog())


class NoSocketAccessLog(logging.Filter):
    """Drops uvicorn's access lines of WebSockets (they name the client's address) and its
    line per opened and closed socket; our stream lines say what happened instead."""

    _DROPPED: Final = ("connection open", "connection closed", "connection rejected")

    def filter(self, record: logging.LogRecord) -> bool:
        """Whether ``record`` is kept."""
        message = record.msg if isinstance(record.msg, str) else ""
        return not (message.startswith('%s - "WebSocket') or message.startswith(self._DROPPED))
