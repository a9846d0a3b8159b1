"""DeepCall's ``reportCount``: the client, and the guards every call passes on its way."""

from gateway.upstream.breaker import CircuitBreaker, Outcome, Permit
from gateway.upstream.client import (
    MAX_RESPONSE_BYTES,
    UpstreamClient,
    parse_report_count,
    translate_httpx_error,
)
from gateway.upstream.guards import GuardedClient, Guards
from gateway.upstream.ledger import CredentialLedger
from gateway.upstream.retries import RetryBudget, RetryBudgets, RetryPolicy, call_with_retries

__all__ = [
    "MAX_RESPONSE_BYTES",
    "CircuitBreaker",
    "CredentialLedger",
    "GuardedClient",
    "Guards",
    "Outcome",
    "Permit",
    "RetryBudget",
    "RetryBudgets",
    "RetryPolicy",
    "UpstreamClient",
    "call_with_retries",
    "parse_report_count",
    "translate_httpx_error",
]
