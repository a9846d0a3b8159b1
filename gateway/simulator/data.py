"""The simulated call log: a seeded generator and the SQLite store that counts it.

The same ``seed``, ``calls`` and ``now`` give the same rows on every machine.
Times are the upstream's ``"YYYY-MM-DD HH:MM:SS"`` strings, compared as text.
"""

from __future__ import annotations

import random
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

WINDOW_DAYS = 90
"""How far back from ``now`` the generated calls reach."""

TIME_FORMAT = "%Y-%m-%d %H:%M:%S"
"""The upstream's date-time format, used for ``started_at`` and ``dtGte``/``dtLte``."""


@dataclass(frozen=True, slots=True)
class Call:
    """One row of the call log, as the simulator counts it."""

    account: str
    agent_id: str
    campaign_id: int
    status: str
    call_type: str
    started_at: str
    duration: int


Row = tuple[str, str, int, str, str, str, int]
"""A call as stored: the ``Call`` fields in order."""


@dataclass(frozen=True, slots=True)
class Account:
    """A tenant of the simulated upstream: its agents, campaigns and share of traffic."""

    name: str
    weight: float
    agents: tuple[str, ...]
    campaigns: tuple[int, ...]


ACCOUNTS: tuple[Account, ...] = (
    Account("acme", 0.5, tuple(str(n) for n in range(101, 113)), (123, 124, 125, 126)),
    Account("globex", 0.3, tuple(str(n) for n in range(201, 211)), (231, 232, 233)),
    Account("initech", 0.2, tuple(str(n) for n in range(301, 309)), (341, 342)),
)
"""The accounts, with distinct agent ids and campaign ids; ``acme`` has the docs' 123."""

CALL_TYPES: tuple[tuple[str, float], ...] = (
    ("IBD", 0.45),  # inbound
    ("OBD", 0.30),  # outbound dialler
    ("CTC", 0.15),  # click to call
    ("PDS", 0.10),  # predictive dialler
)

_INBOUND_STATUSES: tuple[tuple[str, float], ...] = (
    ("answered", 0.72),
    ("missed", 0.18),
    ("busy", 0.04),
    ("failed", 0.03),
    ("cancel", 0.03),
)
_OUTBOUND_STATUSES: tuple[tuple[str, float], ...] = (
    ("answered", 0.55),
    ("noanswer", 0.25),
    ("busy", 0.10),
    ("failed", 0.06),
    ("cancel", 0.04),
)
STATUSES: tuple[str, ...] = ("answered", "missed", "noanswer", "busy", "failed", "cancel")
"""Every status the generator uses; only ``answered`` calls have a duration."""

# Monday..Sunday and 00..23: a working week with an office-hours hump.
_WEEKDAY_WEIGHTS = (1.0, 1.0, 1.0, 1.0, 0.95, 0.55, 0.3)
# fmt: off
_HOUR_WEIGHTS = (
    1, 1, 1, 1, 1, 2, 4, 9, 20, 45, 70, 80,
    76, 70, 72, 75, 70, 55, 35, 20, 12, 8, 4, 2,
)
# fmt: on


@dataclass(frozen=True, slots=True)
class CallFilter:
    """A validated ``filter``: ``None`` means "not given"; an empty tuple matches nothing."""

    dt_gte: str | None = None
    dt_lte: str | None = None
    agent_ids: tuple[str, ...] | None = None
    statuses: tuple[str, ...] | None = None
    campaign_id: int | None = None


def _cumulative(weights: tuple[float, ...]) -> list[float]:
    total, out = 0.0, []
    for weight in weights:
        total += weight
        out.append(total)
    return out


