"""HTTP/1.1 to an upstream: a pool of bounded connections, or httpx's through a proxy.

It knows nothing of DeepCall: it sends small requests and reads bounded
answers, and every failure is an ``httpx`` exception (or a subclass of one).
"""

from gateway.transport.connection import InvalidAnswerError, StaleConnectionError
from gateway.transport.decoding import BodyDecoder, decoder_for
from gateway.transport.egress import ProxiedTransport, transport_for
from gateway.transport.pool import Origin, PooledTransport
from gateway.transport.tls import tls_context

__all__ = [
    "BodyDecoder",
    "InvalidAnswerError",
    "Origin",
    "PooledTransport",
    "ProxiedTransport",
    "StaleConnectionError",
    "decoder_for",
    "tls_context",
    "transport_for",
]
