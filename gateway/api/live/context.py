"""One evaluation of a live feed: ``callCount`` and series buckets read their pollers.

The resolvers are the queries' own; only where a count comes from differs. A
question seen for the first time gets its poller (within the limits and the
fan-out budget) and waits for its first poll; after that every evaluation
reads the poller's latest state and never calls the upstream itself.
"""

from __future__ import annotations

import asyncio
import copy
import functools
import time
from dataclasses import dataclass
from typing import Protocol

from gateway.api.budget import RequestBudget
from gateway.api.context import RequestContext, stale_warning
from gateway.api.live.pollers import Poller, PollState
from gateway.cache import CacheKey
from gateway.errors import GatewayError, StreamLimitError
from gateway.model import CountQuery


class Watcher(Protocol):
    """What an evaluation tells its feed: ``every``, and each question it asks."""

    def watch(self, every: int) -> None: ...

    def poller_for(self, key: CacheKey, query: CountQuery, budget: RequestBudget) -> Poller: ...


@dataclass
class LiveContext(RequestContext):
    """A ``RequestContext`` whose counts come from the feed's pollers."""

    watcher: Watcher | None = None
    #: The limit that refused a poller, if one did: the whole stream is refused.
    refused: StreamLimitError | None = None

    def watch(self, every: int) -> None:
        """``Subscription.watch``'s argument, for the feed."""
        assert self.watcher is not None
        self.watcher.watch(every)

    def count_soon(self, query: CountQuery, path: list[str | int]) -> int | asyncio.Future[int]:
        """The poller's latest count for ``query`` (its first poll's, awaited, when new)."""
        credential = self.credential
        if isinstance(credential, GatewayError):
            raise type(credential)(credential.message)
        assert self.principal is not None
        assert self.watcher is not None
        key = CacheKey.of(self.principal, query)
        try:
            poller = self.watcher.poller_for(key, query, self.budget)
        except StreamLimitError as exc:
            self.refused = exc
            raise
        if poller.state is not None:
            return self._read(poller.state, path)
        landed: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        poller.ready.add_done_callback(functools.partial(self._landed, poller, path, landed))
        return landed

    def _landed(
        self,
        poller: Poller,
        path: list[str | int],
        landed: asyncio.Future[int],
        ready: asyncio.Future[None],
    ) -> None:
        if landed.done():
            return
        if ready.cancelled() or poller.state is None:
            landed.cancel()
            return
        try:
            landed.set_result(self._read(poller.state, path))
        except GatewayError as exc:
            landed.set_exception(exc)

    def _read(self, state: PollState, path: list[str | int]) -> int:
        """The count ``state`` holds (with a warning when stale), or its error raised."""
        if state.error is not None:
            # A copy: the same error is raised again at every evaluation.
            raise copy.copy(state.error).with_traceback(None)
        assert state.value is not None
        if state.stale_since is not None:
            self.warnings.append(stale_warning(path, time.monotonic() - state.stale_since))
        return state.value
