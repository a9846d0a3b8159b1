"""The simulator's demo users: fixed, public, and only ever good for demo data.

Each account has a full-access user; ``acme`` also has a user without
LIST_CALL_LOG (upstream code 1015) and ``globex`` a user whose token has
expired (1014). An unknown ssid, an unknown user id or a wrong token for a known
user id is also 1014 "Invalid token".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class DemoCredential:
    """A demo user: either an ``ssid`` or a ``user_id`` + ``token``, never both."""

    name: str
    account: str
    ssid: str | None
    user_id: str | None
    token: str | None
    can_list: bool
    expired: bool
    note: str


DEMO_CREDENTIALS: tuple[DemoCredential, ...] = (
    DemoCredential(
        name="acme-admin",
        account="acme",
        ssid="demo-ssid-acme",
        user_id=None,
        token=None,
        can_list=True,
        expired=False,
        note="full access, session id",
    ),
    DemoCredential(
        name="globex-api",
        account="globex",
        ssid=None,
        user_id="2001",
        token="demo-token-globex",  # noqa: S106 - a published demo token
        can_list=True,
        expired=False,
        note="full access, user id + token",
    ),
    DemoCredential(
        name="initech-admin",
        account="initech",
        ssid="demo-ssid-initech",
        user_id=None,
        token=None,
        can_list=True,
        expired=False,
        note="full access, session id",
    ),
    DemoCredential(
        name="initech-api",
        account="initech",
        ssid=None,
        user_id="3001",
        token="demo-token-initech",  # noqa: S106 - a published demo token
        can_list=True,
        expired=False,
        note="full access, user id + token",
    ),
    DemoCredential(
        name="acme-viewer",
        account="acme",
        ssid="demo-ssid-acme-viewer",
        user_id=None,
        token=None,
        can_list=False,
        expired=False,
        note="no LIST_CALL_LOG permission -> 1015 Permission denied",
    ),
    DemoCredential(
        name="globex-expired",
        account="globex",
        ssid=None,
        user_id="2002",
        token="demo-token-expired",  # noqa: S106 - a published demo token
        can_list=True,
        expired=True,
        note="expired token -> 1014 Invalid token",
    ),
)
"""Every demo user, in the order ``describe`` lists them."""

_BY_SSID = {c.ssid: c for c in DEMO_CREDENTIALS if c.ssid is not None}
_BY_USER_ID = {c.user_id: c for c in DEMO_CREDENTIALS if c.user_id is not None}


def session_user(ssid: str, account: str) -> DemoCredential:
    """A full-access session of ``account`` that a test added (``Simulator.sessions``)."""
    return DemoCredential(
        name=f"{account}-session",
        account=account,
        ssid=ssid,
        user_id=None,
        token=None,
        can_list=True,
        expired=False,
        note="added by a test",
    )


def by_ssid(ssid: str) -> DemoCredential | None:
    """The demo user with this session id, or ``None``."""
    return _BY_SSID.get(ssid)


def by_user_token(user_id: str, token: str) -> DemoCredential | None:
    """The demo user with this user id, if ``token`` is its token; else ``None``."""
    credential = _BY_USER_ID.get(user_id)
    if credential is None or credential.token != token:
        return None
    return credential


def describe(credentials: tuple[DemoCredential, ...] = DEMO_CREDENTIALS) -> str:
    """Human-readable lines listing ``credentials``, for printing at start-up."""
    lines = ["Demo credentials (simulated upstream, demo data only):"]
    for c in credentials:
        secret = f"ssid={c.ssid}" if c.ssid else f"userId={c.user_id} token={c.token}"
        lines.append(f"  {c.name:<15} account={c.account:<8} {secret:<45} {c.note}")
    return "\n".join(lines)
