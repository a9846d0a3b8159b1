"""The fleet's limits in a real Redis: one bucket, one budget, one verdict for every replica."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from support.redis import needs_redis, redis_server

from gateway.fleet import (
    HELD,
    INVALID,
    NEW_LIMITED,
    OK,
    RATE_LIMITED,
    FleetLimits,
    RedisLink,
    new_reservation,
)

pytestmark = needs_redis
ALICE, MALLORY = b"\x01" * 32, b"\x02" * 32
HOME = "198.51.100.1"


@pytest.fixture
async def link() -> AsyncIterator[RedisLink]:
    """A link to a fresh redis-server."""
    with redis_server() as (url, _):
        link = RedisLink.from_url(url)
        try:
            yield link
        finally:
            await link.aclose()


def limits(link: RedisLink, **options: float) -> FleetLimits:
    """Fleet limits on ``link``: by default 5 calls at once, 1 a second, 2 new a minute."""
    values = {"rate": 1.0, "burst": 5.0, "new_per_minute": 2.0, "invalid_ttl": 10.0}
    return FleetLimits(link, hold_seconds=30, **{**values, **options})


async def test_two_replicas_share_one_bucket_per_credential(link: RedisLink) -> None:
    """Five calls at once through two replicas' limits; the sixth waits about a second."""
    one, two = limits(link), limits(link)
    grants = [await (one if n % 2 else two).admit(ALICE, HOME, trial=False) for n in range(5)]
    refused = await one.admit(ALICE, HOME, trial=False)
    other = await two.admit(MALLORY, HOME, trial=False)

    assert [grant.status for grant in grants if grant] == [OK] * 5
    assert refused is not None
    assert refused.status == RATE_LIMITED
    assert 0.5 < refused.wait <= 1.0
    assert other is not None
    assert other.status == OK  # another credential's bucket is its own


async def test_trials_hold_tokens_and_only_rejections_spend_them(link: RedisLink) -> None:
    """Two tokens held: a third trial is told to wait; a release lets it, two spends refuse."""
    fleet = limits(link)
    first, second, third = new_reservation(), new_reservation(), new_reservation()
    assert (await fleet.admit(b"a", HOME, trial=True, reservation=first)).status == OK  # type: ignore[union-attr]
    assert (await fleet.admit(b"b", HOME, trial=True, reservation=second)).status == OK  # type: ignore[union-attr]
    assert (await fleet.admit(b"c", HOME, trial=True, reservation=third)).status == HELD  # type: ignore[union-attr]

    await fleet.settle(b"a", HOME, first, spend=False, invalid=False)  # accepted
    assert (await fleet.admit(b"c", HOME, trial=True, reservation=third)).status == OK  # type: ignore[union-attr]

    await fleet.settle(b"b", HOME, second, spend=True, invalid=True)
    await fleet.settle(b"c", HOME, third, spend=True, invalid=True)
    refused = await fleet.admit(b"d", HOME, trial=True, reservation=new_reservation())
    assert refused is not None
    assert refused.status == NEW_LIMITED
    assert 20 <= refused.wait <= 30  # two a minute: one back every 30 s


async def test_a_rejected_credential_is_refused_to_every_replica(link: RedisLink) -> None:
    """A 1014 written by one replica's settle is the other's verdict, for invalid_ttl."""
    one, two = limits(link), limits(link)
    reservation = new_reservation()
    await one.admit(MALLORY, HOME, trial=True, reservation=reservation)
    await one.settle(MALLORY, HOME, reservation, spend=True, invalid=True)

    verdict = await two.admit(MALLORY, "203.0.113.5", trial=True, reservation=new_reservation())

    assert verdict is not None
    assert verdict.status == INVALID
    assert 9 < verdict.wait <= 10


async def test_while_redis_is_down_every_decision_is_local_and_counted() -> None:
    """No Redis: admit answers None (decide locally) and each such call is counted."""
    local = []
    with redis_server() as (url, process):
        link = RedisLink.from_url(url)
        fleet = FleetLimits(
            link,
            rate=1.0,
            burst=5.0,
            new_per_minute=2.0,
            invalid_ttl=10.0,
            hold_seconds=30,
            on_local=lambda: local.append(1),
        )
        process.kill()
        process.wait()
        grants = [await fleet.admit(ALICE, HOME, trial=False) for _ in range(3)]
        await link.aclose()

    assert grants == [None, None, None]
    assert len(local) == 3
    assert not fleet.up
