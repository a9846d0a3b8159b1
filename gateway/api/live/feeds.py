"""Feeds: one per identical subscription of one credential, shared by the streams that ask it.

A feed evaluates its selection when its first stream comes, then again when
one of its pollers reports a change, never sooner than ``every`` seconds
after its last event. An evaluation whose result differs from the last one
(the ages of stale values aside) is the next event: one execution and one
encoding per change, however many streams, tabs and transports watch.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from inspect import isawaitable
from typing import Any, Final, NamedTuple, Protocol, TypeGuard, cast

import orjson
from graphql import ExecutionResult, execute
from strawberry import Schema
from strawberry.execution import optimized_is_awaitable

from gateway.api.budget import RequestBudget
from gateway.api.live.context import LiveContext
from gateway.api.live.pollers import Poller, Pollers
from gateway.api.results import format_result
from gateway.api.services import Services
from gateway.cache import CacheKey
from gateway.documents import Prepared
from gateway.errors import (
    PARSE_FAILED,
    VALIDATION_FAILED,
    BadUserInputError,
    ForbiddenError,
    InternalServerError,
    UnauthenticatedError,
)
from gateway.model import Caller, CountQuery

logger = logging.getLogger("gateway.live")

#: Codes that no later poll can change: the feed's event with one of them is its last.
PERMANENT: Final = frozenset(
    {
        UnauthenticatedError.code,
        ForbiddenError.code,
        BadUserInputError.code,
        PARSE_FAILED,
        VALIDATION_FAILED,
        InternalServerError.code,
    }
)

_is_awaitable = cast("Callable[[Any], TypeGuard[Awaitable[Any]]]", optimized_is_awaitable)


class Event(NamedTuple):
    """One result of a feed: the JSON of its ``data``/``errors``, its number, whether last."""

    payload: bytes
    version: int
    final: bool = False


class FeedKey(NamedTuple):
    """Subscriptions that would give the same events: one credential, one document, one set
    of variables."""

    principal: bytes
    text: str
    operation_name: str | None
    variables: bytes


@dataclass(frozen=True)
class Asked:
    """A subscription as a stream asks it: its prepared document, by whom, how it runs."""

    schema: Schema
    prepared: Prepared
    text: str
    operation_name: str | None
    variables: dict[str, Any] | None
    caller: Caller
    request_id: str
    hide_suggestions: bool

    def key(self) -> FeedKey:
        """The feed this subscription shares with identical ones."""
        assert self.caller.principal is not None
        variables = orjson.dumps(self.variables or {}, option=orjson.OPT_SORT_KEYS)
        return FeedKey(self.caller.principal, self.text, self.operation_name, variables)


class Reader(Protocol):
    """What a feed wakes when it has a new event: a stream."""

    def wake(self) -> None: ...


class Owner(Protocol):
    """What a feed needs of the process's live counts."""

    services: Services
    pollers: Pollers
    min_every: float

    def forget(self, feed: Feed) -> None: ...


