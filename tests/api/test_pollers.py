"""Pollers: one per credential and question, reference-counted, limited, backing off on failure."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from support.waiting import eventually

from gateway.api.live.pollers import Poller, Pollers
from gateway.cache import CacheKey, Counted
from gateway.errors import ForbiddenError, StreamLimitError, UpstreamUnavailableError
from gateway.model import CountQuery, Credential

ALICE = Credential(ssid="alice")
BOB = Credential(ssid="bob")
QUESTION = CountQuery.build({"campId": 1}, None)
OTHER = CountQuery.build({"campId": 2}, None)
#: Seconds: short intervals keep these tests quick; deadlines are generous for a busy machine.
EVERY = 0.05
DEADLINE = 5.0


def key(credential: Credential, query: CountQuery = QUESTION) -> CacheKey:
    return CacheKey.of(credential.identity(), query)


class Listener:
    """A feed stand-in: counts the changes it hears of."""

    def __init__(self) -> None:
        self.changes = 0
        self.heard = asyncio.Event()

    def poll_changed(self) -> None:
        self.changes += 1
        self.heard.set()


class Upstream:
    """What the pollers ask: a value per key, a failure on demand, every poll recorded."""

    def __init__(self) -> None:
        self.values: dict[CacheKey, int] = {}
        self.error: Exception | None = None
        self.polls: list[tuple[CacheKey, float]] = []
        self.polled = asyncio.Event()

    def __call__(self, poller: Poller, max_age: float) -> Counted | asyncio.Future[Counted]:
        self.polls.append((poller.key, max_age))
        self.polled.set()
        future: asyncio.Future[Counted] = asyncio.get_running_loop().create_future()
        if self.error is not None:
            future.set_exception(self.error)
        else:
            future.set_result(Counted(self.values.get(poller.key, 0), source="miss"))
        return future

    def of(self, wanted: CacheKey) -> int:
        return sum(1 for polled, _ in self.polls if polled == wanted)

    async def until(self, condition: Callable[[], bool]) -> None:
        """Wait (at most DEADLINE) until ``condition`` holds, looking at every poll."""
        async with asyncio.timeout(DEADLINE):
            while not condition():
                self.polled.clear()
                await self.polled.wait()


def pollers(upstream: Upstream, **limits: float) -> Pollers:
    options: dict[str, float] = {"limit": 100, "per_credential": 100, "rate": 0, **limits}
    return Pollers(
        upstream,
        limit=int(options["limit"]),
        per_credential=int(options["per_credential"]),
        rate=options["rate"],
        linger=0.05,
        random=lambda: 0.0,
    )


async def test_one_poller_per_question_however_many_feeds() -> None:
    """Two feeds of one credential's question share one poller: one poll per interval."""
    upstream = Upstream()
    registry = pollers(upstream)
    first, second = Listener(), Listener()
    one = registry.acquire(first, EVERY, key(ALICE), QUESTION, ALICE, "")
    two = registry.acquire(second, EVERY, key(ALICE), QUESTION, ALICE, "")
    assert one is two
    assert len(registry) == 1
    await upstream.until(lambda: upstream.of(key(ALICE)) >= 4)
    started = asyncio.get_running_loop().time()
    await upstream.until(lambda: upstream.of(key(ALICE)) >= 8)
    # Four more polls took about four intervals: not twice as many for two feeds.
    assert asyncio.get_running_loop().time() - started >= 3 * EVERY
    registry.close()


async def test_two_credentials_never_share_a_poller() -> None:
    """The same question from two credentials is two pollers, each polled with its own."""
    upstream = Upstream()
    upstream.values = {key(ALICE): 5, key(BOB): 7}
    registry = pollers(upstream)
    alice = registry.acquire(Listener(), EVERY, key(ALICE), QUESTION, ALICE, "")
    bob = registry.acquire(Listener(), EVERY, key(BOB), QUESTION, BOB, "")
    assert alice is not bob
    await upstream.until(lambda: alice.state is not None and bob.state is not None)
    assert (alice.credential, bob.credential) == (ALICE, BOB)
    assert alice.state is not None
    assert bob.state is not None
    assert (alice.state.value, bob.state.value) == (5, 7)
    registry.close()


async def test_the_interval_is_the_smallest_every_and_refreshes_ask_for_young_counts() -> None:
    """A quicker feed makes the poller quicker at once; a poll takes counts younger than 0.6x."""
    upstream = Upstream()
    registry = pollers(upstream)
    slow = Listener()
    poller = registry.acquire(slow, 60.0, key(ALICE), QUESTION, ALICE, "")
    await upstream.until(lambda: upstream.of(key(ALICE)) >= 1)
    assert poller.interval == 60.0
    registry.acquire(Listener(), EVERY, key(ALICE), QUESTION, ALICE, "")
    assert poller.interval == EVERY
    await upstream.until(lambda: upstream.of(key(ALICE)) >= 4)
    assert upstream.polls[-1][1] == pytest.approx(EVERY * 0.6)
    registry.close()


async def test_feeds_hear_of_changes_only() -> None:
    """A poll that learns the same count again tells nobody; a new count tells every feed."""
    upstream = Upstream()
    upstream.values[key(ALICE)] = 1
    registry = pollers(upstream)
    listener = Listener()
    registry.acquire(listener, EVERY, key(ALICE), QUESTION, ALICE, "")
    await upstream.until(lambda: upstream.of(key(ALICE)) >= 5)
    assert listener.changes == 1  # the first count only
    upstream.values[key(ALICE)] = 2
    async with asyncio.timeout(DEADLINE):
        while listener.changes < 2:
            listener.heard.clear()
            await listener.heard.wait()
    registry.close()


