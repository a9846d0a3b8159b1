"""Unit tests for cache keys, the TTL count cache and its single flight."""

from __future__ import annotations

import asyncio
import hmac
from collections.abc import Awaitable, Callable

import pytest
from support.clock import FakeClock as FakeTimer

from gateway.cache import CacheKey, CountCache, Counted
from gateway.errors import (
    BadUserInputError,
    RateLimitedError,
    UpstreamBadResponseError,
    UpstreamError,
    UpstreamTimeoutError,
)
from gateway.http.callers import Callers
from gateway.model import CountQuery, Credential

SECRET = b"per-process-secret-for-tests"
QUERY = CountQuery.build({"dtGte": "2025-11-20 00:00:00", "st": ["answered"]}, None)
OTHER_QUERY = CountQuery.build({"dtGte": "2025-11-21 00:00:00", "st": ["answered"]}, None)


class Fetcher:
    """A fetch function that counts its calls and returns (or raises) what it is told."""

    def __init__(self, value: int = 42) -> None:
        self.value = value
        self.error: Exception | None = None
        self.calls = 0
        self.started = asyncio.Event()
        self.release = asyncio.Event()
        self.release.set()
        self.finished = False

    def hold(self) -> Fetcher:
        """Make calls wait for ``release`` once started."""
        self.release.clear()
        return self

    async def __call__(self) -> int:
        self.calls += 1
        self.started.set()
        await self.release.wait()
        self.finished = True
        if self.error is not None:
            raise self.error
        return self.value


def as_is(counted: Counted) -> Counted:
    """get_or_start's ``then`` that leaves the result a Counted."""
    return counted


async def get_or_fetch(
    cache: CountCache,
    key: CacheKey,
    fetch: Callable[[], Awaitable[int]],
    ttl: float | None = None,
) -> Counted:
    """``cache.get_or_start`` with the count as it came (hit, miss, join, stale), awaited."""
    counted = cache.get_or_start(key, fetch, ttl, as_is)
    return counted if isinstance(counted, Counted) else await counted


def cache_key(keys: Callers, credential: Credential, query: CountQuery) -> CacheKey:
    """The cache key of ``credential`` asking ``query``, its principal by ``keys``."""
    return CacheKey.of(keys.principal(credential), query)


def key(name: str = "a") -> CacheKey:
    """A cache key for ssid ``name`` asking QUERY."""
    return cache_key(Callers(SECRET), Credential(ssid=name), QUERY)


# Keys: the principal (an HMAC of the whole credential) and the question


def test_same_credential_and_query_give_equal_keys() -> None:
    """The same credential asking the same question gets the same key, across Callers."""
    first = cache_key(Callers(SECRET), Credential(user_id="u1", token="t1"), QUERY)
    second = cache_key(Callers(SECRET), Credential(user_id="u1", token="t1"), QUERY)

    assert first == second
    assert hash(first) == hash(second)


def test_the_query_is_part_of_the_key() -> None:
    """The same credential asking different questions gets different keys."""
    keys = Callers(SECRET)
    credential = Credential(ssid="s1")

    assert cache_key(keys, credential, QUERY) != cache_key(keys, credential, OTHER_QUERY)
    assert cache_key(keys, credential, QUERY) != cache_key(
        keys, credential, CountQuery(QUERY.filter_json, "e30=")
    )


def test_different_ssids_give_different_keys() -> None:
    """Two session ids never share a key."""
    keys = Callers(SECRET)

    assert cache_key(keys, Credential(ssid="s1"), QUERY) != cache_key(
        keys, Credential(ssid="s2"), QUERY
    )


def test_a_wrong_token_does_not_share_the_right_users_key() -> None:
    """The same user id with another token gets a different key (a wrong token never hits)."""
    keys = Callers(SECRET)

    right = cache_key(keys, Credential(user_id="u1", token="right"), QUERY)
    wrong = cache_key(keys, Credential(user_id="u1", token="wrong"), QUERY)

    assert right.principal != wrong.principal
    assert right != wrong


def test_the_two_credential_forms_never_share_a_key() -> None:
    """ssid "a" and userId "a" (with any token) get different keys."""
    keys = Callers(SECRET)

    as_ssid = keys.principal(Credential(ssid="a"))

    assert as_ssid != keys.principal(Credential(user_id="a", token=""))
    assert as_ssid != keys.principal(Credential(user_id="a", token="a"))


def test_the_secret_is_part_of_the_principal() -> None:
    """Two Callers with different secrets derive different principals for one credential."""
    credential = Credential(user_id="u1", token="t1")

    assert Callers(b"secret-one").principal(credential) != Callers(b"secret-two").principal(
        credential
    )


