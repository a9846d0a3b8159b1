"""Talking to the simulator: its answers' shapes, and an oracle for its counts."""

from __future__ import annotations

from typing import Any

import httpx

from gateway.simulator import Call


def post(
    client: httpx.Client, body: dict[str, Any], path: str = "/api/v2/CallReport/reportCount"
) -> Any:
    """POST ``body`` as JSON, check the HTTP status is 200, and return the JSON answer."""
    response = client.post(path, json=body)
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    return response.json()


def error(code: int, message: str) -> dict[str, Any]:
    """The upstream's error body."""
    return {"status": "error", "message": message, "code": code}


def success(cnt: int) -> dict[str, Any]:
    """The upstream's success body."""
    return {"code": 200, "status": "success", "cnt": cnt}


def expected_count(calls: list[Call], account: str, where: dict[str, Any] | None = None) -> int:
    """Count ``account``'s calls matching an upstream filter, in plain Python (the oracle)."""
    where = where or {}
    return sum(
        1
        for c in calls
        if c.account == account
        and ("dtGte" not in where or c.started_at >= where["dtGte"])
        and ("dtLte" not in where or c.started_at <= where["dtLte"])
        and ("agtIds" not in where or c.agent_id in where["agtIds"])
        and ("st" not in where or c.status in where["st"])
        and ("campId" not in where or c.campaign_id == where["campId"])
    )
