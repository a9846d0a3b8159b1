"""The simulated reportCount over real HTTP on loopback: credentials, errors, filters, paths."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import httpx
import pytest
from support.simulator import error, post, success
from support.simulator import expected_count as expected

from gateway.simulator import PATHS, Call, Simulator

NOW = datetime(2025, 11, 23, 15, 30)
PATH = "/api/v2/CallReport/reportCount"
ACME = {"ssid": "demo-ssid-acme"}
GLOBEX = {"userId": "2001", "token": "demo-token-globex"}
INITECH = {"ssid": "demo-ssid-initech"}
NOVEMBER = {"dtGte": "2025-11-01 00:00:00", "dtLte": "2025-11-23 23:59:59"}
BAD_PARAMS = {"status": "error", "message": "Invalid parameters", "code": 1000}
BAD_TOKEN = {"status": "error", "message": "Invalid token", "code": 1014}
DENIED = {"status": "error", "message": "Permission denied", "code": 1015}


@pytest.fixture(scope="module")
def sim() -> Iterator[Simulator]:
    """A full-size simulator with a fixed ``now``, shared by this module."""
    with Simulator(seed=7, now=NOW) as simulator:
        yield simulator


@pytest.fixture(scope="module")
def calls(sim: Simulator) -> list[Call]:
    """The simulator's rows, for counting independently."""
    return sim.calls()


pytestmark = pytest.mark.usefixtures("clean_sim")


# -- authentication ---------------------------------------------------------


@pytest.mark.parametrize(
    ("auth", "account"),
    [
        pytest.param(ACME, "acme", id="ssid"),
        pytest.param(GLOBEX, "globex", id="userId-token"),
        pytest.param({"userId": 2001, "token": "demo-token-globex"}, "globex", id="int-userId"),
        pytest.param(INITECH, "initech", id="third-account"),
        pytest.param(
            {"userId": "3001", "token": "demo-token-initech"}, "initech", id="initech-api"
        ),
    ],
)
def test_each_full_user_counts_its_own_account(
    client: httpx.Client, calls: list[Call], auth: dict[str, Any], account: str
) -> None:
    """A full-access user gets the count of its own account's calls only."""
    assert post(client, {**auth, "filter": NOVEMBER}) == success(expected(calls, account, NOVEMBER))


def test_two_users_with_the_same_filter_get_different_counts(client: httpx.Client) -> None:
    """Users of different accounts see different numbers for one filter."""
    acme = post(client, {**ACME, "filter": NOVEMBER})["cnt"]
    globex = post(client, {**GLOBEX, "filter": NOVEMBER})["cnt"]
    assert acme > 0
    assert globex > 0
    assert acme != globex


@pytest.mark.parametrize(
    ("body", "answer"),
    [
        pytest.param({**ACME, **GLOBEX}, BAD_PARAMS, id="both-forms"),
        pytest.param({**ACME, "token": "demo-token-globex"}, BAD_PARAMS, id="ssid-and-token"),
        pytest.param({**ACME, "userId": "2001"}, BAD_PARAMS, id="ssid-and-userId"),
        pytest.param({}, BAD_PARAMS, id="neither"),
        pytest.param({"userId": "2001"}, BAD_PARAMS, id="userId-only"),
        pytest.param({"token": "demo-token-globex"}, BAD_PARAMS, id="token-only"),
        pytest.param({"ssid": ""}, BAD_PARAMS, id="empty-ssid"),
        pytest.param({"ssid": 7}, BAD_PARAMS, id="ssid-number"),
        pytest.param({**GLOBEX, "userId": ["2001"]}, BAD_PARAMS, id="userId-list"),
        pytest.param({**GLOBEX, "userId": True}, BAD_PARAMS, id="userId-bool"),
        pytest.param({**GLOBEX, "token": 5}, BAD_PARAMS, id="token-number"),
        pytest.param({"ssid": "no-such-session"}, BAD_TOKEN, id="unknown-ssid"),
        pytest.param({**GLOBEX, "token": "wrong"}, BAD_TOKEN, id="wrong-token"),
        pytest.param({**GLOBEX, "userId": "9999"}, BAD_TOKEN, id="unknown-userId"),
        pytest.param({"userId": "2002", "token": "demo-token-expired"}, BAD_TOKEN, id="expired"),
        pytest.param({"ssid": "demo-ssid-acme-viewer"}, DENIED, id="no-permission"),
    ],
)
def test_credential_errors(client: httpx.Client, body: dict[str, Any], answer: Any) -> None:
    """Each wrong credential form or identity gets its documented code with HTTP 200."""
    assert post(client, {**body, "filter": NOVEMBER}) == answer