def test_the_principal_is_an_hmac_sha256_digest() -> None:
    """The principal is a 32-byte digest, not the credential."""
    principal = Callers(SECRET).principal(Credential(ssid="s1"))

    assert isinstance(principal, bytes)
    assert len(principal) == 32


@pytest.mark.parametrize("secret", [b"", b"k", b"k" * 64, b"k" * 65, bytes(range(256))])
def test_the_principal_is_the_standard_hmac_for_every_length_of_secret(secret: bytes) -> None:
    """The principal equals ``hmac.digest`` for secrets shorter than, as long as and longer
    than SHA-256's block, and for both credential forms."""
    callers = Callers(secret)
    for credential in (Credential(ssid="s1"), Credential(user_id="u1", token="t1")):
        expected = hmac.digest(secret, credential.identity(), "sha256")
        assert callers.principal(credential) == expected


@pytest.mark.parametrize(
    "credential",
    [
        Credential(ssid="ssid-SENTINEL-91d3"),
        Credential(user_id="user-SENTINEL-4be0", token="token-SENTINEL-c55a"),
    ],
    ids=["ssid", "user"],
)
def test_the_key_holds_no_credential_text(credential: Credential) -> None:
    """No credential text appears in the key's fields, its repr, or its bytes."""
    made = cache_key(Callers(SECRET), credential, QUERY)
    secrets = [s for s in (credential.ssid, credential.user_id, credential.token) if s]

    as_bytes = b"".join(
        field if isinstance(field, bytes) else str(field).encode() for field in made
    )
    for secret in secrets:
        assert secret.encode() not in as_bytes
        assert secret not in repr(made)
        assert secret not in str(made)
    assert b"SENTINEL" not in as_bytes


# CountCache: TTL


async def test_a_fresh_entry_is_served_without_fetching() -> None:
    """Before the TTL passes a second ask is a hit: fetch is not called again."""
    timer = FakeTimer()
    cache = CountCache(maxsize=10, ttl=10, timer=timer)
    fetch = Fetcher(value=7)

    assert (await get_or_fetch(cache, key(), fetch)).value == 7
    timer.now += 9.9
    assert (await get_or_fetch(cache, key(), fetch)).value == 7

    assert fetch.calls == 1
    assert cache.get(key()) == 7


async def test_an_expired_entry_is_fetched_again() -> None:
    """Once the TTL has passed the entry is gone and fetch is called again."""
    timer = FakeTimer()
    cache = CountCache(maxsize=10, ttl=10, timer=timer)
    fetch = Fetcher(value=7)

    await get_or_fetch(cache, key(), fetch)
    timer.now += 10.1
    assert cache.get(key()) is None
    fetch.value = 8

    assert (await get_or_fetch(cache, key(), fetch)).value == 8
    assert fetch.calls == 2


async def test_a_count_of_zero_is_cached() -> None:
    """A count of 0 is a value like any other and is served from the cache."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch = Fetcher(value=0)

    assert (await get_or_fetch(cache, key(), fetch)).value == 0
    assert (await get_or_fetch(cache, key(), fetch)).value == 0

    assert fetch.calls == 1


async def test_a_zero_ttl_caches_nothing() -> None:
    """With a TTL of 0 every ask fetches, even while the clock stands still."""
    cache = CountCache(maxsize=10, ttl=0, timer=FakeTimer())
    fetch = Fetcher(value=5)

    await get_or_fetch(cache, key(), fetch)
    await get_or_fetch(cache, key(), fetch)

    assert fetch.calls == 2


async def test_failures_are_not_cached() -> None:
    """A fetch that raises stores nothing: the next ask fetches again and can succeed."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch = Fetcher(value=3)
    fetch.error = UpstreamError("upstream trouble", upstream_code=1009)

    with pytest.raises(UpstreamError):
        await get_or_fetch(cache, key(), fetch)
    assert cache.get(key()) is None
    assert len(cache) == 0

    fetch.error = None
    assert (await get_or_fetch(cache, key(), fetch)).value == 3
    assert fetch.calls == 2
    assert cache.get(key()) == 3


async def test_maxsize_bounds_the_cache() -> None:
    """The cache never holds more than maxsize entries; the newest entry is kept."""
    cache = CountCache(maxsize=3, ttl=60, timer=FakeTimer())

    for number in range(10):
        await get_or_fetch(cache, key(f"user-{number}"), Fetcher(value=number))
        assert len(cache) <= 3

    assert len(cache) == 3
    assert cache.get(key("user-9")) == 9
    assert cache.get(key("user-0")) is None