async def test_reference_counting_both_ways() -> None:
    """One feed leaving keeps the poller for the other; the last leaving stops it after the
    linger; a feed back within the linger keeps the same poller polling."""
    upstream = Upstream()
    registry = pollers(upstream)
    first, second = Listener(), Listener()
    poller = registry.acquire(first, EVERY, key(ALICE), QUESTION, ALICE, "")
    registry.acquire(second, EVERY, key(ALICE), QUESTION, ALICE, "")
    poller.remove(first)
    polled = upstream.of(key(ALICE))
    await upstream.until(lambda: upstream.of(key(ALICE)) >= polled + 3)
    assert len(registry) == 1

    poller.remove(second)
    back = registry.acquire(second, EVERY, key(ALICE), QUESTION, ALICE, "")  # within the linger
    assert back is poller
    polled = upstream.of(key(ALICE))
    await upstream.until(lambda: upstream.of(key(ALICE)) >= polled + 3)

    poller.remove(second)
    await eventually(lambda: not len(registry), DEADLINE)
    stopped_at = upstream.of(key(ALICE))
    await asyncio.sleep(5 * EVERY)
    assert upstream.of(key(ALICE)) == stopped_at  # no poll after it stopped
    assert registry.of(ALICE.identity()) == 0


async def test_failures_back_off_and_recovery_is_heard() -> None:
    """After failures the polls slow down (doubling, at most 4 intervals); recovery resumes."""
    upstream = Upstream()
    upstream.values[key(ALICE)] = 3
    registry = pollers(upstream)
    listener = Listener()
    poller = registry.acquire(listener, EVERY, key(ALICE), QUESTION, ALICE, "")
    await upstream.until(lambda: poller.state is not None)
    upstream.error = UpstreamUnavailableError("down", upstream_code=1010)
    await upstream.until(lambda: poller.failures >= 3)
    assert poller.state is not None
    assert poller.state.error is not None
    assert poller.state.error.code == "UPSTREAM_UNAVAILABLE"
    times = []
    for _ in range(2):
        before = upstream.of(key(ALICE))
        await upstream.until(lambda before=before: upstream.of(key(ALICE)) > before)  # type: ignore[misc]
        times.append(asyncio.get_running_loop().time())
    assert times[1] - times[0] >= 3 * EVERY  # backed off to four intervals
    upstream.error = None
    await upstream.until(lambda: poller.state is not None and poller.state.error is None)
    assert poller.failures == 0
    assert poller.state is not None
    assert poller.state.value == 3
    registry.close()


async def test_a_permanent_error_is_a_state_like_any_other() -> None:
    """FORBIDDEN is kept as the poller's state, for the feed to end its streams with."""
    upstream = Upstream()
    upstream.error = ForbiddenError("no LIST_CALL_LOG", upstream_code=1015)
    registry = pollers(upstream)
    poller = registry.acquire(Listener(), EVERY, key(ALICE), QUESTION, ALICE, "")
    await upstream.until(lambda: poller.state is not None)
    assert poller.state is not None
    assert poller.state.error is not None
    assert poller.state.error.code == "FORBIDDEN"
    registry.close()


async def test_limits_refuse_the_newcomer_and_serve_the_others() -> None:
    """Past the per-credential, process or rate limit a new poller is refused; another
    credential, and the pollers already running, are served."""
    upstream = Upstream()
    registry = pollers(upstream, per_credential=1)
    registry.acquire(Listener(), EVERY, key(ALICE), QUESTION, ALICE, "")
    with pytest.raises(StreamLimitError) as refused:
        registry.acquire(Listener(), EVERY, key(ALICE, OTHER), OTHER, ALICE, "")
    assert refused.value.code == "RATE_LIMITED"
    registry.acquire(Listener(), EVERY, key(BOB, OTHER), OTHER, BOB, "")  # Bob is served
    registry.acquire(Listener(), EVERY, key(ALICE), QUESTION, ALICE, "")  # a poller Alice has
    registry.close()

    whole = pollers(upstream, limit=1)
    whole.acquire(Listener(), EVERY, key(ALICE), QUESTION, ALICE, "")
    with pytest.raises(StreamLimitError):
        whole.acquire(Listener(), EVERY, key(BOB), QUESTION, BOB, "")
    whole.close()

    rated = pollers(upstream, rate=1.0)  # one poll a second
    rated.acquire(Listener(), 2.0, key(ALICE), QUESTION, ALICE, "")  # 0.5 a second
    with pytest.raises(StreamLimitError) as too_often:
        rated.acquire(Listener(), 1.0, key(ALICE, OTHER), OTHER, ALICE, "")  # 1.5 a second
    assert "1.5 times a second" in too_often.value.message
    with pytest.raises(StreamLimitError):  # a quicker feed of a question it polls counts too
        rated.acquire(Listener(), 0.5, key(ALICE), QUESTION, ALICE, "")
    rated.acquire(Listener(), 2.0, key(ALICE, OTHER), OTHER, ALICE, "")  # 1.0 a second: fits
    rated.acquire(Listener(), 1.0, key(BOB), QUESTION, BOB, "")  # Bob's own budget
    rated.close()
