"""Unit tests for the simulator's generator, store, credentials, validation and faults."""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.simulator import expected_count

from gateway.simulator import (
    DEMO_CREDENTIALS,
    Call,
    Faults,
    InvalidParametersError,
    Simulator,
)
from gateway.simulator.data import ACCOUNTS, STATUSES
from gateway.simulator.state import NOT_JSON

NOW = datetime(2025, 11, 23, 15, 30)
SMALL = 3_000


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """A small simulator shared by the read-only tests of this module."""
    with Simulator(seed=7, calls=SMALL, now=NOW) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def calls(sim: Simulator) -> list[Call]:
    """The small simulator's rows."""
    return sim.calls()


def test_same_seed_gives_identical_rows(calls: list[Call]) -> None:
    """Two simulators with the same seed and now generate exactly the same rows."""
    with Simulator(seed=7, calls=SMALL, now=NOW) as again:
        assert again.calls() == calls


def test_different_seed_gives_different_rows(calls: list[Call]) -> None:
    """A different seed generates a different call log of the same size."""
    with Simulator(seed=8, calls=SMALL, now=NOW) as other:
        rows = other.calls()
    assert len(rows) == len(calls)
    assert rows != calls


def test_generates_the_requested_number_of_calls(calls: list[Call]) -> None:
    """The log holds exactly ``calls`` rows, and zero is allowed."""
    assert len(calls) == SMALL
    with Simulator(calls=0, now=NOW) as empty:
        assert empty.calls() == []
        assert empty.count("acme", {}) == 0


def test_negative_size_is_refused() -> None:
    """A negative number of calls is a ValueError, not an empty log."""
    with pytest.raises(ValueError, match="calls must be >= 0"):
        Simulator(calls=-1, now=NOW)


def test_three_accounts_with_their_own_agents_and_campaigns(calls: list[Call]) -> None:
    """Every account has calls, and no agent id or campaign id is shared between accounts."""
    by_account: dict[str, list[Call]] = {}
    for call in calls:
        by_account.setdefault(call.account, []).append(call)
    assert set(by_account) == {"acme", "globex", "initech"}
    agents = {name: {c.agent_id for c in rows} for name, rows in by_account.items()}
    campaigns = {name: {c.campaign_id for c in rows} for name, rows in by_account.items()}
    assert not agents["acme"] & agents["globex"]
    assert not agents["acme"] & agents["initech"]
    assert not agents["globex"] & agents["initech"]
    assert not campaigns["acme"] & campaigns["globex"]
    assert agents["acme"] == {str(n) for n in range(101, 113)}
    assert {a.name for a in ACCOUNTS} == set(by_account)


def test_calls_spread_over_the_90_days_before_now(calls: list[Call]) -> None:
    """Start times lie in [now - 90 days, now) and cover nearly every day of that window."""
    low = (NOW - timedelta(days=90)).strftime("%Y-%m-%d %H:%M:%S")
    high = NOW.strftime("%Y-%m-%d %H:%M:%S")
    assert all(low <= c.started_at < high for c in calls)
    days = {c.started_at[:10] for c in calls}
    assert len(days) >= 88
    assert min(c.started_at for c in calls)[:10] == low[:10]
    assert max(c.started_at for c in calls)[:10] == high[:10]


def test_calls_are_ordered_and_formatted_like_the_upstream(calls: list[Call]) -> None:
    """Rows come in start-time order, each time as 'YYYY-MM-DD HH:MM:SS'."""
    pattern = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
    assert all(pattern.fullmatch(c.started_at) for c in calls)
    assert [c.started_at for c in calls] == sorted(c.started_at for c in calls)


def test_office_hours_and_weekdays_are_busier(calls: list[Call]) -> None:
    """More calls start between 09:00 and 18:00 than at night, and on Mondays than Sundays."""
    hours = Counter(int(c.started_at[11:13]) for c in calls)
    office = sum(hours[h] for h in range(9, 18))
    night = sum(hours[h] for h in (*range(0, 7), *range(21, 24)))
    assert office > 10 * night
    weekdays = Counter(datetime.fromisoformat(c.started_at).weekday() for c in calls)
    assert weekdays[0] > 2 * weekdays[6]


def test_statuses_types_and_durations(calls: list[Call]) -> None:
    """Every status and call type occurs; only answered calls last longer than zero."""
    assert {c.status for c in calls} == set(STATUSES)
    assert {c.call_type for c in calls} == {"IBD", "OBD", "CTC", "PDS"}
    assert all(c.duration > 0 for c in calls if c.status == "answered")
    assert all(c.duration == 0 for c in calls if c.status != "answered")


def test_now_is_read_in_the_simulator_zone_and_truncated() -> None:
    """An aware ``now`` is converted to the zone and truncated to the minute."""
    aware = datetime(2025, 11, 23, 10, 0, 42, 5, tzinfo=UTC)
    with Simulator(calls=10, now=aware, tz="Asia/Kolkata") as kolkata:
        assert kolkata.now == datetime(2025, 11, 23, 15, 30)
    with Simulator(calls=10, now=datetime(2025, 1, 2, 3, 4, 5)) as naive:
        assert naive.now == datetime(2025, 1, 2, 3, 4)


