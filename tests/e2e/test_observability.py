"""Metrics and request logs: exact counts after a known sequence, and no credential anywhere."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable

import pytest
from conftest import ACME, GLOBEX, Gateway, headers_for
from prometheus_client.parser import text_string_to_metric_families

from gateway.observe.logs import JsonFormatter, TextFormatter
from gateway.simulator import Simulator

SENTINEL_SSID = "sentinel-ssid-obs-4b1e"
SENTINEL_USER = {
    "X-DeepCall-User-Id": "sentinel-user-9c2d",
    "X-DeepCall-Token": "sentinel-tok-77aa",
}


def scrape(gateway: Gateway) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, keyed by name and sorted labels."""
    response = gateway.client.get(f"{gateway.url}/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def sample(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str
) -> float:
    """One sample's value (0 when it was never exported)."""
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_move_by_exactly_what_the_requests_did(gateway: Gateway, sim: Simulator) -> None:
    """A known sequence of requests moves each counter by exactly the expected amount."""
    twice = "{ a: callCount(filter: {campaignId: 123}) b: callCount(filter: {campaignId: 123}) }"
    gateway.query(twice, headers_for(ACME))  # one upstream call: a misses, b joins it
    gateway.query(twice, headers_for(ACME))  # two hits
    gateway.query("{ callCount }")  # no credentials
    sim.faults.error_code = 1015
    gateway.query("{ callCount(filter: {campaignId: 1}) }", headers_for(ACME))
    gateway.query("{ callCount(", headers_for(ACME))
    samples = scrape(gateway)

    assert sample(samples, "gateway_requests_total", outcome="ok") == 2
    assert sample(samples, "gateway_requests_total", outcome="UNAUTHENTICATED") == 1
    assert sample(samples, "gateway_requests_total", outcome="FORBIDDEN") == 1
    assert sample(samples, "gateway_requests_total", outcome="GRAPHQL_PARSE_FAILED") == 1
    assert sample(samples, "gateway_request_duration_seconds_count", outcome="ok") == 2
    assert sample(samples, "gateway_upstream_calls_total", result="success") == 1
    assert sample(samples, "gateway_upstream_calls_total", result="1015") == 1
    assert sample(samples, "gateway_upstream_duration_seconds_count", result="success") == 1
    assert sample(samples, "gateway_cache_lookups_total", result="hit") == 2
    assert sample(samples, "gateway_cache_lookups_total", result="miss") == 2
    assert sample(samples, "gateway_cache_lookups_total", result="join") == 1
    assert sample(samples, "gateway_cache_stale_served_total") == 0
    assert sample(samples, "gateway_request_upstream_fields_count") == 5
    assert sample(samples, "gateway_request_upstream_fields_sum") == 2 + 2 + 1 + 1 + 0
    assert sample(samples, "gateway_requests_in_flight") == 0
    assert sample(samples, "gateway_breaker_state") == 0
    assert sim.request_count == 2


