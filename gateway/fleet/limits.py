"""The limits that protect DeepCall, held in Redis so that they hold for the whole fleet.

A fleet of N replicas (or workers) with limits of their own lets a credential
make N times its rate and an address try N times its new credentials. Here
each limit is one atomic Lua script over Redis' own clock: a credential's
token bucket, an address's budget of rejected credentials (with the trials
holding a token until their verdict), and the 1014 verdicts. An upstream call
costs one round trip (``admit``); a new credential's verdict one more
(``settle``); a cache hit none. When Redis fails, ``admit`` answers None and
the caller decides with its own process's limits.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from typing import Any, Final, NamedTuple

from gateway.fleet.link import PREFIX, RedisLink

OK, INVALID, RATE_LIMITED, NEW_LIMITED, HELD = range(5)

# Redis' clock in ms, then: the verdict (trials), the credential's bucket, the address's budget.
_ADMIT: Final = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
local trial = ARGV[3] == '1'
if trial and redis.call('EXISTS', KEYS[2]) == 1 then
  return {1, redis.call('PTTL', KEYS[2])}
end
local rate, burst = tonumber(ARGV[1]), tonumber(ARGV[2])
local tokens = 0
if rate > 0 then
  local b = redis.call('HMGET', KEYS[1], 't', 'at')
  tokens = tonumber(b[1]) or burst
  local at = tonumber(b[2]) or now
  tokens = math.min(burst, tokens + math.max(0, now - at) * rate / 1000)
  if tokens < 1 - 1e-9 then
    redis.call('HSET', KEYS[1], 't', tostring(tokens), 'at', now)
    redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
    return {2, math.ceil((1 - tokens) / rate * 1000)}
  end
end
local per_minute = tonumber(ARGV[4])
if trial and per_minute > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[4], '-inf', now)
  local held = redis.call('ZCARD', KEYS[4])
  local a = redis.call('HMGET', KEYS[3], 't', 'at')
  local have = tonumber(a[1]) or per_minute
  local at = tonumber(a[2]) or now
  have = math.min(per_minute, have + math.max(0, now - at) * per_minute / 60000)
  if have - held < 1 - 1e-9 then
    if held > 0 then
      return {4, 0}
    end
    return {3, math.ceil((1 - have) / per_minute * 60000)}
  end
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[6]), ARGV[5])
  redis.call('PEXPIRE', KEYS[4], tonumber(ARGV[6]) + 1000)
end
if rate > 0 then
  redis.call('HSET', KEYS[1], 't', tostring(tokens - 1), 'at', now)
  redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
end
return {0, 0}
"""

# A trial's verdict: its held token back, or spent; a 1014 remembered.
_SETTLE: Final = """
local t = redis.call('TIME')
local now = t[1] * 1000 + math.floor(t[2] / 1000)
if ARGV[1] ~= '' then
  redis.call('ZREM', KEYS[3], ARGV[1])
end
if ARGV[2] == '1' then
  local per_minute = tonumber(ARGV[4])
  local a = redis.call('HMGET', KEYS[2], 't', 'at')
  local have = tonumber(a[1]) or per_minute
  local at = tonumber(a[2]) or now
  have = math.min(per_minute, have + math.max(0, now - at) * per_minute / 60000)
  redis.call('HSET', KEYS[2], 't', tostring(math.max(0, have - 1)), 'at', now)
  redis.call('PEXPIRE', KEYS[2], 61000)
end
if tonumber(ARGV[3]) > 0 then
  redis.call('SET', KEYS[1], '1', 'PX', ARGV[3])
end
return 0
"""


class Grant(NamedTuple):
    """The fleet's answer: ``OK``, or which limit refused, and the seconds it asks to wait."""

    status: int
    wait: float = 0.0


class FleetLimits:
    """A credential's rate, an address's new credentials and the 1014 verdicts, fleet-wide.

    How it is divided between callers: as the process's own limits are (a
    bucket per credential's HMAC, a budget per client address), but one of
    each for every replica together. Addresses are stored as a digest, never
    in clear; credentials as their HMAC.
    """

    def __init__(
        self,
        link: RedisLink,
        *,
        rate: float,
        burst: float,
        new_per_minute: float,
        invalid_ttl: float,
        hold_seconds: float,
        on_local: Callable[[], None] = lambda: None,
    ) -> None:
        self._link = link
        self._rate = rate
        self._burst = burst
        self._new_per_minute = new_per_minute
        self._invalid_ms = max(0, int(invalid_ttl * 1000))
        self._hold_ms = max(1, int(hold_seconds * 1000))
        self._on_local = on_local
        self._admit = link.client.register_script(_ADMIT)
        self._settle = link.client.register_script(_SETTLE)

    @property
    def up(self) -> bool:
        """Whether Redis answered lately (else the process's own limits decide)."""
        return self._link.up

    async def admit(
        self, principal: bytes, address: str, *, trial: bool, reservation: str = ""
    ) -> Grant | None:
        """Take a token of ``principal``'s rate; for a trial, check its verdict and hold one
        of ``address``'s tokens under ``reservation``. None: Redis failed, decide locally."""
        keys = _keys(principal, address)
        args: list[Any] = [
            self._rate,
            self._burst,
            1 if trial else 0,
            self._new_per_minute,
            reservation,
            self._hold_ms,
        ]
        answer = await self._link.call(self._admit(keys=keys, args=args))
        if not isinstance(answer, list) or len(answer) != 2:
            self._on_local()
            return None
        status, wait_ms = int(answer[0]), int(answer[1])
        return Grant(status, max(0, wait_ms) / 1000)

    async def settle(
        self, principal: bytes, address: str, reservation: str, *, spend: bool, invalid: bool
    ) -> None:
        """Record a verdict: the trial's held token back (or ``spend`` it), and a 1014."""
        keys = _keys(principal, address)
        _rate, verdict, budget, holds = keys
        args = [
            reservation,
            1 if spend else 0,
            self._invalid_ms if invalid else 0,
            self._new_per_minute,
        ]
        await self._link.call(self._settle(keys=[verdict, budget, holds], args=args))


def new_reservation() -> str:
    """A name for one trial's held token, unique across the fleet."""
    return os.urandom(12).hex()


def _keys(principal: bytes, address: str) -> list[str]:
    credential = principal.hex()
    place = hashlib.blake2b(address.encode(), digest_size=16).hexdigest()
    return [
        f"{PREFIX}:rate:{credential}",
        f"{PREFIX}:invalid:{credential}",
        f"{PREFIX}:new:{place}",
        f"{PREFIX}:held:{place}",
    ]