@pytest.mark.parametrize(
    ("account", "where"),
    [
        ("acme", {}),
        ("globex", {"dtGte": "2025-11-01 00:00:00", "dtLte": "2025-11-15 23:59:59"}),
        ("initech", {"st": ["answered", "busy"], "campId": 341}),
        ("acme", {"agtIds": ["101", "105"], "dtGte": "2025-10-01 09:00:00"}),
        ("acme", {"agtIds": ["201"]}),
    ],
)
def test_count_agrees_with_counting_in_python(
    sim: Simulator, calls: list[Call], account: str, where: dict[str, Any]
) -> None:
    """``Simulator.count`` gives the same number as filtering ``calls()`` by hand."""
    assert sim.count(account, where) == expected_count(calls, account, where)


def test_empty_lists_match_nothing(sim: Simulator) -> None:
    """An empty ``agtIds`` or ``st`` counts zero rather than disabling the filter."""
    assert sim.count("acme", {}) > 0
    assert sim.count("acme", {"agtIds": []}) == 0
    assert sim.count("acme", {"st": []}) == 0


def test_count_rejects_an_ill_typed_filter(sim: Simulator) -> None:
    """``Simulator.count`` applies the same validation as the endpoint."""
    with pytest.raises(InvalidParametersError, match="campId"):
        sim.count("acme", {"campId": "123"})


def test_unknown_filter_keys_are_logged_by_name(
    sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown filter keys are ignored and named in a DEBUG record of ``gateway.simulator``."""
    caplog.set_level(logging.DEBUG, logger="gateway.simulator")
    assert sim.count("acme", {"durGte": 30, "callType": ["IBD"]}) == sim.count("acme", {})
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.simulator"]
    assert messages == ["reportCount: ignoring unknown filter keys ['callType', 'durGte']"]


def test_a_database_file_is_rewritten(tmp_path: Path) -> None:
    """With a file path the log is stored there, and a second construction replaces it."""
    path = str(tmp_path / "calls.db")
    for _ in range(2):
        with Simulator(calls=50, path=path, now=NOW) as simulator:
            assert len(simulator.calls()) == 50
    with closing(sqlite3.connect(path)) as db:
        assert db.execute("SELECT COUNT(*) FROM calls").fetchone() == (50,)


def test_demo_credentials_cover_every_case() -> None:
    """The demo users use one credential form each and cover full, 1015 and 1014 users."""
    names = [c.name for c in DEMO_CREDENTIALS]
    assert len(names) == len(set(names))
    for c in DEMO_CREDENTIALS:
        assert (c.ssid is None) == (c.user_id is not None) == (c.token is not None)
        assert c.account in {a.name for a in ACCOUNTS}
    full = {c.account for c in DEMO_CREDENTIALS if c.can_list and not c.expired}
    assert full == {"acme", "globex", "initech"}
    assert any(not c.can_list and not c.expired for c in DEMO_CREDENTIALS)
    assert any(c.expired and c.user_id is not None for c in DEMO_CREDENTIALS)


def test_describe_credentials_lists_every_user(sim: Simulator) -> None:
    """The start-up text names each demo user with the secret needed to use it."""
    text = sim.describe_credentials()
    assert len(text.splitlines()) == len(DEMO_CREDENTIALS) + 1
    for c in DEMO_CREDENTIALS:
        assert c.name in text
        secret = f"ssid={c.ssid}" if c.ssid else f"userId={c.user_id} token={c.token}"
        assert secret in text


def test_faults_are_off_by_default_and_after_reset() -> None:
    """``Faults()`` starts with everything off and ``reset()`` returns to that."""
    faults = Faults()
    off = repr(faults)
    assert off == (
        "Faults(latency=0.0, hang=False, error_code=None, non_json=False, "
        "wrong_shape=False, http_status=None)"
    )
    faults.latency, faults.hang, faults.error_code = 1.5, True, 1009
    faults.non_json, faults.wrong_shape, faults.http_status = True, True, 502
    faults.reset()
    assert repr(faults) == off


async def test_a_held_request_is_released_from_another_thread() -> None:
    """``hold()`` waits until ``release()`` is called from a different thread."""
    faults = Faults()
    held = asyncio.create_task(faults.hold())
    assert await asyncio.to_thread(faults.wait_hanging, 1, 5.0)
    assert faults.hanging == 1
    assert not held.done()
    await asyncio.to_thread(faults.release)
    await asyncio.wait_for(held, 5.0)
    assert faults.hanging == 0


def test_record_counts_every_body_but_keeps_only_objects() -> None:
    """``record`` counts each POST and keeps only bodies that are JSON objects."""
    with Simulator(calls=0, now=NOW) as simulator:
        assert simulator.record(b"") is NOT_JSON
        assert simulator.record(b"<html>") is NOT_JSON
        assert simulator.record(b"\xff\xfe") is NOT_JSON
        assert simulator.record(b"[1]") == [1]
        assert simulator.record(b'{"ssid": "x"}') == {"ssid": "x"}
        assert simulator.request_count == 5
        assert simulator.requests == [{"ssid": "x"}]
        assert simulator.wait_requests(5, timeout=0.01)
        simulator.clear_requests()
        assert simulator.request_count == 0
        assert simulator.requests == []
