"""Streams: one client's subscription; ``LiveCounts``: every stream, feed and poller of the process.

A stream reads its feed's latest event (a slow client skips to it: nothing
queues for it), lives at most ``GATEWAY_LIVE_MAX_LIFETIME``, and ends for one
reason of ``END_REASONS``, which each transport turns into its protocol's
ending.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import Callable
from typing import Final

from gateway.api.live.feeds import Asked, Event, Feed, FeedKey
from gateway.api.live.pollers import LINGER, Pollers, cache_fetcher
from gateway.api.services import Services
from gateway.errors import GatewayError, StreamEndedError, StreamLimitError

#: Why a stream ended: its last event sent; the client went; it lived its time; the
#: gateway is stopping; the client read too slowly; it was refused before it began.
END_REASONS: Final = ("complete", "client", "lifetime", "shutdown", "slow", "refused")
TRANSPORTS: Final = ("websocket", "sse", "multipart")


class StreamEnded(Exception):
    """The stream has ended, for ``reason`` (one of ``END_REASONS``)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Stream:
    """One client's subscription: the latest event of its feed it has not sent yet."""

    def __init__(self, owner: LiveCounts, feed: Feed, transport: str, lifetime: float) -> None:
        self.owner = owner
        self.feed = feed
        self.transport = transport
        self.ended: str | None = None
        #: Events handed to the transport to send.
        self.events = 0
        self._loop = asyncio.get_running_loop()
        self.opened = self._loop.time()
        self.deadline = self.opened + lifetime
        self._sent = 0
        self._waiter: asyncio.Future[None] | None = None
        self._closed = False

    @property
    def principal(self) -> bytes:
        """The HMAC of the stream's credential."""
        return self.feed.asked.caller.principal or b""

    def wake(self) -> None:
        """Its feed has a new event (or the stream ended): stop waiting."""
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def end(self, reason: str) -> None:
        """End the stream for ``reason`` (the first reason given stands)."""
        if self.ended is None:
            self.ended = reason
        self.wake()

    async def next(self, heartbeat: float) -> Event | None:
        """The next event to send, or None once ``heartbeat`` seconds pass without one.

        The event is the feed's latest: versions a slow client missed are
        skipped. After the feed's final event, and once the stream has ended
        (its lifetime, the gateway stopping, ``end``), raises ``StreamEnded``.
        """
        while True:
            if self.ended is not None:
                raise StreamEnded(self.ended)
            latest = self.feed.latest
            if latest is not None and latest.version > self._sent:
                self._sent = latest.version
                self.events += 1
                if latest.final:
                    self.end("complete")
                return latest
            left = self.deadline - self._loop.time()
            if left <= 0:
                self.end("lifetime")
                continue
            self._waiter = self._loop.create_future()
            try:
                async with asyncio.timeout(min(heartbeat, left)):
                    await self._waiter
            except TimeoutError:
                if heartbeat < left:
                    return None
            finally:
                self._waiter = None

    def close(self) -> None:
        """Let go of the feed and the stream's place in the limits (idempotent)."""
        if self._closed:
            return
        self._closed = True
        if self.ended is None:
            self.ended = "client"
        self.owner.closed(self)


class LiveCounts:
    """Every live stream of the process, their feeds and pollers, and the limits on them.

    How it is divided between callers: a credential has at most
    ``GATEWAY_LIVE_STREAMS_PER_CREDENTIAL`` streams and the process
    ``GATEWAY_LIVE_STREAMS``; pollers are limited as ``Pollers`` says. Feeds
    and pollers are keyed by the credential's HMAC, so two credentials never
    share one; a refusal is ``StreamLimitError`` for the newcomer only.
    """

    def __init__(
        self,
        services: Services,
        *,
        linger: float = LINGER,
        random: Callable[[], float] = random.random,
    ) -> None:
        settings = services.settings
        self.services = services
        self.min_every = settings.live_min_every
        self.lifetime = settings.live_max_lifetime
        self.metrics = services.metrics
        self.pollers = Pollers(
            cache_fetcher(services),
            limit=settings.live_pollers,
            per_credential=settings.live_pollers_per_credential,
            rate=settings.live_poll_budget,
            linger=linger,
            random=random,
            on_poll=self.metrics.live_polls.inc,
        )
        self._limit = settings.live_streams
        self._per_credential = min(settings.live_streams_per_credential, self._limit)
        self._feeds: dict[FeedKey, Feed] = {}
        self._streams: set[Stream] = set()
        self._of: Counter[bytes] = Counter()
        self.stopping = False
        self.transports = TRANSPORTS
        self.end_reasons = END_REASONS
        self.metrics.watch_live(self)

    @property
    def streams(self) -> int:
        """Open streams."""
        return len(self._streams)

    @property
    def feeds(self) -> int:
        """Feeds evaluating for open streams."""
        return len(self._feeds)

    def open(self, asked: Asked, transport: str) -> Stream:
        """A stream of ``asked``'s events; raises the error that refuses it.

        ``StreamEndedError`` while the gateway stops (subscribe elsewhere), the
        caller's credential error, or ``StreamLimitError`` past a limit.
        """
        if self.stopping:
            raise StreamEndedError("The gateway is shutting down: subscribe again")
        credential = asked.caller.credential
        if isinstance(credential, GatewayError):
            raise type(credential)(credential.message)
        principal = asked.caller.principal
        assert principal is not None
        if len(self._streams) >= self._limit:
            raise StreamLimitError(
                f"The gateway serves {self._limit} streams already; retry later", retry_after=30
            )
        if self._of[principal] >= self._per_credential:
            raise StreamLimitError(
                f"These credentials have {self._per_credential} streams open already",
                retry_after=30,
            )
        key = asked.key()
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = Feed(self, asked)
        stream = Stream(self, feed, transport, self.lifetime)
        self._streams.add(stream)
        self._of[principal] += 1
        self.metrics.live_streams.labels(transport).inc()
        feed.join(stream)
        return stream

    def forget(self, feed: Feed) -> None:
        """``feed`` evaluates no more: a new stream of its subscription starts a new one."""
        key = feed.asked.key()
        if self._feeds.get(key) is feed:
            del self._feeds[key]

    def closed(self, stream: Stream) -> None:
        """``stream`` is over: count it out, and out of its feed."""
        self._streams.discard(stream)
        principal = stream.principal
        self._of[principal] -= 1
        if self._of[principal] <= 0:
            del self._of[principal]
        self.metrics.live_streams.labels(stream.transport).dec()
        self.metrics.live_ended.labels(stream.transport, stream.ended or "client").inc()
        stream.feed.leave(stream)

    def shutdown(self) -> None:
        """Refuse new streams and end every open one (``shutdown``): clients go elsewhere."""
        self.stopping = True
        for stream in list(self._streams):
            stream.end("shutdown")

    def close(self) -> None:
        """Stop everything: feeds, pollers (the lifespan is ending)."""
        self.shutdown()
        for feed in list(self._feeds.values()):
            feed.close()
        self.pollers.close()
