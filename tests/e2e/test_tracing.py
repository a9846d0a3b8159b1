"""OpenTelemetry spans with GATEWAY_OTEL on: one per request, one per upstream try, no secret."""

from __future__ import annotations

from collections.abc import Callable

from conftest import ACME, GLOBEX, Gateway, headers_for
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gateway.simulator import Simulator

SENTINELS = ("sentinel-ssid-otel-31f", "sentinel-user-otel-9a", "sentinel-token-otel-c4")


def test_requests_and_upstream_tries_are_spans_without_credentials(
    start_gateway: Callable[..., Gateway], sim: Simulator
) -> None:
    """Each request is a server span; each upstream try a client span under it; no secret."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway = start_gateway(otel=True, tracer_provider=provider, upstream_retries=0)
    gateway.query("query Dash { a: callCount(filter: {campaignId: 123}) }", headers_for(ACME))
    gateway.query("{ callCount }", {"X-DeepCall-SSID": SENTINELS[0]})
    gateway.query(
        "{ callCount }",
        {"X-DeepCall-User-Id": SENTINELS[1], "X-DeepCall-Token": SENTINELS[2]},
    )
    gateway.query("{ callCount }", headers_for(GLOBEX))
    spans = exporter.get_finished_spans()

    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    clients = [s for s in spans if s.kind is SpanKind.CLIENT]
    assert [s.name for s in servers] == ["POST /graphql"] * 4
    assert [s.name for s in clients] == ["reportCount"] * 4
    first = servers[0].attributes or {}
    assert first["graphql.operation.name"] == ("Dash",)
    assert first["deepcall.upstream_calls"] == 1
    assert first["deepcall.outcome"] == "ok"
    assert (servers[1].attributes or {})["deepcall.outcome"] == "UNAUTHENTICATED"
    assert [(c.attributes or {})["deepcall.upstream.result"] for c in clients] == [
        "success",
        "1014",
        "1014",
        "success",
    ]
    for client, server in zip(clients, servers, strict=True):
        assert client.parent is not None
        assert client.parent.span_id == server.context.span_id
    everything = repr([(s.name, dict(s.attributes or {}), s.events) for s in spans])
    for secret in (*SENTINELS, ACME.ssid, GLOBEX.token):
        assert secret
        assert secret not in everything


def test_tracing_is_off_by_default(start_gateway: Callable[..., Gateway], sim: Simulator) -> None:
    """Without GATEWAY_OTEL, a provider handed in records nothing."""
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    gateway = start_gateway(tracer_provider=provider)
    gateway.query("{ callCount }", headers_for(ACME))
    assert exporter.get_finished_spans() == ()