def test_parameter_errors_come_before_authentication(client: httpx.Client) -> None:
    """An unknown user with an ill-typed filter gets 1000, not 1014."""
    body = {"ssid": "no-such-session", "filter": {"campId": "123"}}
    assert post(client, body) == BAD_PARAMS


# -- malformed bodies and ill-typed parameters -------------------------------


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"", id="empty"),
        pytest.param(b"ssid=demo-ssid-acme", id="not-json"),
        pytest.param(b'[{"ssid": "demo-ssid-acme"}]', id="json-array"),
        pytest.param(b'"demo-ssid-acme"', id="json-string"),
        pytest.param(b"\xff\xfe{}", id="bad-utf8"),
    ],
)
def test_bodies_that_are_not_a_json_object_get_1047(client: httpx.Client, content: bytes) -> None:
    """An empty, non-JSON or non-object body is 1047 "Invalid Request Data" with HTTP 200."""
    response = client.post(PATH, content=content)
    assert response.status_code == 200
    assert response.json() == error(1047, "Invalid Request Data")


@pytest.mark.parametrize(
    "extra",
    [
        pytest.param({"filter": "dtGte=2025-11-01"}, id="filter-string"),
        pytest.param({"filter": [NOVEMBER]}, id="filter-array"),
        pytest.param({"filter": {"dtGte": "2025-11-01"}}, id="dtGte-date-only"),
        pytest.param({"filter": {"dtGte": "2025-11-01T00:00:00"}}, id="dtGte-iso-T"),
        pytest.param({"filter": {"dtGte": "2025-11-01 00:00:00+05:30"}}, id="dtGte-offset"),
        pytest.param({"filter": {"dtGte": "2025-02-30 00:00:00"}}, id="dtGte-no-such-day"),
        pytest.param({"filter": {"dtLte": "2025-11-01 24:00:00"}}, id="dtLte-hour-24"),
        pytest.param({"filter": {"dtLte": 20251101}}, id="dtLte-number"),
        pytest.param({"filter": {"agtIds": "101"}}, id="agtIds-string"),
        pytest.param({"filter": {"agtIds": [101]}}, id="agtIds-numbers"),
        pytest.param({"filter": {"st": "answered"}}, id="st-string"),
        pytest.param({"filter": {"st": [1]}}, id="st-numbers"),
        pytest.param({"filter": {"campId": "123"}}, id="campId-string"),
        pytest.param({"filter": {"campId": 123.5}}, id="campId-float"),
        pytest.param({"filter": {"campId": True}}, id="campId-bool"),
        pytest.param({"priorityFilter": 123}, id="priorityFilter-number"),
        pytest.param({"priorityFilter": "not base64!"}, id="priorityFilter-bad-chars"),
        pytest.param({"priorityFilter": "eyJhIjox"[:-1]}, id="priorityFilter-bad-padding"),
    ],
)
def test_ill_typed_parameters_get_1000(client: httpx.Client, extra: dict[str, Any]) -> None:
    """Each ill-typed parameter is 1000 "Invalid parameters" with HTTP 200."""
    assert post(client, {**ACME, **extra}) == BAD_PARAMS


# -- filter semantics --------------------------------------------------------


@pytest.mark.parametrize(
    "where",
    [
        pytest.param({}, id="empty"),
        pytest.param({"dtGte": "2025-11-10 00:00:00"}, id="dtGte"),
        pytest.param({"dtLte": "2025-09-10 12:30:00"}, id="dtLte"),
        pytest.param({"agtIds": ["101", "102", "103"]}, id="agtIds"),
        pytest.param({"st": ["answered"]}, id="st"),
        pytest.param({"st": ["missed", "noanswer", "busy"]}, id="st-many"),
        pytest.param({"campId": 123}, id="campId"),
        pytest.param({"campId": 231}, id="other-accounts-campId"),
        pytest.param({"agtIds": ["201", "202"]}, id="other-accounts-agents"),
        pytest.param(
            {**NOVEMBER, "agtIds": ["104", "104", "111"], "st": ["answered"], "campId": 124},
            id="everything",
        ),
        pytest.param({"dtGte": NOVEMBER["dtLte"], "dtLte": NOVEMBER["dtGte"]}, id="reversed"),
    ],
)
def test_each_filter_key_counts_like_python(
    client: httpx.Client, calls: list[Call], where: dict[str, Any]
) -> None:
    """Each documented filter key narrows the count exactly as a Python count over the rows."""
    assert post(client, {**ACME, "filter": where}) == success(expected(calls, "acme", where))


