"""Settings that depend on each other: defaults that follow the values set, and conflicts.

Only values the user set can conflict: a default that depends on another
setting follows it, and a problem names the settings as the user set them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from gateway.config import reading


def follow_given(values: dict[str, Any], given: set[str]) -> dict[str, str]:
    """Make the defaults that depend on other settings follow the values set explicitly.

    Returns, for each value changed, the field of the setting it follows, so that a
    conflict can name the settings the user set.
    """
    follows: dict[str, str] = {}

    def follow(name: str, value: Any, source: str) -> None:
        if name not in given and value != values[name]:
            values[name] = value
            follows[name] = follows.get(source, source)

    if "upstream_deadline" in given:
        follow(
            "upstream_timeout",
            min(values["upstream_timeout"], values["upstream_deadline"]),
            "upstream_deadline",
        )
    follow(
        "upstream_deadline",
        max(values["upstream_deadline"], values["upstream_timeout"]),
        "upstream_timeout",
    )
    if "upstream_max_connections" in given:
        follow(
            "upstream_concurrency",
            min(values["upstream_concurrency"], values["upstream_max_connections"]),
            "upstream_max_connections",
        )
    if "upstream_caller_concurrency" in given:
        follow(
            "upstream_concurrency",
            max(values["upstream_concurrency"], values["upstream_caller_concurrency"]),
            "upstream_caller_concurrency",
        )
    follow(
        "upstream_max_connections",
        max(values["upstream_max_connections"], values["upstream_concurrency"]),
        "upstream_concurrency",
    )
    # A caller's share: 64, but never more than two thirds of the process's slots.
    follow(
        "upstream_caller_concurrency",
        min(values["upstream_caller_concurrency"], max(1, values["upstream_concurrency"] * 2 // 3)),
        "upstream_concurrency",
    )
    return follows


def check_together(
    reader: reading.Reader, values: Mapping[str, Any], follows: Mapping[str, str]
) -> None:
    """Settings that are valid alone but not beside each other: only values set can conflict."""

    def named(field: str) -> str:
        return f"GATEWAY_{follows.get(field, field).upper()}"

    if values["upstream_deadline"] < values["upstream_timeout"]:
        reader.fail(f"{named('upstream_deadline')} must be at least {named('upstream_timeout')}")
    if values["upstream_caller_concurrency"] > values["upstream_concurrency"]:
        reader.fail(
            f"{named('upstream_caller_concurrency')} must not exceed "
            f"{named('upstream_concurrency')} (keep it below, so that one caller cannot hold "
            "every upstream slot)"
        )
    poll_rate = values["live_poll_rate"]
    if poll_rate is not None and not 0 <= poll_rate <= 1_000_000:
        reader.fail(f"GATEWAY_LIVE_POLL_RATE={poll_rate!r} is out of range: expected 0 to 1000000")
    elif poll_rate is not None and values["rate_limit"] and poll_rate > values["rate_limit"]:
        reader.fail(
            "GATEWAY_LIVE_POLL_RATE must not exceed GATEWAY_RATE_LIMIT (polls spend the "
            "credential's rate limit)"
        )
    if values["upstream_concurrency"] > values["upstream_max_connections"]:
        reader.fail(
            f"{named('upstream_concurrency')} must not exceed {named('upstream_max_connections')} "
            "(calls beyond would wait for a connection, unfairly, within their try's time)"
        )
