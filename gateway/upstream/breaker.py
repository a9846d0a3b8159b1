"""The circuit breaker: one circuit per caller and one for the upstream, judged on failure rates.

Callers are tenants, so the circuit they share opens only on evidence that
DeepCall is failing, never on one caller's failing questions.
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from typing import Final, NamedTuple

from gateway.errors import CallerCircuitOpenError, CircuitOpenError

logger = logging.getLogger("gateway.breaker")

CLOSED: Final = "closed"
OPEN: Final = "open"
HALF_OPEN: Final = "half_open"

_OPEN_MESSAGE: Final = "DeepCall is failing; the gateway is not calling it for a while"
_CALLER_OPEN_MESSAGE: Final = (
    "DeepCall keeps failing these credentials' questions; the gateway is not asking it "
    "for them for a while"
)


class Outcome(enum.Enum):
    """What one logical call says about the upstream's health."""

    SUCCESS = "success"
    FAILURE = "failure"
    NEUTRAL = "neutral"


_FAILURE: Final = Outcome.FAILURE
_NEUTRAL: Final = Outcome.NEUTRAL


class _Window:
    """Calls and failures over the last ``span`` seconds, counted per second (busy ones only).

    The current second's counts are plain fields, so that counting a call is
    usually one comparison and one addition (``CircuitBreaker.record`` does it inline).
    """

    __slots__ = ("_past", "_past_calls", "_past_failures", "now_calls", "now_failures", "second")

    def __init__(self) -> None:
        self._past: deque[tuple[int, int, int]] = deque()  # (second, calls, failures)
        self._past_calls = self._past_failures = 0
        self.second = -1
        self.now_calls = self.now_failures = 0

    def roll(self, second: int, span: int) -> None:
        """Move on to ``second``: the current second becomes past, past beyond ``span`` goes."""
        if second != self.second:
            if self.now_calls:
                self._past.append((self.second, self.now_calls, self.now_failures))
                self._past_calls += self.now_calls
                self._past_failures += self.now_failures
            self.second = second
            self.now_calls = self.now_failures = 0
        past = self._past
        while past and past[0][0] <= second - span:
            _, calls, failures = past.popleft()
            self._past_calls -= calls
            self._past_failures -= failures

    @property
    def calls(self) -> int:
        """Calls within the window (as of the last ``roll``)."""
        return self._past_calls + self.now_calls

    @property
    def failures(self) -> int:
        """Failed calls within the window (as of the last ``roll``)."""
        return self._past_failures + self.now_failures

    def clear(self) -> None:
        self._past.clear()
        self._past_calls = self._past_failures = 0
        self.now_calls = self.now_failures = 0


class Permit(NamedTuple):
    """A call let through: whose it is, and which circuits it probes."""

    caller: bytes
    probes_caller: bool = False
    probes_upstream: bool = False


class _Circuit:
    """One circuit's state and its window of outcomes."""

    __slots__ = ("opened_at", "permit", "probing", "state", "window")

    def __init__(self, caller: bytes = b"") -> None:
        #: What ``admit`` hands out while every circuit is closed (made once, not per call).
        self.permit = Permit(caller)
        self.state: str = CLOSED
        self.opened_at = 0.0
        self.probing = False
        self.window = _Window()

    def admit(self, now: float, cooldown: float) -> bool:
        """Whether a call may go (True: as this circuit's probe); False: refuse it."""
        if self.state == CLOSED:
            return True
        if self.state == OPEN:
            if now - self.opened_at < cooldown:
                return False
            self.state = HALF_OPEN
        if self.probing:
            return False
        self.probing = True
        return True


