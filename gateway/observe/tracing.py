"""Optional OpenTelemetry tracing: a span per /graphql request and per upstream try.

Off by default (``GATEWAY_OTEL``). When on, spans go to the OTLP/HTTP exporter
configured by the standard ``OTEL_*`` variables (``OTEL_EXPORTER_OTLP_ENDPOINT``,
``OTEL_SERVICE_NAME``, …); the packages come with the ``otel`` extra. Span
attributes are ids, operation names, counts, codes and the upstream's host:
never a credential, a filter value or a user id.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.trace import Span, Tracer, TracerProvider

SERVICE_NAME = "deepcall-gateway"


class TracingUnavailableError(RuntimeError):
    """GATEWAY_OTEL is on but the OpenTelemetry packages are not installed."""


def default_provider() -> TracerProvider:
    """A provider exporting over OTLP/HTTP in batches, configured from ``OTEL_*``."""
    try:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError as exc:
        raise TracingUnavailableError(
            "GATEWAY_OTEL=true needs the otel extra: pip install 'deepcall-gateway[otel]'"
        ) from exc
    provider = SdkTracerProvider(resource=Resource.create({"service.name": SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    return provider


def tracer_from(provider: Any) -> Tracer:
    """This gateway's tracer from ``provider``."""
    tracer: Tracer = provider.get_tracer("gateway")
    return tracer


@contextlib.contextmanager
def span(tracer: Tracer | None, name: str, *, server: bool) -> Iterator[Span | None]:
    """A span named ``name`` (server or client kind) when tracing is on; else nothing."""
    if tracer is None:
        yield None
        return
    from opentelemetry.trace import SpanKind

    kind = SpanKind.SERVER if server else SpanKind.CLIENT
    with tracer.start_as_current_span(name, kind=kind) as current:
        yield current