def generate_calls(seed: int, count: int, now: datetime) -> Iterator[Row]:
    """Yield ``count`` call rows in ``Call`` field order, not sorted, deterministically.

    ``now`` is a naive wall-clock time in the simulator's zone; every call starts
    in ``[now - 90 days, now)``.
    """
    rng = random.Random(seed)  # noqa: S311 - reproducible demo data, not secrets
    start = now - timedelta(days=WINDOW_DAYS)
    low, high = start.strftime(TIME_FORMAT), now.strftime(TIME_FORMAT)
    days = [start.date() + timedelta(days=n) for n in range((now.date() - start.date()).days + 1)]
    day_cum = _cumulative(tuple(_WEEKDAY_WEIGHTS[d.weekday()] for d in days))
    day_text = [d.isoformat() for d in days]
    hour_cum = _cumulative(tuple(float(w) for w in _HOUR_WEIGHTS))
    account_cum = _cumulative(tuple(a.weight for a in ACCOUNTS))
    type_names = [name for name, _ in CALL_TYPES]
    type_cum = _cumulative(tuple(w for _, w in CALL_TYPES))
    inbound = (
        [s for s, _ in _INBOUND_STATUSES],
        _cumulative(tuple(w for _, w in _INBOUND_STATUSES)),
    )
    outbound = (
        [s for s, _ in _OUTBOUND_STATUSES],
        _cumulative(tuple(w for _, w in _OUTBOUND_STATUSES)),
    )
    day_indexes, hours = range(len(days)), range(24)
    produced = 0
    while produced < count:
        day = rng.choices(day_indexes, cum_weights=day_cum)[0]
        hour = rng.choices(hours, cum_weights=hour_cum)[0]
        started_at = f"{day_text[day]} {hour:02d}:{rng.randrange(60):02d}:{rng.randrange(60):02d}"
        if not low <= started_at < high:
            continue  # the first and last days are partial
        account = rng.choices(ACCOUNTS, cum_weights=account_cum)[0]
        call_type = rng.choices(type_names, cum_weights=type_cum)[0]
        names, cum = inbound if call_type == "IBD" else outbound
        status = rng.choices(names, cum_weights=cum)[0]
        duration = 0
        if status == "answered":
            duration = max(5, min(3600, int(rng.lognormvariate(4.6, 0.8))))
        yield (
            account.name,
            rng.choice(account.agents),
            rng.choice(account.campaigns),
            status,
            call_type,
            started_at,
            duration,
        )
        produced += 1


_SCHEMA = """
DROP TABLE IF EXISTS calls;
CREATE TABLE calls (
    id INTEGER PRIMARY KEY,
    account TEXT NOT NULL,
    agent_id TEXT NOT NULL,
    campaign_id INTEGER NOT NULL,
    status TEXT NOT NULL,
    call_type TEXT NOT NULL,
    started_at TEXT NOT NULL,
    duration INTEGER NOT NULL
);
"""
# Covering index: every documented filter is answered from the index alone,
# a range scan on (account, started_at) with no table look-ups.
_INDEX = (
    "CREATE INDEX calls_by_account_time "
    "ON calls (account, started_at, agent_id, status, campaign_id)"
)
_INSERT = (
    "INSERT INTO calls (account, agent_id, campaign_id, status, call_type, started_at, duration)"
    " VALUES (?, ?, ?, ?, ?, ?, ?)"
)
_SELECT_ALL = (
    "SELECT account, agent_id, campaign_id, status, call_type, started_at, duration"
    " FROM calls ORDER BY id"
)


class CallStore:
    """The generated call log in SQLite, safe to query from any thread.

    ``path`` is ``":memory:"`` or a file, which is rewritten on construction.
    """

    def __init__(self, seed: int, count: int, now: datetime, path: str = ":memory:") -> None:
        if count < 0:
            raise ValueError(f"calls must be >= 0, got {count}")
        self._lock = threading.Lock()
        # The app may serve from another thread than this one; the lock serialises use.
        self._db = sqlite3.connect(path, check_same_thread=False)
        rows = sorted(generate_calls(seed, count, now), key=lambda row: row[5])
        with self._lock, self._db:
            self._db.executescript(_SCHEMA)
            self._db.executemany(_INSERT, rows)
            self._db.execute(_INDEX)
            self._db.execute("ANALYZE")

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def calls(self) -> list[Call]:
        """Every row, in log order (by start time)."""
        with self._lock:
            rows = self._db.execute(_SELECT_ALL).fetchall()
        return [Call(*row) for row in rows]

    def add(self, rows: list[Row]) -> None:
        """Append ``rows`` to the log: calls that came in after it was generated."""
        with self._lock, self._db:
            self._db.executemany(_INSERT, rows)

    def count(self, account: str, where: CallFilter) -> int:
        """Count ``account``'s calls that match ``where`` (bounds inclusive)."""
        clauses: list[str] = ["account = ?"]
        params: list[str | int] = [account]
        if where.dt_gte is not None:
            clauses.append("started_at >= ?")
            params.append(where.dt_gte)
        if where.dt_lte is not None:
            clauses.append("started_at <= ?")
            params.append(where.dt_lte)
        for column, values in (("agent_id", where.agent_ids), ("status", where.statuses)):
            if values is None:
                continue
            if not values:
                return 0
            unique = sorted(set(values))
            clauses.append(f"{column} IN ({', '.join('?' * len(unique))})")
            params.extend(unique)
        if where.campaign_id is not None:
            clauses.append("campaign_id = ?")
            params.append(where.campaign_id)
        # Only fixed column names and placeholders are spliced in; values are bound.
        query = "SELECT COUNT(*) FROM calls WHERE " + " AND ".join(clauses)  # noqa: S608
        with self._lock:
            row = self._db.execute(query, params).fetchone()
        result: int = row[0]
        return result


def parse_time(text: str) -> datetime:
    """Parse the upstream's ``"YYYY-MM-DD HH:MM:SS"``; raise ``ValueError`` otherwise."""
    return datetime.strptime(text, TIME_FORMAT)
