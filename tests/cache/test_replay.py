"""The response cache replays an answer only while every count it holds is fresh and unchanged."""

from __future__ import annotations

import asyncio

from support.clock import FakeClock as FakeTimer

from gateway.cache import CacheKey, CountCache, Counted
from gateway.cache.replay import MAX_REPLAYED_BODY, Replay, ResponseCache

KEY_A = CacheKey(b"p" * 32, '{"campId":1}', None)
KEY_B = CacheKey(b"p" * 32, '{"campId":2}', None)


def value_of(counted: Counted) -> int:
    """get_or_start's ``then``: the count itself."""
    return counted.value


async def filled(timer: FakeTimer) -> CountCache:
    """A count cache holding A=5 and B=7, fresh for 10 s."""
    cache = CountCache(maxsize=10, ttl=10, timer=timer)

    async def five() -> int:
        return 5

    async def seven() -> int:
        return 7

    for key, fetch in ((KEY_A, five), (KEY_B, seven)):
        await asyncio.ensure_future(cache.get_or_start(key, fetch, None, value_of))
    return cache


async def test_a_remembered_answer_is_replayed_while_its_counts_are_fresh() -> None:
    """The same principal and body get the same bytes back, counts unchanged."""
    timer = FakeTimer()
    responses = ResponseCache(await filled(timer))
    replay = Replay(b'{"data":{"a":5,"b":7}}', ((KEY_A, 5), (KEY_B, 7)), ("Q",), 2)
    responses.put(b"p" * 32, b"body", replay)
    assert responses.get(b"p" * 32, b"body") == replay
    assert responses.get(b"q" * 32, b"body") is None  # another credential
    assert responses.get(b"p" * 32, b"body2") is None  # another request


async def test_an_answer_is_dropped_once_one_count_expires() -> None:
    """When a count it was made of is no longer fresh, the answer is not replayed again."""
    timer = FakeTimer()
    responses = ResponseCache(await filled(timer))
    responses.put(b"p" * 32, b"body", Replay(b"{}", ((KEY_A, 5), (KEY_B, 7))))
    timer.now += 10
    assert responses.get(b"p" * 32, b"body") is None
    assert len(responses) == 0


async def test_an_answer_is_dropped_when_a_count_changed() -> None:
    """A count refreshed to another value invalidates the answer made with the old one."""
    timer = FakeTimer()
    counts = await filled(timer)
    responses = ResponseCache(counts)
    responses.put(b"p" * 32, b"body", Replay(b"{}", ((KEY_A, 4),)))
    assert responses.get(b"p" * 32, b"body") is None


async def test_long_bodies_and_answers_without_counts_are_not_remembered() -> None:
    """Only small requests whose answer came from counts are kept."""
    responses = ResponseCache(await filled(FakeTimer()))
    responses.put(b"p" * 32, b"x" * (MAX_REPLAYED_BODY + 1), Replay(b"{}", ((KEY_A, 5),)))
    responses.put(b"p" * 32, b"introspection", Replay(b"{}", ()))
    assert len(responses) == 0


async def test_the_cache_is_bounded() -> None:
    """No more than maxsize answers are kept."""
    responses = ResponseCache(await filled(FakeTimer()), maxsize=3)
    for n in range(10):
        responses.put(b"p" * 32, f"body{n}".encode(), Replay(b"{}", ((KEY_A, 5),)))
    assert len(responses) == 3
