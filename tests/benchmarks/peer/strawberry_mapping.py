"""What the Python peer shares with the Node peers' mapping.mjs, line for line.

The error shape and the upstream's codes, the DateTime scalar's parsing, the filter
mapping and its checks, and the credential headers: the same rules, so that every
peer does the same job. It imports nothing of the gateway's.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from graphql import GraphQLError

UPSTREAM_ZONE = ZoneInfo(os.environ.get("UPSTREAM_TZ", "Asia/Kolkata"))
MODELLED_KEYS = ("dtGte", "dtLte", "agtIds", "campId", "st")
MAX_INT = 2**31 - 1

# ---------------------------------------------------------------- errors


def fail(
    message: str, code: str, *, retryable: bool = False, upstream_code: int | None = None
) -> GraphQLError:
    """A GraphQL error with the gateway's extensions: code, retryable, upstreamCode."""
    extensions: dict[str, Any] = {"code": code, "retryable": retryable}
    if upstream_code is not None:
        extensions["upstreamCode"] = upstream_code
    return GraphQLError(message, extensions=extensions)


def bad_input(message: str) -> GraphQLError:
    """A BAD_USER_INPUT error."""
    return fail(message, "BAD_USER_INPUT")


UPSTREAM_CODES = {
    1000: ("DeepCall refused the parameters", "BAD_USER_INPUT", False),
    1047: ("DeepCall refused the request data", "BAD_USER_INPUT", False),
    1014: ("DeepCall did not accept the credentials", "UNAUTHENTICATED", False),
    1015: ("These credentials may not list call logs", "FORBIDDEN", False),
    1009: ("DeepCall failed", "UPSTREAM_ERROR", True),
    1010: ("DeepCall is unavailable", "UPSTREAM_UNAVAILABLE", True),
}


def parse_report_count(answer: object) -> int:
    """The count of a reportCount answer, or the error its code maps to."""
    if isinstance(answer, dict):
        count, code = answer.get("cnt"), answer.get("code")
        if answer.get("status") == "success" and type(count) is int and count >= 0:
            if count > MAX_INT:
                raise fail("DeepCall's count does not fit a GraphQL Int", "UPSTREAM_BAD_RESPONSE")
            return count
        if answer.get("status") == "error" and type(code) is int:
            message, mapped, retryable = UPSTREAM_CODES.get(
                code, ("DeepCall failed", "UPSTREAM_ERROR", True)
            )
            raise fail(message, mapped, retryable=retryable, upstream_code=code)
    raise fail("DeepCall's answer had an unexpected shape", "UPSTREAM_BAD_RESPONSE")


# ---------------------------------------------------------------- DateTime

DATETIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|[+-]\d{2}(?::?\d{2})?)?"
)


@dataclass(frozen=True)
class WallTime:
    """A DateTime as the naive wall-clock time in the upstream's zone."""

    wall: datetime
    fractional: bool

    def upstream(self, *, round_up: bool) -> str:
        """The upstream's 'YYYY-MM-DD HH:MM:SS', a fraction rounded up for a lower bound."""
        wall = self.wall + timedelta(seconds=1) if self.fractional and round_up else self.wall
        return wall.strftime("%Y-%m-%d %H:%M:%S")


def _offset(text: str) -> timezone:
    if text == "Z":
        return UTC
    sign = -1 if text[0] == "-" else 1
    digits = text[1:].replace(":", "")
    return timezone(sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:] or 0)))


def parse_date_time(value: object) -> WallTime:
    """A DateTime value from a variable: ISO 8601 or the upstream's form."""
    match = DATETIME.fullmatch(value) if isinstance(value, str) and len(value) <= 64 else None
    if match is None:
        raise bad_input(
            "DateTime must be ISO 8601 (2025-11-20T09:00:00+05:30) or 'YYYY-MM-DD HH:MM:SS'"
        )
    y, mo, d, h, mi, s, frac, offset = match.groups()
    try:
        wall = datetime(int(y), int(mo), int(d), int(h), int(mi), int(s or 0))
    except ValueError as exc:
        raise bad_input("DateTime is not a valid date") from exc
    if offset is not None:
        wall = wall.replace(tzinfo=_offset(offset)).astimezone(UPSTREAM_ZONE).replace(tzinfo=None)
    return WallTime(wall, bool(frac and frac.strip("0")))


# ---------------------------------------------------------------- mapping


def upstream_filter(
    *,
    from_: WallTime | None,
    to: WallTime | None,
    agent_ids: Sequence[str] | None,
    campaign_id: int | None,
    statuses: Sequence[str] | None,
    extra: object,
) -> dict[str, Any]:
    """The upstream ``filter`` of a CallFilterInput's fields, checked as the Node peers do."""
    out: dict[str, Any] = {}
    if extra is not None:
        if not isinstance(extra, dict):
            raise bad_input("filter.extra must be a JSON object of upstream filter keys")
        clashes = [key for key in MODELLED_KEYS if key in extra]
        if clashes:
            raise bad_input(
                f"filter.extra must not set {', '.join(clashes)}: use the typed filter fields"
            )
        if len(json.dumps(extra, separators=(",", ":"), ensure_ascii=False)) > 4096:
            raise bad_input("filter.extra is longer than 4096 characters")
        out.update(extra)
    if from_ is not None:
        out["dtGte"] = from_.upstream(round_up=True)
    if to is not None:
        out["dtLte"] = to.upstream(round_up=False)
    if from_ is not None and to is not None and from_.wall > to.wall:
        raise bad_input("filter.from must not be after filter.to")
    if agent_ids is not None:
        out["agtIds"] = sorted(set(agent_ids))
    if campaign_id is not None:
        out["campId"] = campaign_id
    if statuses is not None:
        out["st"] = sorted(set(statuses))
    return out


BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")


def check_priority_filter(value: str | None) -> str | None:
    """``priorityFilter`` when it is base64 of at most 8,192 characters."""
    if value is None:
        return None
    if len(value) > 8192 or not BASE64.fullmatch(value):
        raise bad_input("priorityFilter must be base64")
    return value


# ---------------------------------------------------------------- credentials


def credential_from(headers: Any) -> dict[str, str] | GraphQLError:
    """``{"ssid"}`` or ``{"userId", "token"}`` from the request's headers, else the error."""
    ssid = headers.get("x-deepcall-ssid", "").strip()
    user_id = headers.get("x-deepcall-user-id", "").strip()
    token = headers.get("x-deepcall-token", "").strip()
    if not (ssid or user_id or token):
        return fail(
            "No credentials: send X-DeepCall-SSID, or X-DeepCall-User-Id with X-DeepCall-Token",
            "UNAUTHENTICATED",
        )
    if ssid and (user_id or token):
        return bad_input(
            "Send either X-DeepCall-SSID or X-DeepCall-User-Id with X-DeepCall-Token, not both"
        )
    if not ssid and not (user_id and token):
        return bad_input("X-DeepCall-User-Id and X-DeepCall-Token must be sent together")
    return {"ssid": ssid} if ssid else {"userId": user_id, "token": token}