class Feed:
    """The latest event of one subscription, shared by its streams; see the module."""

    def __init__(self, owner: Owner, asked: Asked) -> None:
        self.owner = owner
        self.asked = asked
        self.every = owner.min_every
        self.pollers: dict[CacheKey, Poller] = {}
        self.readers: set[Reader] = set()
        self.latest: Event | None = None
        self.final = False
        self._loop = asyncio.get_running_loop()
        self._compared = b""
        self._last_event = -math.inf
        self._dirty = True
        self._timer: asyncio.TimerHandle | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    # what streams do

    def join(self, reader: Reader) -> None:
        """``reader`` watches; the first one starts the first evaluation."""
        self.readers.add(reader)
        self._plan()

    def leave(self, reader: Reader) -> None:
        """``reader`` is gone; the last one closes the feed."""
        self.readers.discard(reader)
        if not self.readers:
            self.close()

    def close(self) -> None:
        """Stop evaluating and let go of the pollers (each lingers a moment for others)."""
        if self._closed:
            return
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
        self._release()
        self.owner.forget(self)

    # what an evaluation (LiveContext) and the pollers do

    def watch(self, every: int) -> None:
        """The subscription's ``every``, raised to the floor."""
        self.every = max(float(every), self.owner.min_every)

    def poller_for(self, key: CacheKey, query: CountQuery, budget: RequestBudget) -> Poller:
        """The poller of ``query``: held already, or acquired (against the fan-out budget)."""
        poller = self.pollers.get(key)
        if poller is None:
            budget.charge()
            caller = self.asked.caller
            assert not isinstance(caller.credential, Exception)
            poller = self.owner.pollers.acquire(
                self, self.every, key, query, caller.credential, caller.address
            )
            self.pollers[key] = poller
        return poller

    def poll_changed(self) -> None:
        """One of the pollers learnt something new: evaluate again (no sooner than allowed)."""
        self._dirty = True
        self._plan()

    # evaluating

    def _plan(self) -> None:
        if self._closed or self.final or self._task is not None or self._timer is not None:
            return
        if not self._dirty:
            return
        wait = self._last_event + self.every - self._loop.time()
        if wait > 0:
            self._timer = self._loop.call_later(wait, self._run)
        else:
            self._run()

    def _run(self) -> None:
        self._timer = None
        self._dirty = False
        self._task = self._loop.create_task(self._evaluate())
        self._task.add_done_callback(self._evaluated)

    def _evaluated(self, task: asyncio.Task[None]) -> None:
        self._task = None
        if not task.cancelled():
            self._plan()

    async def _evaluate(self) -> None:
        asked, services = self.asked, self.owner.services
        context = LiveContext(
            services,
            asked.request_id,
            asked.caller.credential,
            RequestBudget(services.settings.max_fanout, 1),
            asked.caller.principal,
            asked.caller.address,
            watcher=self,
        )
        try:
            body = await self._execute(context)
        except Exception:
            logger.exception("live evaluation failed (request %s)", asked.request_id)
            error = InternalServerError("Internal server error")
            extensions = {**error.extensions(), "requestId": asked.request_id}
            body = {"errors": [{"message": error.message, "extensions": extensions}]}
        if context.refused is not None:
            body = {"errors": [context.refused.formatted()]}
        self._publish(body, self._is_final(body))

    async def _execute(self, context: LiveContext) -> dict[str, Any]:
        asked = self.asked
        result = execute(
            asked.schema._schema,
            cast("Any", asked.prepared.document),
            context_value=context,
            variable_values=asked.variables,
            operation_name=asked.operation_name,
            executor_class=asked.schema.execution_context_class,
            is_awaitable=_is_awaitable,
            hide_suggestions=asked.hide_suggestions,
        )
        if isawaitable(result):
            result = await result
        assert isinstance(result, ExecutionResult)
        if result.errors:
            asked.prepared.relocate(result.errors)
        body = format_result(result, asked.request_id)
        if context.warnings:
            body["extensions"] = {"warnings": context.warnings}
        return body

    def _is_final(self, body: Mapping[str, Any]) -> bool:
        """Whether no later poll can change this result: an error no poll mends, or settled."""
        if body.get("data") is None:
            return True
        if any(error["extensions"]["code"] in PERMANENT for error in body.get("errors", ())):
            return True
        settled = self.owner.services.ttl.settled
        return all(
            poller.state is not None
            and poller.state.error is None
            and poller.state.stale_since is None
            and settled(poller.query)
            for poller in self.pollers.values()
        )

    def _publish(self, body: dict[str, Any], final: bool) -> None:
        payload = orjson.dumps(body)
        compared = _without_ages(body) if "extensions" in body else payload
        if self.latest is None or compared != self._compared or final:
            self._compared = compared
            version = self.latest.version + 1 if self.latest is not None else 1
            self.latest = Event(payload, version, final)
            self._last_event = self._loop.time()
            for reader in list(self.readers):
                reader.wake()
        if final:
            self.final = True
            self._release()
            self.owner.forget(self)

    def _release(self) -> None:
        for poller in self.pollers.values():
            poller.remove(self)
        self.pollers.clear()


def _without_ages(body: dict[str, Any]) -> bytes:
    """``body`` as compared with the last event: a stale value's age alone is no change."""
    warnings = [
        {key: value for key, value in warning.items() if key != "ageSeconds"}
        for warning in body["extensions"].get("warnings", ())
    ]
    return orjson.dumps({**body, "extensions": {**body["extensions"], "warnings": warnings}})
