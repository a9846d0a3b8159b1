"""Per-request context: the caller's credential and the loader that counts for it."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field

from gateway.cache import CountCache, KeyMaker
from gateway.config import Settings
from gateway.errors import BadUserInputError, GatewayError, UnauthenticatedError
from gateway.upstream import CountQuery, Credential, UpstreamClient

SSID_HEADER = "X-DeepCall-SSID"
USER_ID_HEADER = "X-DeepCall-User-Id"
TOKEN_HEADER = "X-DeepCall-Token"  # noqa: S105 (a header name)
CREDENTIAL_HEADERS = (SSID_HEADER, USER_ID_HEADER, TOKEN_HEADER)
MAX_CREDENTIAL_CHARS = 512


@dataclass(frozen=True)
class Services:
    """What the app's lifespan builds once and every request shares."""

    settings: Settings
    upstream: UpstreamClient
    cache: CountCache
    keys: KeyMaker
    # Prefills GraphiQL's headers tab (the demo credential when serving demo data).
    example_headers: dict[str, str] | None = None


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


@dataclass
class RequestContext:
    """One HTTP request's view of the gateway, handed to every resolver."""

    services: Services
    request_id: str
    credential: Credential | GatewayError
    slots: asyncio.Semaphore
    upstream_calls: int = field(default=0)

    @classmethod
    def create(
        cls, services: Services, request_id: str, headers: Mapping[str, str]
    ) -> RequestContext:
        """A context for a request with ``headers``; credential problems surface per field."""
        credential: Credential | GatewayError
        try:
            credential = credential_from_headers(headers)
        except GatewayError as exc:
            credential = exc
        slots = asyncio.Semaphore(services.settings.request_concurrency)
        return cls(services, request_id, credential, slots)

    async def count(self, query: CountQuery) -> int:
        """The count for ``query`` with this request's credential: cached, shared, bounded."""
        credential = self.credential
        if isinstance(credential, GatewayError):
            # A fresh instance per field, so tracebacks don't pile up on one object.
            raise type(credential)(credential.message)
        services = self.services

        async def fetch() -> int:
            async with self.slots:
                self.upstream_calls += 1
                return await services.upstream.report_count(credential, query)

        return await services.cache.get_or_fetch(services.keys.key(credential, query), fetch)
