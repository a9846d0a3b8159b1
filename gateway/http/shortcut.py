"""A repeated POST answered from the replay cache before any ASGI machinery is built.

The server hands a whole small POST to ``/graphql`` here first (see
``gateway.server.protocol``). When it is a replay hit, this answers it with
the same checks, bytes, headers, metrics and log line as the endpoint's own
replay; anything else (``None``) goes to the application as usual. Nothing
is decided here that the endpoint would decide differently: every doubt is a
``None``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from typing import Any, Final, NamedTuple

from gateway.api import Services
from gateway.http.callers import Callers
from gateway.http.media import negotiate
from gateway.http.record import RequestRecord, request_id_of

_VARY: Final = (b"vary", b"Accept")


class RawHeaders(Mapping[str, str]):
    """A request's header lines read as Starlette's ``Headers`` reads them: by any case of
    a name, the first line of it from ``get``, every line from ``getlist``; without the
    ``KeyError`` that a missing name costs Starlette's ``get``."""

    __slots__ = ("_raw",)

    def __init__(self, raw: list[tuple[bytes, bytes]]) -> None:
        self._raw = raw  # as uvicorn gives them: names lowercased

    def get(self, key: str, default: Any = None) -> Any:
        """The first line of ``key`` (any case), else ``default``."""
        name = key.lower().encode("latin-1")
        for found, value in self._raw:
            if found == name:
                return value.decode("latin-1")
        return default

    def getlist(self, key: str) -> list[str]:
        """Every line of ``key`` (any case), in order."""
        name = key.lower().encode("latin-1")
        return [value.decode("latin-1") for found, value in self._raw if found == name]

    def __getitem__(self, key: str) -> str:
        value: str | None = self.get(key)
        if value is None:
            raise KeyError(key)
        return value

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name.decode("latin-1") for name, _ in self._raw))

    def __len__(self) -> int:
        return len({name for name, _ in self._raw})


class Answer(NamedTuple):
    """A replayed response: its headers (after the server's own, in Starlette's order), body."""

    headers: list[tuple[bytes, bytes]]
    body: bytes


class PostShortcut:
    """Answers replay hits of ``/graphql`` POSTs for the app whose ``state`` it reads.

    ``state`` is the Starlette app's state: its ``services`` exist once the
    lifespan has started. ``cross_origin`` says whether CORS is configured; a
    request with an ``Origin`` then goes to the app, whose middleware answers it.
    """

    def __init__(self, state: Any, callers: Callers, *, cross_origin: bool) -> None:
        self._state = state
        self._callers = callers
        self._cross_origin = cross_origin

    def answer(
        self, raw_headers: list[tuple[bytes, bytes]], body: bytes, peer: str | None
    ) -> Answer | None:
        """The answer to a replay hit, or ``None`` for the application to answer."""
        started = time.perf_counter()
        services: Services | None = getattr(self._state, "services", None)
        if services is None or services.tracer is not None:
            return None  # not started yet, or traced: the app makes the span
        headers = RawHeaders(raw_headers)
        if self._cross_origin and "origin" in headers:
            return None
        if headers.get("content-type", "").split(";")[0].strip().lower() != "application/json":
            return None
        media_type = negotiate(headers.get("accept"))
        if media_type is None:
            return None
        caller = self._callers.identify(headers, peer)
        if caller.principal is None:
            return None
        replay = services.responses.get(caller.principal, body)
        if replay is None:
            return None
        record = RequestRecord(request_id_of(headers))
        record.replayed(replay, services.metrics)
        record.close(200, time.perf_counter() - started, services.metrics, None, "POST")
        headers_out = [
            _VARY,
            (b"content-length", b"%d" % len(replay.body)),
            (b"content-type", media_type.encode("latin-1")),
            (b"x-request-id", record.request_id.encode("latin-1")),
        ]
        return Answer(headers_out, replay.body)