class CircuitBreaker:
    """The upstream's circuit and one per caller, judged on logical calls over ``window`` s.

    A call and its retries are one outcome; circuits open on a failure rate
    with a minimum volume, as Hystrix and resilience4j judge theirs.

    - **Each caller's** (keyed by its credential's HMAC) opens when that caller
      made at least ``min_calls`` calls and at least ``failure_rate`` of them
      failed. It refuses that caller only (``CallerCircuitOpenError``).
    - **The upstream's** opens when the same holds for every caller's calls
      together *after setting aside the caller with the most failures*: one
      caller's failing questions can never open it; DeepCall failing for two
      callers or more can. It refuses everyone (``CircuitOpenError``).

    An open circuit refuses for ``cooldown`` seconds, then lets one probe
    through: a success closes it (and forgets its failures), a failure opens it
    again. Outcomes that say nothing of the upstream's health (cancelled, a bad
    response, our own refusals) are neutral but free a probe's place. Callers
    remembered are bounded (``max_callers``, least recently used first).
    """

    def __init__(
        self,
        *,
        failure_rate: float = 0.5,
        min_calls: int = 20,
        window: float = 10.0,
        cooldown: float = 10.0,
        max_callers: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < failure_rate <= 1 or min_calls < 1 or window < 1 or cooldown < 0:
            raise ValueError(
                "CircuitBreaker needs 0 < failure_rate <= 1, min_calls >= 1, window >= 1 s "
                "and cooldown >= 0"
            )
        self._rate = failure_rate
        self._min_calls = min_calls
        self._span = round(window)
        self._cooldown = cooldown
        self._max_callers = max_callers
        self._clock = clock
        self._upstream = _Circuit()
        # Least recently active first, so the callers within the window are at the end.
        self._callers: OrderedDict[bytes, _Circuit] = OrderedDict()
        self._callers_not_closed = 0
        self.opened_total = 0
        """How many times the upstream's circuit has opened, again after a failed probe too."""

    @property
    def state(self) -> str:
        """The upstream circuit's state: ``closed``, ``open`` or ``half_open``."""
        return self._upstream.state

    @property
    def callers_open(self) -> int:
        """Callers whose own circuit is open or half open now."""
        return self._callers_not_closed

    def counts(self, caller: bytes | None = None) -> tuple[int, int]:
        """(calls, failures) within the window: ``caller``'s, or all callers' (None)."""
        if caller is None:
            window = self._upstream.window
        else:
            circuit = self._callers.get(caller)
            if circuit is None:
                return (0, 0)
            window = circuit.window
        window.roll(int(self._clock()), self._span)
        return (window.calls, window.failures)

    def caller_state(self, caller: bytes) -> str:
        """``caller``'s own circuit's state (closed for a caller it does not remember)."""
        circuit = self._callers.get(caller)
        return CLOSED if circuit is None else circuit.state

    def is_open(self, caller: bytes) -> bool:
        """Whether a call by ``caller`` would be refused or have to probe now."""
        circuit = self._callers.get(caller)
        return self._upstream.state != CLOSED or (circuit is not None and circuit.state != CLOSED)

    def admit(self, caller: bytes) -> Permit:
        """Let a call by ``caller`` through, or raise without making it.

        Raises ``CallerCircuitOpenError`` when the caller's own circuit is open,
        ``CircuitOpenError`` when the upstream's is.
        """
        circuit = self._callers.get(caller)
        upstream = self._upstream
        if upstream.state == CLOSED and (circuit is None or circuit.state == CLOSED):
            # The usual case: no clock, no probe, no new object.
            return Permit(caller) if circuit is None else circuit.permit
        now = self._clock()
        probes_caller = False
        if circuit is not None and circuit.state != CLOSED:
            if not circuit.admit(now, self._cooldown):
                raise CallerCircuitOpenError(_CALLER_OPEN_MESSAGE)
            probes_caller = True
        if upstream.state == CLOSED:
            return Permit(caller, probes_caller)
        if not upstream.admit(now, self._cooldown):
            if probes_caller and circuit is not None:
                circuit.probing = False
            raise CircuitOpenError(_OPEN_MESSAGE)
        return Permit(caller, probes_caller, probes_upstream=True)

    def record(self, permit: Permit, outcome: Outcome) -> None:
        """The outcome of the call ``permit`` let through (exactly once per permit)."""
        upstream = self._upstream
        if outcome is _NEUTRAL:
            # Nothing to count: free the probe's place (if its circuit is still remembered).
            circuit = self._callers.get(permit.caller)
            if permit.probes_caller and circuit is not None:
                circuit.probing = False
            if permit.probes_upstream:
                upstream.probing = False
            return
        caller = self._callers.get(permit.caller) or self._remember(permit.caller)
        failed = outcome is _FAILURE
        now = self._clock()
        second = int(now)
        span = self._span
        own, every = caller.window, upstream.window
        if own.second != second:
            # Kept in order of activity to the second: the window's callers are at the end.
            self._callers.move_to_end(permit.caller)
            own.roll(second, span)
        if every.second != second:
            every.roll(second, span)
        own.now_calls += 1
        every.now_calls += 1
        if not failed:
            if permit.probes_caller:
                self._close_caller(caller)
            if permit.probes_upstream:
                self._close_upstream()
            return
        own.now_failures += 1
        every.now_failures += 1
        if permit.probes_caller or (caller.state == CLOSED and self._failing(own)):
            self._open_caller(caller, now)
        if permit.probes_upstream or (upstream.state == CLOSED and self._upstream_failing(second)):
            self._open_upstream(now)

    # judging

    def _failing(self, window: _Window) -> bool:
        return window.calls >= self._min_calls and window.failures >= self._rate * window.calls

    def _upstream_failing(self, second: int) -> bool:
        """The failure rate over every caller's calls but the worst caller's (see the class)."""
        every = self._upstream.window
        if not self._failing(every):  # the cheap test first: usually it ends here
            return False
        worst_calls = worst_failures = 0
        for circuit in reversed(self._callers.values()):
            window = circuit.window
            if window.second <= second - self._span:
                break  # this one and all before it were last active outside the window
            window.roll(second, self._span)
            if window.failures > worst_failures:
                worst_calls, worst_failures = window.calls, window.failures
        calls = every.calls - worst_calls
        failures = every.failures - worst_failures
        return calls >= self._min_calls and failures >= self._rate * calls

    # state changes

    def _remember(self, key: bytes) -> _Circuit:
        circuits = self._callers
        circuit = circuits[key] = _Circuit(key)
        if len(circuits) > self._max_callers:
            _, forgotten = circuits.popitem(last=False)
            if forgotten.state != CLOSED:
                self._callers_not_closed -= 1
        return circuit

    def _open_caller(self, circuit: _Circuit, now: float) -> None:
        if circuit.state == CLOSED:
            self._callers_not_closed += 1
            logger.info(
                "circuit opened for one caller: %d of its %d calls failed in %d s",
                circuit.window.failures,
                circuit.window.calls,
                self._span,
            )
        circuit.state = OPEN
        circuit.opened_at = now
        circuit.probing = False

    def _close_caller(self, circuit: _Circuit) -> None:
        if circuit.state != CLOSED:
            self._callers_not_closed -= 1
        circuit.state = CLOSED
        circuit.probing = False
        circuit.window.clear()

    def _open_upstream(self, now: float) -> None:
        upstream = self._upstream
        if upstream.state == CLOSED:
            logger.warning(
                "circuit opened: %d of %d calls failed in %d s, across callers",
                upstream.window.failures,
                upstream.window.calls,
                self._span,
            )
        self.opened_total += 1
        upstream.state = OPEN
        upstream.opened_at = now
        upstream.probing = False

    def _close_upstream(self) -> None:
        logger.info("circuit closed: DeepCall answered the probe")
        upstream = self._upstream
        upstream.state = CLOSED
        upstream.probing = False
        # A fresh start: the failures that opened it no longer count, for anyone.
        upstream.window.clear()
        for circuit in self._callers.values():
            if circuit.state == CLOSED:
                circuit.window.clear()
