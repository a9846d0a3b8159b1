"""Pollers: one per (credential HMAC, question), however many live feeds ask that question.

A poller asks again every interval through the count cache, so a poll passes
the same guards, single flight and Redis tier as a query's miss, and what it
fetches serves queries too. It holds no task between polls (a timer), and
stops shortly after its last feed lets go.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable
from typing import Final, NamedTuple, Protocol

from gateway.api.services import Services
from gateway.cache import CacheKey, Counted
from gateway.errors import (
    GatewayError,
    InternalServerError,
    StreamLimitError,
    UpstreamUnavailableError,
)
from gateway.model import CountQuery, Credential

logger = logging.getLogger("gateway.live")

#: Seconds a poller outlives its last feed, so that a page reloaded finds it still warm.
LINGER: Final = 2.0
#: A poll of a failing question waits up to this many intervals (doubling from one).
MAX_BACKOFF: Final = 4
#: A fresh count younger than this share of the interval is taken as this poll's answer:
#: another replica (or a query) asked moments ago. Half or more keeps one call per interval.
FRESH_SHARE: Final = 0.6


class PollState(NamedTuple):
    """What a poller last learnt: a count, or the error that stands for it."""

    value: int | None
    error: GatewayError | None = None
    #: When the count served stale was fetched (``time.monotonic``); None when fresh.
    stale_since: float | None = None

    def same_as(self, other: PollState | None) -> bool:
        """Whether a feed would render ``other`` as it renders this (the age aside)."""
        if other is None:
            return False
        code = self.error.code if self.error else None
        other_code = other.error.code if other.error else None
        stale, other_stale = self.stale_since is not None, other.stale_since is not None
        return (self.value, code, stale) == (other.value, other_code, other_stale)


class Listener(Protocol):
    """What a poller tells of a change: a feed."""

    def poll_changed(self) -> None: ...


class Poller:
    """Asks one credential's question every ``interval`` seconds, for every feed that watches it.

    The interval is the smallest ``every`` of its feeds, each one jittered by
    up to 5% either way (the mean stays ``every``), so that pollers started
    together spread out. After a
    failure the next poll waits twice as long, up to ``MAX_BACKOFF`` intervals.
    Its feeds hear of a change of value, of staleness or of the error's code.
    """

    def __init__(
        self,
        owner: Pollers,
        key: CacheKey,
        query: CountQuery,
        credential: Credential,
        address: str,
    ) -> None:
        self.owner = owner
        self.key = key
        self.query = query
        self.credential = credential
        self.address = address
        self.state: PollState | None = None
        self.listeners: dict[Listener, float] = {}
        self.failures = 0
        self._loop = asyncio.get_running_loop()
        self.ready: asyncio.Future[None] = self._loop.create_future()
        self._timer: asyncio.TimerHandle | None = None
        self._lingering = False
        self._landed_at = 0.0
        #: The next poll waits this many intervals after the last landed (backoff, jitter).
        self._factor = 1.0
        self._polling = False
        self._closed = False

    @property
    def interval(self) -> float:
        """Seconds between polls: the smallest ``every`` of its feeds."""
        return min(self.listeners.values(), default=0.0)

    @property
    def rate(self) -> float:
        """Polls per second this poller causes at its interval."""
        interval = self.interval
        return 1 / interval if interval > 0 else 0.0

    def add(self, listener: Listener, every: float) -> None:
        """``listener`` watches this question at most every ``every`` seconds."""
        quicker = every < self.interval
        self.listeners[listener] = every
        if self._lingering or (quicker and self._timer is not None):
            self._schedule_next()  # back from the linger, or a quicker feed: don't wait it out

    def remove(self, listener: Listener) -> None:
        """``listener`` no longer watches; the last one leaving starts the linger."""
        self.listeners.pop(listener, None)
        if not self.listeners:
            self._cancel_timer()
            self._lingering = True
            self._timer = self._loop.call_later(self.owner.linger, self._expire)

    def start(self) -> None:
        """Poll now (the feeds' first event waits on it, or finds it in the cache)."""
        self._tick()

    def close(self) -> None:
        """Stop: no more polls; a poll in flight lands nowhere."""
        self._closed = True
        self._cancel_timer()
        if not self.ready.done():
            self.ready.cancel()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._lingering = False

    def _schedule_next(self) -> None:
        """The next poll, ``_factor`` intervals after the last landed (none while one flies)."""
        self._cancel_timer()
        if self._polling or self._closed or not self.listeners:
            return
        due = self._landed_at + self.interval * self._factor
        self._timer = self._loop.call_at(due, self._tick)

    def _expire(self) -> None:
        self._timer = None
        self._lingering = False
        if not self.listeners:
            self.owner.drop(self)

    def _tick(self) -> None:
        self._timer = None
        if self._closed or self._polling:
            return
        self._polling = True
        self.owner.on_poll()
        try:
            outcome = self.owner.fetch(self, self.interval * FRESH_SHARE)
        except Exception as exc:  # whatever it is, it is this poll's outcome
            self._land(None, exc)
            return
        if isinstance(outcome, Counted):
            self._land(outcome, None)
        else:
            outcome.add_done_callback(self._landed)

    def _landed(self, future: asyncio.Future[Counted]) -> None:
        if future.cancelled():
            self._land(None, asyncio.CancelledError())
            return
        error = future.exception()
        self._land(None if error else future.result(), error)

    def _land(self, counted: Counted | None, error: BaseException | None) -> None:
        self._polling = False
        if self._closed:
            return
        state = self._state_of(counted, error)
        failed = state.error is not None or state.stale_since is not None
        self.failures = self.failures + 1 if failed else 0
        changed = not state.same_as(self.state)
        self.state = state
        if not self.ready.done():
            self.ready.set_result(None)
        backoff = min(2 ** (self.failures - 1), MAX_BACKOFF) if self.failures else 1
        self._landed_at = self._loop.time()
        self._factor = backoff * (1 + (self.owner.random() - 0.5) * 0.1)
        if not self._lingering:
            self._schedule_next()
        if changed:
            for listener in list(self.listeners):
                listener.poll_changed()

    def _state_of(self, counted: Counted | None, error: BaseException | None) -> PollState:
        if counted is not None:
            if counted.stale_age is None:
                return PollState(counted.value)
            return PollState(counted.value, stale_since=time.monotonic() - counted.stale_age)
        if isinstance(error, GatewayError):
            return PollState(None, error.with_traceback(None))
        if isinstance(error, asyncio.CancelledError):
            # The cache's shared call was cancelled (the process is stopping): try again.
            return PollState(None, UpstreamUnavailableError("The poll was interrupted"))
        logger.error(
            "live poll failed unexpectedly",
            exc_info=(type(error), error, error.__traceback__) if error else None,
        )
        return PollState(None, InternalServerError("Internal server error"))


class Pollers:
    """Every poller of the process, by (credential HMAC, question); the limits they share.

    How they are divided between callers: a credential has at most
    ``per_credential`` pollers and may cause at most ``rate`` polls a second
    with them (0: unlimited); the process has at most ``limit``. A feed that
    would pass a limit is refused (``StreamLimitError``); the feeds already
    polling are unaffected, and one credential's pollers never serve another.
    """

    def __init__(
        self,
        fetch: Callable[[Poller, float], Counted | asyncio.Future[Counted]],
        *,
        limit: int,
        per_credential: int,
        rate: float,
        linger: float = LINGER,
        random: Callable[[], float] = random.random,
        on_poll: Callable[[], None] = lambda: None,
    ) -> None:
        self.fetch = fetch
        self.limit = limit
        self.per_credential = per_credential
        self.rate = rate
        self.linger = linger
        self.random = random
        self.on_poll = on_poll
        self._pollers: dict[CacheKey, Poller] = {}
        self._by_principal: dict[bytes, dict[CacheKey, Poller]] = {}

    def __len__(self) -> int:
        return len(self._pollers)

    def of(self, principal: bytes) -> int:
        """How many pollers ``principal`` has."""
        return len(self._by_principal.get(principal, ()))

    def rate_of(self, principal: bytes) -> float:
        """Polls per second ``principal``'s pollers cause together."""
        return sum(poller.rate for poller in self._by_principal.get(principal, {}).values())

    def acquire(
        self,
        listener: Listener,
        every: float,
        key: CacheKey,
        query: CountQuery,
        credential: Credential,
        address: str,
    ) -> Poller:
        """The poller of ``key`` for ``listener`` every ``every`` seconds; raises past a limit."""
        poller = self._pollers.get(key)
        mine = self._by_principal.get(key.principal, {})
        if poller is None:
            if len(self._pollers) >= self.limit:
                raise StreamLimitError(
                    f"The gateway polls {self.limit} questions already; retry later",
                    retry_after=60,
                )
            if len(mine) >= self.per_credential:
                raise StreamLimitError(
                    f"These credentials' streams poll {self.per_credential} questions already",
                    retry_after=60,
                )
        self._check_rate(key.principal, poller, every)
        if poller is None:
            poller = Poller(self, key, query, credential, address)
            self._pollers[key] = poller
            self._by_principal.setdefault(key.principal, {})[key] = poller
            poller.add(listener, every)
            poller.start()
        else:
            poller.add(listener, every)
        return poller

    def _check_rate(self, principal: bytes, poller: Poller | None, every: float) -> None:
        if self.rate <= 0:
            return
        now = self.rate_of(principal)
        before = poller.rate if poller is not None else 0.0
        interval = min(poller.interval, every) if poller is not None and poller.listeners else every
        after = now - before + 1 / interval
        if after > self.rate + 1e-9:
            raise StreamLimitError(
                f"These credentials' streams would poll DeepCall {after:.1f} times a second; "
                f"at most {self.rate:g}: watch fewer questions, or less often",
                retry_after=60,
            )

    def drop(self, poller: Poller) -> None:
        """Forget ``poller`` (its last feed left a while ago) and stop it."""
        poller.close()
        if self._pollers.get(poller.key) is poller:
            del self._pollers[poller.key]
            mine = self._by_principal.get(poller.key.principal)
            if mine is not None:
                mine.pop(poller.key, None)
                if not mine:
                    del self._by_principal[poller.key.principal]

    def close(self) -> None:
        """Stop every poller (the process is stopping)."""
        for poller in list(self._pollers.values()):
            self.drop(poller)


def cache_fetcher(
    services: Services,
) -> Callable[[Poller, float], Counted | asyncio.Future[Counted]]:
    """How pollers ask: the count cache, in front of the guarded upstream client."""
    cache, upstream, ttl = services.cache, services.upstream, services.ttl

    def fetch(poller: Poller, max_age: float) -> Counted | asyncio.Future[Counted]:
        call = functools.partial(
            upstream.report_count,
            poller.credential,
            poller.query,
            principal=poller.key.principal,
            address=poller.address,
        )
        return cache.get_or_start(poller.key, call, ttl.ttl_for(poller.query), _counted, max_age)

    return fetch


def _counted(counted: Counted) -> Counted:
    return counted
