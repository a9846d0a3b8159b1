"""Who is calling: the credential in the headers, its HMAC, and the client's address.

- ``credential_from_headers``: the header contract (one form, never both).
- ``TrustedProxies.client_of``: the TCP peer, or, when the peer is one of
  ``GATEWAY_TRUSTED_PROXIES``, the right-most entry of ``X-Forwarded-For`` that
  is not a trusted proxy itself (the entries to its left prove nothing).
- ``Callers.identify``: all three, as one ``Caller``.

Credentials are kept only as an HMAC under a per-process secret; addresses
only in memory: neither is ever logged nor used as a metric label.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from typing import Final

from gateway.errors import BadUserInputError, GatewayError, UnauthenticatedError
from gateway.model import Caller, Credential

SSID_HEADER: Final = "X-DeepCall-SSID"
USER_ID_HEADER: Final = "X-DeepCall-User-Id"
TOKEN_HEADER: Final = "X-DeepCall-Token"  # noqa: S105 (a header name)
CREDENTIAL_HEADERS: Final = (SSID_HEADER, USER_ID_HEADER, TOKEN_HEADER)
MAX_CREDENTIAL_CHARS: Final = 512
#: Longest address (or unparsable X-Forwarded-For entry) kept as a key.
MAX_ADDRESS_CHARS: Final = 64
_BLOCK: Final = 64  # SHA-256's block, in bytes

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def credential_from_headers(headers: Mapping[str, str]) -> Credential:
    """The credential in ``headers``; raises the designed error for none, half or both forms."""
    ssid, user_id, token = (headers.get(name, "").strip() for name in CREDENTIAL_HEADERS)
    if not (ssid or user_id or token):
        raise UnauthenticatedError(
            f"No credentials: send {SSID_HEADER}, or {USER_ID_HEADER} with {TOKEN_HEADER}"
        )
    if ssid and (user_id or token):
        raise BadUserInputError(
            f"Send either {SSID_HEADER} or {USER_ID_HEADER} with {TOKEN_HEADER}, not both"
        )
    if not ssid and not (user_id and token):
        raise BadUserInputError(f"{USER_ID_HEADER} and {TOKEN_HEADER} must be sent together")
    if max(len(ssid), len(user_id), len(token)) > MAX_CREDENTIAL_CHARS:
        raise BadUserInputError(f"Credential headers are limited to {MAX_CREDENTIAL_CHARS} chars")
    if ssid:
        return Credential(ssid=ssid)
    return Credential(user_id=user_id, token=token)


class Callers:
    """Tells who sent a request: its credential keyed by ``secret``, its client's address."""

    def __init__(self, secret: bytes, proxies: TrustedProxies | None = None) -> None:
        # HMAC (RFC 2104) from its two keyed hashes, made once: OpenSSL's one-shot
        # hmac.digest sets the key up again on every call, at twice the cost.
        if len(secret) > _BLOCK:
            secret = hashlib.sha256(secret).digest()
        block = secret.ljust(_BLOCK, b"\0")
        self._inner = hashlib.sha256(bytes(byte ^ 0x36 for byte in block))
        self._outer = hashlib.sha256(bytes(byte ^ 0x5C for byte in block))
        self._proxies = proxies or TrustedProxies()

    def principal(self, credential: Credential) -> bytes:
        """HMAC-SHA256 of the whole credential: the key of everything kept for it."""
        inner = self._inner.copy()
        inner.update(credential.identity())
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.digest()

    def identify(self, headers: Mapping[str, str], peer: str | None = None) -> Caller:
        """The caller behind ``headers``, on a connection from TCP ``peer``."""
        address = self._proxies.client_of(peer, headers)
        try:
            credential = credential_from_headers(headers)
        except GatewayError as exc:
            return Caller(exc, address=address)
        return Caller(credential, self.principal(credential), address)


def address_key(address: str) -> str:
    """The key an address is limited under: itself, or its /64 for IPv6 (one subscriber's)."""
    if ":" not in address:
        # IPv4 (or a name): as the socket or the proxy wrote it. Parsing it on every
        # request cost more than all the rest of reading who is calling.
        return address[:MAX_ADDRESS_CHARS]
    try:
        parsed = ipaddress.ip_address(address)
    except ValueError:
        return address[:MAX_ADDRESS_CHARS]
    if isinstance(parsed, ipaddress.IPv6Address):
        if parsed.ipv4_mapped is not None:
            return str(parsed.ipv4_mapped)
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed)


class TrustedProxies:
    """The proxies whose ``X-Forwarded-For`` the gateway believes (none by default)."""

    def __init__(self, networks: Iterable[str] = ()) -> None:
        self._networks: tuple[Network, ...] = tuple(
            ipaddress.ip_network(network, strict=False) for network in networks
        )

    def trusts(self, address: str) -> bool:
        """Whether ``address`` is one of the trusted proxies."""
        if not self._networks:
            return False
        try:
            parsed = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(parsed in network for network in self._networks)

    def client_of(self, peer: str | None, headers: Mapping[str, str]) -> str:
        """The client's address key for a request from TCP ``peer`` with ``headers``."""
        address = peer or ""
        if self._networks and self.trusts(address):
            forwarded = [
                entry.strip()
                for value in _all(headers, "x-forwarded-for")
                for entry in value.split(",")
                if entry.strip()
            ]
            for entry in reversed(forwarded):
                address = entry
                if not self.trusts(entry):
                    break
        return address_key(address)


def _all(headers: Mapping[str, str], name: str) -> list[str]:
    getlist = getattr(headers, "getlist", None)  # starlette's Headers: every line of the header
    if getlist is not None:
        values: list[str] = getlist(name)
        return values
    value = headers.get(name)
    return [value] if value is not None else []
