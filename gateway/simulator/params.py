"""Validation of a ``reportCount`` body: everything that answers 1000 "Invalid parameters"."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.simulator.data import CallFilter, parse_time

logger = logging.getLogger("gateway.simulator")

FILTER_KEYS = frozenset({"dtGte", "dtLte", "agtIds", "st", "campId"})
"""The documented ``filter`` keys; others are ignored."""

REQUEST_KEYS = frozenset({"ssid", "userId", "token", "filter", "priorityFilter"})
"""The documented top-level keys; others are ignored."""

_TIME_PATTERN = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")


class InvalidParametersError(ValueError):
    """The body is a JSON object but breaks a documented parameter rule (code 1000)."""


@dataclass(frozen=True, slots=True)
class SessionAuth:
    """Credentials given as a session id."""

    ssid: str


@dataclass(frozen=True, slots=True)
class TokenAuth:
    """Credentials given as a user id and a token."""

    user_id: str
    token: str


@dataclass(frozen=True, slots=True)
class ReportCountParams:
    """A validated ``reportCount`` body."""

    auth: SessionAuth | TokenAuth
    filter: CallFilter
    priority_filter: str | None


def _given(payload: Mapping[str, Any], key: str) -> Any:
    value = payload.get(key)
    return None if value == "" else value  # "" and null both mean "not sent"


def parse_auth(payload: Mapping[str, Any]) -> SessionAuth | TokenAuth:
    """The credential form in ``payload``; ``InvalidParametersError`` unless exactly one."""
    ssid, user_id, token = (_given(payload, k) for k in ("ssid", "userId", "token"))
    if ssid is not None:
        if user_id is not None or token is not None:
            raise InvalidParametersError("ssid must not be sent with userId/token")
        if not isinstance(ssid, str):
            raise InvalidParametersError("ssid must be a string")
        return SessionAuth(ssid)
    if user_id is None or token is None:
        raise InvalidParametersError("send ssid, or userId and token")
    if isinstance(user_id, int) and not isinstance(user_id, bool):
        user_id = str(user_id)
    if not isinstance(user_id, str) or not isinstance(token, str):
        raise InvalidParametersError("userId and token must be strings")
    return TokenAuth(user_id, token)


def _time(value: Any, key: str) -> str:
    if not isinstance(value, str) or not _TIME_PATTERN.fullmatch(value):
        raise InvalidParametersError(f"{key} must be 'YYYY-MM-DD HH:MM:SS'")
    try:
        parse_time(value)
    except ValueError as exc:
        raise InvalidParametersError(f"{key} is not a real date and time") from exc
    return value


def _strings(value: Any, key: str) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise InvalidParametersError(f"{key} must be an array of strings")
    return tuple(value)


def parse_filter(value: Any) -> CallFilter:
    """Validate a ``filter`` value (``None`` is no filter) into a ``CallFilter``."""
    if value is None:
        return CallFilter()
    if not isinstance(value, dict):
        raise InvalidParametersError("filter must be an object")
    unknown = sorted(set(value) - FILTER_KEYS)
    if unknown:
        logger.debug("reportCount: ignoring unknown filter keys %s", unknown)
    camp_id = value.get("campId")
    if camp_id is not None and (not isinstance(camp_id, int) or isinstance(camp_id, bool)):
        raise InvalidParametersError("campId must be an integer")
    dt_gte, dt_lte = value.get("dtGte"), value.get("dtLte")
    agt_ids, statuses = value.get("agtIds"), value.get("st")
    return CallFilter(
        dt_gte=None if dt_gte is None else _time(dt_gte, "dtGte"),
        dt_lte=None if dt_lte is None else _time(dt_lte, "dtLte"),
        agent_ids=None if agt_ids is None else _strings(agt_ids, "agtIds"),
        statuses=None if statuses is None else _strings(statuses, "st"),
        campaign_id=camp_id,
    )


def parse_priority_filter(value: Any) -> str | None:
    """Validate ``priorityFilter``: absent, or a string of strict base64."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidParametersError("priorityFilter must be a string")
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidParametersError("priorityFilter must be base64") from exc
    return value


def parse_params(payload: Mapping[str, Any]) -> ReportCountParams:
    """Validate a JSON-object body; raise ``InvalidParametersError`` (code 1000).

    Strict to the upstream's documentation: exactly one credential form
    (``ssid``, or ``userId`` with ``token``; an integer ``userId`` is read as its
    decimal string); ``filter`` an object whose ``dtGte``/``dtLte`` are real
    ``"YYYY-MM-DD HH:MM:SS"`` times, ``agtIds`` and ``st`` arrays of strings and
    ``campId`` an integer; ``priorityFilter`` padded base64. JSON ``null`` and
    an empty credential count as absent; unknown keys are ignored and logged at
    DEBUG by name.
    """
    unknown = sorted(set(payload) - REQUEST_KEYS)
    if unknown:
        logger.debug("reportCount: ignoring unknown request keys %s", unknown)
    return ReportCountParams(
        auth=parse_auth(payload),
        filter=parse_filter(payload.get("filter")),
        priority_filter=parse_priority_filter(payload.get("priorityFilter")),
    )