@pytest.mark.parametrize("auth", [ACME, GLOBEX, INITECH], ids=["acme", "globex", "initech"])
@pytest.mark.parametrize(
    "where",
    [
        {},
        NOVEMBER,
        {"dtGte": "2025-10-01 09:00:00", "dtLte": "2025-10-31 18:00:00", "st": ["answered"]},
        {"agtIds": ["105", "205", "305"], "dtLte": "2025-10-15 00:00:00"},
        {"st": ["busy", "failed", "cancel"], "dtGte": "2025-08-25 15:30:00"},
    ],
    ids=["all", "november", "october-answered", "agent-5", "failures"],
)
def test_counts_agree_with_python_for_every_account(
    client: httpx.Client, calls: list[Call], auth: dict[str, str], where: dict[str, Any]
) -> None:
    """For several filters and each account the endpoint and a Python count agree."""
    account = {"demo-ssid-acme": "acme", "2001": "globex", "demo-ssid-initech": "initech"}[
        auth.get("ssid") or auth["userId"]
    ]
    count = expected(calls, account, where)
    assert count > 0
    assert post(client, {**auth, "filter": where}) == success(count)


def test_date_bounds_are_inclusive(client: httpx.Client, calls: list[Call]) -> None:
    """A call exactly at dtGte and one exactly at dtLte are both counted."""
    acme = [c for c in calls if c.account == "acme"]
    first, last = acme[1000], acme[2000]
    for moment in (first.started_at, last.started_at):
        exact = {"dtGte": moment, "dtLte": moment}
        assert post(client, {**ACME, "filter": exact}) == success(expected(calls, "acme", exact))
        assert expected(calls, "acme", exact) >= 1
    span = {"dtGte": first.started_at, "dtLte": last.started_at}
    at_ends = sum(1 for c in acme if c.started_at in (first.started_at, last.started_at))
    inside = sum(1 for c in acme if first.started_at < c.started_at < last.started_at)
    assert post(client, {**ACME, "filter": span}) == success(inside + at_ends)


def test_absent_or_null_filter_counts_everything(client: httpx.Client, calls: list[Call]) -> None:
    """No filter, ``null`` and ``{}`` all count the whole account."""
    whole = success(expected(calls, "acme"))
    assert post(client, ACME) == whole
    assert post(client, {**ACME, "filter": None}) == whole
    assert post(client, {**ACME, "filter": {}}) == whole
    assert post(client, {**ACME, "filter": {"dtGte": None, "campId": None}}) == whole


def test_empty_lists_match_nothing(client: httpx.Client) -> None:
    """An empty ``agtIds`` or ``st`` array counts zero."""
    assert post(client, {**ACME, "filter": {"agtIds": []}}) == success(0)
    assert post(client, {**ACME, "filter": {"st": []}}) == success(0)


def test_unknown_keys_are_ignored_and_logged_without_values(
    client: httpx.Client, calls: list[Call], caplog: pytest.LogCaptureFixture
) -> None:
    """Unknown keys change nothing and are logged at DEBUG by name, never with credentials."""
    caplog.set_level(logging.DEBUG, logger="gateway.simulator")
    where = {**NOVEMBER, "durGte": 30, "callType": ["IBD"]}
    body = {**ACME, "filter": where, "page": 2}
    assert post(client, body) == success(expected(calls, "acme", NOVEMBER))
    messages = [r.getMessage() for r in caplog.records if r.name == "gateway.simulator"]
    assert "reportCount: ignoring unknown request keys ['page']" in messages
    assert "reportCount: ignoring unknown filter keys ['callType', 'durGte']" in messages
    assert not any("demo-ssid-acme" in m for m in messages)


@pytest.mark.parametrize("priority", ["", "eyJhZ3RJZHMiOlsiMTAxIl19", "YWJjZA=="])
def test_valid_priority_filter_does_not_change_the_count(
    client: httpx.Client, calls: list[Call], priority: str
) -> None:
    """A valid base64 ``priorityFilter`` is accepted and leaves the count unchanged."""
    body = {**ACME, "filter": NOVEMBER, "priorityFilter": priority}
    assert post(client, body) == success(expected(calls, "acme", NOVEMBER))


@pytest.mark.parametrize("path", PATHS)
def test_every_documented_path_answers(client: httpx.Client, calls: list[Call], path: str) -> None:
    """Both spellings of the path, with and without trailing slash, serve the count."""
    assert post(client, {**ACME, "filter": NOVEMBER}, path) == success(
        expected(calls, "acme", NOVEMBER)
    )


def test_other_methods_are_not_allowed(client: httpx.Client, sim: Simulator) -> None:
    """GET on the endpoint is 405 and is not counted as a request."""
    assert client.get(PATH).status_code == 405
    assert sim.request_count == 0
