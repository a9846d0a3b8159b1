"""``Simulator``: what one simulated upstream serves from and what tests inspect.

It owns the generated call log, the fault switches and the record of requests
received. The Starlette app (``create_simulator_app``) reads it per request.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from datetime import datetime
from types import TracebackType
from typing import Any
from zoneinfo import ZoneInfo

from gateway.simulator.credentials import describe
from gateway.simulator.data import TIME_FORMAT, Call, CallFilter, CallStore
from gateway.simulator.faults import Faults
from gateway.simulator.params import parse_filter

NOT_JSON: Any = object()
"""What ``Simulator.record`` returns for a body that is empty or not JSON."""


class Simulator:
    """A seeded, deterministic stand-in for DeepCall's ``reportCount``.

    ``now`` (default: the current time) is read in the zone ``tz``, or taken as
    already in it when naive, and truncated to the minute; calls fill the 90 days
    before it. ``path`` is ``":memory:"`` or an SQLite file to (re)write. The
    last ``max_recorded`` request bodies are kept (``requests``), however long
    it serves. Close the simulator, or use it as a context manager, to release
    the database.
    """

    def __init__(
        self,
        seed: int = 7,
        calls: int = 60_000,
        path: str = ":memory:",
        now: datetime | None = None,
        tz: str = "Asia/Kolkata",
        max_recorded: int = 10_000,
    ) -> None:
        zone = ZoneInfo(tz)
        if now is None:
            now = datetime.now(zone)
        elif now.tzinfo is not None:
            now = now.astimezone(zone)
        self.seed = seed
        self.tz = tz
        self.now = now.replace(tzinfo=None, second=0, microsecond=0)
        self.faults = Faults()
        self._scoped_faults: dict[str, Faults] = {}
        self.requests: list[dict[str, Any]] = []
        self._max_recorded = max_recorded
        #: Test-only sessions beyond the demo ones: ssid -> account, full access.
        self.sessions: dict[str, str] = {}
        self._request_count = 0
        self._recorded = threading.Condition()
        self._store = CallStore(seed, calls, self.now, path)

    def __repr__(self) -> str:
        return f"Simulator(seed={self.seed!r}, now={self.now.isoformat(' ')!r}, tz={self.tz!r})"

    def __enter__(self) -> Simulator:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release held requests and close the database."""
        self.release_held()
        self._store.close()

    # -- fault switches ------------------------------------------------------

    def faults_for(self, credential: str) -> Faults:
        """Switches for the requests of one credential only: its ssid, or its userId."""
        return self._scoped_faults.setdefault(credential, Faults())

    def faults_of(self, payload: Any) -> Faults:
        """The switches that apply to a request: its credential's own while on, else everyone's."""
        if isinstance(payload, dict):
            for field in ("ssid", "userId"):
                scoped = self._scoped_faults.get(str(payload.get(field)))
                if scoped is not None and scoped.active:
                    return scoped
        return self.faults

    def reset_faults(self) -> None:
        """Every switch off, everyone's and each credential's, held requests released, and
        the sessions tests added forgotten."""
        self.faults.reset()
        for scoped in self._scoped_faults.values():
            scoped.reset()
        self._scoped_faults.clear()
        self.sessions.clear()

    def release_held(self) -> None:
        """Let every request held by a ``hang`` go on (the switches stay as they are)."""
        self.faults.release()
        for scoped in self._scoped_faults.values():
            scoped.release()

    # -- the call log ------------------------------------------------------

    def calls(self) -> list[Call]:
        """Every generated call, in start-time order, for counting independently."""
        return self._store.calls()

    def count(self, account: str, filter: Mapping[str, Any] | None = None) -> int:
        """Count ``account``'s calls matching an upstream ``filter`` object.

        Raises ``InvalidParametersError`` when the filter breaks the documented rules.
        """
        return self._store.count(account, parse_filter(filter))

    def count_filter(self, account: str, where: CallFilter) -> int:
        """Count with an already validated ``CallFilter`` (what the app calls)."""
        return self._store.count(account, where)

    def add_calls(
        self,
        account: str,
        count: int = 1,
        *,
        started_at: str | None = None,
        status: str = "answered",
        campaign_id: int = 0,
        agent_id: str = "0",
    ) -> None:
        """Record ``count`` new calls of ``account``: the counts move, as DeepCall's do.

        ``started_at`` is the upstream's ``YYYY-MM-DD HH:MM:SS`` (default ``now``).
        """
        when = started_at or self.now.strftime(TIME_FORMAT)
        duration = 60 if status == "answered" else 0
        row = (account, agent_id, campaign_id, status, "IBD", when, duration)
        self._store.add([row] * count)

    @staticmethod
    def describe_credentials() -> str:
        """Human-readable lines listing the demo credentials."""
        return describe()

    # -- the request record ------------------------------------------------

    @property
    def request_count(self) -> int:
        """POSTs received on the reportCount paths, rejected ones included."""
        with self._recorded:
            return self._request_count

    def record(self, body: bytes) -> Any:
        """Count one POST and keep its body if it is a JSON object.

        Returns the parsed JSON, or ``NOT_JSON`` for an empty or non-JSON body.
        """
        try:
            payload = json.loads(body) if body else NOT_JSON
        except ValueError:  # includes bad UTF-8
            payload = NOT_JSON
        with self._recorded:
            self._request_count += 1
            if isinstance(payload, dict):
                self.requests.append(payload)
                if len(self.requests) > self._max_recorded:
                    del self.requests[0]
            self._recorded.notify_all()
        return payload

    def clear_requests(self) -> None:
        """Forget recorded requests and set ``request_count`` back to zero."""
        with self._recorded:
            self.requests.clear()
            self._request_count = 0

    def wait_requests(self, count: int, timeout: float = 5.0) -> bool:
        """Block until ``request_count`` reaches ``count``; ``False`` on timeout."""
        with self._recorded:
            return self._recorded.wait_for(lambda: self._request_count >= count, timeout)
