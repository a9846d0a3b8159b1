"""Values every layer passes along: who asks (``Caller``, ``Credential``), and what.

Plain frozen values with no behaviour beyond their own encoding, so that the
HTTP side, the resolvers, the caches and the upstream client can share them
without importing one another.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from gateway.errors import GatewayError


@dataclass(frozen=True)
class Credential:
    """A caller's DeepCall credential: a session id, or a user id with its token."""

    ssid: str | None = field(default=None, repr=False)
    user_id: str | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    def identity(self) -> bytes:
        """The whole credential as bytes, unambiguous between forms and parts (for keying)."""
        return orjson.dumps([self.ssid, self.user_id, self.token])

    def body(self) -> dict[str, str]:
        """The authentication fields of an upstream request body: never both forms."""
        if self.ssid is not None:
            return {"ssid": self.ssid}
        return {"userId": self.user_id or "", "token": self.token or ""}

    def __repr__(self) -> str:
        kind = "ssid" if self.ssid is not None else "userId+token"
        return f"Credential(<{kind} hidden>)"


@dataclass(frozen=True)
class Caller:
    """Who sent a request: the credential (or why there is none), its HMAC, the client's address.

    The address is a key for limits only: never logged, never a metric label.
    """

    credential: Credential | GatewayError
    #: HMAC of the whole credential (None without a usable one).
    principal: bytes | None = None
    address: str = ""


@dataclass(frozen=True)
class CountQuery:
    """One reportCount question, already canonical: equal questions are equal values."""

    filter_json: str = "{}"
    priority_filter: str | None = None
    #: The window's end (``dtLte``, upstream wall-clock time), which decides how long to cache.
    until: str | None = field(default=None, compare=False)

    @classmethod
    def build(cls, filter: Mapping[str, Any], priority_filter: str | None) -> CountQuery:
        """Canonicalise ``filter`` (sorted keys, compact JSON) with ``priority_filter``."""
        try:
            canonical = orjson.dumps(filter, option=orjson.OPT_SORT_KEYS).decode()
        except orjson.JSONEncodeError:  # integers beyond 64 bits, which orjson refuses
            canonical = json.dumps(
                filter, sort_keys=True, separators=(",", ":"), ensure_ascii=False
            )
        until = filter.get("dtLte")
        return cls(canonical, priority_filter, until if isinstance(until, str) else None)

    def payload(self, credential: Credential) -> bytes:
        """The JSON body to POST for ``credential``, the canonical filter spliced in as it is."""
        body: dict[str, Any] = dict(credential.body())
        if self.filter_json != "{}":
            body["filter"] = orjson.Fragment(self.filter_json)
        if self.priority_filter is not None:
            body["priorityFilter"] = self.priority_filter
        return orjson.dumps(body)