def test_retries_and_rate_limits_are_counted(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Each upstream try is counted by result; a refused call by the rate limiter too."""
    gateway = start_gateway(rate_limit=0.001, rate_burst=1)
    sim.faults.error_code = 1009
    gateway.query(
        "{ a: callCount(filter: {campaignId: 1}) b: callCount(filter: {campaignId: 2}) }",
        headers_for(ACME),
    )
    samples = scrape(gateway)
    assert sample(samples, "gateway_upstream_calls_total", result="1009") == 3
    assert sample(samples, "gateway_upstream_refusals_total", reason="rate_limited") == 1
    assert sample(samples, "gateway_upstream_refusals_total", reason="overloaded") == 0
    assert (
        sample(samples, "gateway_requests_total", outcome="UPSTREAM_ERROR")
        + sample(samples, "gateway_requests_total", outcome="RATE_LIMITED")
        == 1
    )


def test_request_log_line_has_its_fields(
    gateway: Gateway, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """One JSON line per request: id, operation, aliases, upstream calls, hits, duration, codes."""
    caplog.set_level(logging.INFO, logger="gateway.request")
    query = (
        "query Dash { a: callCount(filter: {campaignId: 123})"
        " b: callCount(filter: {campaignId: 124}) }"
    )
    gateway.query(query, headers_for(ACME))
    gateway.query(query, headers_for(ACME) | {"X-Request-ID": "dash-2"})
    gateway.query("{ x: callCount }")
    lines = [
        json.loads(JsonFormatter().format(r)) for r in caplog.records if r.name == "gateway.request"
    ]
    assert len(lines) == 3
    first, second, third = lines
    assert second["request_id"] == "dash-2"
    assert first["request_id"] != second["request_id"]
    for line in lines:
        assert line["message"] == "request"
        assert line["level"] == "INFO"
        assert line["status"] == 200
        assert line["duration_ms"] > 0
    assert (
        first["operations"],
        first["aliases"],
        first["upstream_calls"],
        first["cache_hits"],
    ) == (["Dash"], 2, 2, 0)
    assert (second["upstream_calls"], second["cache_hits"], second["outcome"], second["codes"]) == (
        0,
        2,
        "ok",
        [],
    )
    assert (third["outcome"], third["codes"], third["upstream_calls"]) == (
        "UNAUTHENTICATED",
        ["UNAUTHENTICATED"],
        0,
    )


def test_no_sentinel_credential_in_logs_or_metrics(
    gateway: Gateway, sim: Simulator, caplog: pytest.LogCaptureFixture
) -> None:
    """Credentials sent in every form never appear in logs (either format) or in /metrics."""
    caplog.set_level(logging.DEBUG)
    gateway.query("{ callCount }", {"X-DeepCall-SSID": SENTINEL_SSID})
    gateway.query("{ callCount(filter: {campaignId: 5}) }", SENTINEL_USER)
    gateway.query("{ callCount }", headers_for(GLOBEX))
    sim.faults.error_code = 1009
    gateway.query("{ callCount(filter: {campaignId: 6}) }", headers_for(ACME))
    metrics_text = gateway.client.get(f"{gateway.url}/metrics").text
    rendered = "\n".join(
        formatter.format(record)
        for record in caplog.records
        for formatter in (JsonFormatter(), TextFormatter())
    )
    secrets = [SENTINEL_SSID, *SENTINEL_USER.values(), GLOBEX.token, ACME.ssid]
    for secret in secrets:
        assert secret
        assert secret not in rendered
        assert secret not in metrics_text
    assert "gateway.request" in rendered


def test_metrics_can_be_switched_off(start_gateway: Callable[..., Gateway], sim: Simulator) -> None:
    """With GATEWAY_METRICS off, /metrics is not served."""
    gateway = start_gateway(metrics=False)
    assert gateway.client.get(f"{gateway.url}/metrics").status_code == 404


def test_the_served_process_logs_one_json_object_per_line(upstream_url: str) -> None:
    """`deepcall-gateway serve` with GATEWAY_LOG_FORMAT=json writes only JSON lines, request id
    included, and echoes the id in X-Request-ID."""
    import subprocess
    import sys
    from pathlib import Path

    import httpx
    from support.servers import free_port, process

    port = free_port()
    cli = str(Path(sys.executable).parent / "deepcall-gateway")
    env = {"GATEWAY_UPSTREAM_URL": upstream_url, "GATEWAY_LOG_FORMAT": "json"}
    with process([cli, "serve", "--port", str(port)], "Uvicorn running", env) as proc:
        response = httpx.post(
            f"http://127.0.0.1:{port}/graphql",
            json={"query": "query Ping { callCount }"},
            headers={**headers_for(ACME), "X-Request-ID": "json-log-1"},
        )
        assert response.headers["X-Request-ID"] == "json-log-1"
        proc.send_signal(subprocess.signal.SIGTERM)  # type: ignore[attr-defined]
        proc.wait(timeout=20)
    assert proc.returncode == 0
    lines = [json.loads(line) for line in proc.output]  # type: ignore[attr-defined]
    requests = [line for line in lines if line["logger"] == "gateway.request"]
    assert len(requests) == 1
    assert requests[0]["request_id"] == "json-log-1"
    assert requests[0]["operations"] == ["Ping"]
    assert requests[0]["upstream_calls"] == 1
