"""What one request did, for its metrics, its log line and its span: ids, counts, codes only."""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from gateway.api import RequestBudget
from gateway.cache import Replay
from gateway.http.responses import REQUEST_ID_HEADER
from gateway.observe import Metrics

request_logger = logging.getLogger("gateway.request")

_REQUEST_ID: Final = re.compile(r"[A-Za-z0-9._:-]{1,128}")


def request_id_of(headers: Mapping[str, str]) -> str:
    """The caller's ``X-Request-ID`` when it is sane, else a fresh one."""
    given = headers.get(REQUEST_ID_HEADER, "")
    # 128 random bits as 32 hex digits, as uuid4().hex but without building a UUID.
    return given if _REQUEST_ID.fullmatch(given) else os.urandom(16).hex()


@dataclass
class RequestRecord:
    """What one request did, for its metrics and its log line (ids, counts, codes only)."""

    request_id: str
    counted: bool = True
    operations: list[str | None] = field(default_factory=list)
    upstream_fields: int = 0
    codes: list[str] = field(default_factory=list)
    budget: RequestBudget | None = None
    #: Counts a replayed answer was made of (a replay has no budget: it calls nothing).
    replayed_hits: int = 0

    def replayed(self, replay: Replay, metrics: Metrics) -> None:
        """The request was answered by ``replay``: every count a hit, no upstream call."""
        hits = self.replayed_hits = len(replay.counts)
        metrics.observe_cache("hit", hits)
        self.operations = list(replay.operations)
        self.upstream_fields = replay.upstream_fields

    @property
    def outcome(self) -> str:
        """``ok``, or the first error's code."""
        return self.codes[0] if self.codes else "ok"

    def event(self, status: int, seconds: float) -> dict[str, Any]:
        """The fields of this request's log line."""
        budget = self.budget
        return {
            "request_id": self.request_id,
            "operations": self.operations,
            "aliases": self.upstream_fields,
            "upstream_calls": budget.upstream_calls if budget else 0,
            "cache_hits": budget.cache_hits if budget else self.replayed_hits,
            "status": status,
            "duration_ms": round(seconds * 1000, 2),
            "outcome": self.outcome,
            "codes": sorted(set(self.codes)),
        }

    def close(self, status: int, seconds: float, metrics: Metrics, span: Any, method: str) -> None:
        """Count the request, write its log line, and describe it on its span (if traced)."""
        if not self.counted:
            return
        metrics.observe_request(self.outcome, seconds, self.upstream_fields)
        logged = request_logger.isEnabledFor(logging.INFO)
        if not logged and span is None:
            return  # the event is built only when something reads it
        event = self.event(status, seconds)
        if logged:
            request_logger.info("request", extra={"event": event})
        if span is not None:
            span.set_attributes(
                {
                    "http.request.method": method,
                    "http.route": "/graphql",
                    "http.response.status_code": status,
                    "deepcall.request_id": self.request_id,
                    "graphql.operation.name": [str(op) for op in self.operations],
                    "deepcall.aliases": self.upstream_fields,
                    "deepcall.upstream_calls": event["upstream_calls"],
                    "deepcall.cache_hits": event["cache_hits"],
                    "deepcall.outcome": self.outcome,
                }
            )


def log_stream_end(
    request_id: str,
    transport: str,
    operation: str | None,
    *,
    events: int,
    seconds: float,
    reason: str,
    codes: list[str] | None = None,
) -> None:
    """The log line of one live stream, when it ends: how long, how many events, why."""
    if not request_logger.isEnabledFor(logging.INFO):
        return
    event = {
        "request_id": request_id,
        "transport": transport,
        "operations": [operation],
        "events": events,
        "duration_ms": round(seconds * 1000, 2),
        "outcome": reason,
        "codes": sorted(set(codes or ())),
    }
    request_logger.info("stream", extra={"event": event})