async def test_the_least_recently_used_entry_is_evicted_first() -> None:
    """Reading an entry makes it recent: past maxsize the one unread longest goes."""
    cache = CountCache(maxsize=2, ttl=60, timer=FakeTimer())
    await get_or_fetch(cache, key("a"), Fetcher(value=1))
    await get_or_fetch(cache, key("b"), Fetcher(value=2))
    assert cache.get(key("a")) == 1  # now b is the least recently used

    await get_or_fetch(cache, key("c"), Fetcher(value=3))

    assert (cache.get(key("a")), cache.get(key("b")), cache.get(key("c"))) == (1, None, 3)


async def test_an_entry_past_its_stale_window_is_forgotten_when_read() -> None:
    """Fresh, then stale (kept, not served as fresh), then gone from the cache entirely."""
    timer = FakeTimer()
    cache = CountCache(maxsize=10, ttl=10, stale=5, timer=timer)
    await get_or_fetch(cache, key(), Fetcher(value=4))

    timer.now += 12
    assert (cache.get(key()), len(cache)) == (None, 1)
    timer.now += 4
    assert (cache.get(key()), len(cache)) == (None, 0)


async def test_a_hit_is_answered_at_once_and_a_miss_with_a_future() -> None:
    """get_or_start: a Counted for a fresh entry; a future (not a coroutine) otherwise."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch = Fetcher(value=6)

    started = cache.get_or_start(key(), fetch, None, as_is)
    assert isinstance(started, asyncio.Future)
    assert await started == Counted(6, source="miss")
    assert cache.get_or_start(key(), fetch, None, as_is) == Counted(6)
    assert fetch.calls == 1


async def test_a_cancelled_future_leaves_the_shared_call_to_the_others() -> None:
    """One caller's future cancelled: the fetch goes on and the other caller gets the count."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch = Fetcher(value=9).hold()
    first = cache.get_or_start(key(), fetch, None, as_is)
    second = cache.get_or_start(key(), fetch, None, as_is)
    assert isinstance(first, asyncio.Future)
    assert isinstance(second, asyncio.Future)
    await fetch.started.wait()

    first.cancel()
    fetch.release.set()

    assert await second == Counted(9, source="join")
    assert first.cancelled()
    assert (fetch.calls, cache.get(key())) == (1, 9)


# CountCache: single flight


async def test_concurrent_identical_misses_share_one_fetch() -> None:
    """N concurrent asks for one key while it is fetched cause one fetch, and all get its value."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch = Fetcher(value=11).hold()

    waiters = [asyncio.create_task(get_or_fetch(cache, key(), fetch)) for _ in range(20)]
    await fetch.started.wait()
    assert cache.in_flight == 1
    fetch.release.set()
    results = await asyncio.gather(*waiters)

    assert [r.value for r in results] == [11] * 20
    assert sorted(r.source for r in results) == ["join"] * 19 + ["miss"]
    assert fetch.calls == 1
    assert cache.in_flight == 0


async def test_different_keys_fetch_separately() -> None:
    """Concurrent asks for different keys each get their own fetch and their own value."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch_a, fetch_b = Fetcher(value=1).hold(), Fetcher(value=2).hold()

    task_a = asyncio.create_task(get_or_fetch(cache, key("a"), fetch_a))
    task_b = asyncio.create_task(get_or_fetch(cache, key("b"), fetch_b))
    await fetch_a.started.wait()
    await fetch_b.started.wait()
    assert cache.in_flight == 2
    fetch_a.release.set()
    fetch_b.release.set()

    assert [c.value for c in await asyncio.gather(task_a, task_b)] == [1, 2]
    assert (fetch_a.calls, fetch_b.calls) == (1, 1)


async def test_a_failed_flight_reaches_every_waiter_and_does_not_poison() -> None:
    """All waiters of a failing fetch get its error; the next ask starts a fresh fetch."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch = Fetcher(value=9).hold()
    fetch.error = UpstreamError("upstream trouble", upstream_code=1009)

    waiters = [asyncio.create_task(get_or_fetch(cache, key(), fetch)) for _ in range(5)]
    await fetch.started.wait()
    fetch.release.set()
    results = await asyncio.gather(*waiters, return_exceptions=True)

    assert all(isinstance(result, UpstreamError) for result in results), results
    assert fetch.calls == 1
    assert cache.in_flight == 0

    fetch.error = None
    assert (await get_or_fetch(cache, key(), fetch)).value == 9
    assert fetch.calls == 2


async def test_cancelling_one_waiter_does_not_cancel_the_shared_fetch() -> None:
    """A waiter that is cancelled leaves the shared fetch running; the others get its value."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch = Fetcher(value=13).hold()

    leader = asyncio.create_task(get_or_fetch(cache, key(), fetch))
    others = [asyncio.create_task(get_or_fetch(cache, key(), fetch)) for _ in range(3)]
    await fetch.started.wait()

    leader.cancel()
    await asyncio.wait({leader})
    assert leader.cancelled()
    assert cache.in_flight == 1
    assert fetch.finished is False

    fetch.release.set()
    assert [c.value for c in await asyncio.gather(*others)] == [13] * 3
    assert fetch.calls == 1
    assert fetch.finished is True
    assert cache.get(key()) == 13


