"""What the gateway tells its operators: Prometheus metrics, log lines, traces."""

from gateway.observe.logs import configure_logging
from gateway.observe.metrics import CONTENT_TYPE, Metrics, upstream_result

__all__ = ["CONTENT_TYPE", "Metrics", "configure_logging", "upstream_result"]