async def test_a_fetch_whose_waiters_all_left_still_fills_the_cache() -> None:
    """When every waiter is cancelled the fetch still completes and its value is cached."""
    cache = CountCache(maxsize=10, ttl=10, timer=FakeTimer())
    fetch = Fetcher(value=21).hold()

    waiter = asyncio.create_task(get_or_fetch(cache, key(), fetch))
    await fetch.started.wait()
    waiter.cancel()
    await asyncio.wait({waiter})
    assert waiter.cancelled()

    fetch.release.set()
    # A later ask joins the still-running flight instead of starting a new one.
    assert (await get_or_fetch(cache, key(), fetch)).value == 21
    assert fetch.calls == 1
    assert cache.get(key()) == 21


async def test_a_stale_entry_is_served_when_the_refresh_fails_transiently() -> None:
    """Past its TTL but within the stale window, a transient failure serves the old value."""
    timer = FakeTimer()
    cache = CountCache(maxsize=10, ttl=10, stale=60, timer=timer)
    await get_or_fetch(cache, key(), Fetcher(value=5))
    timer.now += 25
    failing = Fetcher()
    failing.error = UpstreamError("down", upstream_code=1009)
    assert await get_or_fetch(cache, key(), failing) == Counted(5, 25.0, "stale")
    assert failing.calls == 1


@pytest.mark.parametrize(
    "error",
    [
        BadUserInputError("no", upstream_code=1000),
        UpstreamBadResponseError("odd"),
        RateLimitedError("slow", retry_after=1),
    ],
)
async def test_a_stale_entry_is_not_served_for_permanent_errors(error: Exception) -> None:
    """Errors that a retry would not fix are returned even when a stale value exists."""
    timer = FakeTimer()
    cache = CountCache(maxsize=10, ttl=10, stale=60, timer=timer)
    await get_or_fetch(cache, key(), Fetcher(value=5))
    timer.now += 25
    failing = Fetcher()
    failing.error = error
    with pytest.raises(type(error)):
        await get_or_fetch(cache, key(), failing)


async def test_past_the_stale_window_the_error_is_returned() -> None:
    """Once TTL plus stale window has passed, the entry is gone and the error comes through."""
    timer = FakeTimer()
    cache = CountCache(maxsize=10, ttl=10, stale=60, timer=timer)
    await get_or_fetch(cache, key(), Fetcher(value=5))
    timer.now += 70
    failing = Fetcher()
    failing.error = UpstreamTimeoutError("late")
    with pytest.raises(UpstreamTimeoutError):
        await get_or_fetch(cache, key(), failing)


async def test_a_stale_entry_is_refreshed_when_the_upstream_answers() -> None:
    """A stale entry is not served when the refresh succeeds: the new value is, fresh."""
    timer = FakeTimer()
    cache = CountCache(maxsize=10, ttl=10, stale=60, timer=timer)
    await get_or_fetch(cache, key(), Fetcher(value=5))
    timer.now += 25
    assert cache.get(key()) is None
    assert await get_or_fetch(cache, key(), Fetcher(value=6)) == Counted(6, None, "miss")
    assert cache.get(key()) == 6


async def test_a_key_costs_the_same_however_long_the_filter() -> None:
    """2,000 cached counts of 1,000-agent filters: tens of bytes each, no filter text kept."""
    import tracemalloc

    agents = [f"agent-{n:05d}" for n in range(1000)]
    cache = CountCache(maxsize=10_000, ttl=60)
    principal = Callers(SECRET).principal(Credential(ssid="s1"))
    tracemalloc.start()
    before = tracemalloc.take_snapshot()
    for n in range(2000):
        query = CountQuery.build({"agtIds": agents, "campId": n}, None)  # 14 KB of JSON
        await get_or_fetch(cache, CacheKey.of(principal, query), Fetcher(value=1))
    grown = sum(
        stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename")
    )
    tracemalloc.stop()

    assert len(cache) == 2000
    assert grown / 2000 < 1_000  # bytes per entry kept
