"""The gate in front of the order writer: nothing when embedded, a Redis script with Redis.

With ``ORIGINLIVE_REDIS_URL`` every process shares one view of each flash offer in Redis:
units left, the per-buyer limit and counters, its end, and the Idempotency-Keys already
used on it. A Lua script decides a buyer's press atomically (all lines of the order or none)
and records a *reservation*; only admitted orders reach the database, which stays the last
judge: its conditional updates run as before, so a Redis that says yes too often costs a
refusal at the database, never an oversold unit.

What Redis holds per offer (keys under ``originlive:offer:{id}``):

- the hash itself: ``remaining``, ``limit``, ``ends`` (ms since the epoch, 0 for none),
  ``active`` (1 or 0);
- ``:buyers``: buyer id -> units held (the per-buyer counter);
- ``:pending``: reservation token -> "buyer:units:ms", the reservations not yet settled (the
  time is Redis's own clock, as is the one offers' ends are judged by: one clock for every
  process and machine);
- ``:keys``: "buyer:key" of every Idempotency-Key used on the offer, so that a retry of a
  key is sent to the database (which replays the first answer) even once the offer is sold
  out or over (invariant 2).

A reservation is settled exactly once, by whoever deletes its ``:pending`` entry: the
request (the order committed: keep the units; refused or a replay: give them back) or the
reconciler, which drops entries older than ``STALE_MS`` (a process that died mid-order).
The reconciler also sets ``remaining`` to the database's figure minus the units of pending
reservations, and the counts of buyers whose orders were released lately to the database's
(plus their pending reservations), at start-up and every
``ORIGINLIVE_RECONCILE_INTERVAL_SECONDS``; an offer Redis
does not know (a new offer, or a Redis that restarted empty) is loaded from the database on
its first press. Every race in this errs for a moment one way or the other and is corrected
by the next pass; the database's ``remaining >= q`` keeps it from ever overselling.
"""

import asyncio
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from redis.asyncio import Redis
from redis.commands.core import AsyncScript
from redis.exceptions import NoScriptError, RedisError

from originlive.batching import Gatherer, Runner, answer
from originlive.errors import OriginliveError
from originlive.orders import placing, stock

log = logging.getLogger(__name__)

PREFIX = "originlive:"
STALE_MS = 60_000  # a reservation this old belongs to a process that died mid-order
ENDED_TTL_SECONDS = 24 * 3600  # how long Redis remembers an ended offer's keys
# Buyers whose orders were released this recently have their counts set from the database.
RELEASED_WINDOW = timedelta(minutes=10)


class GateUnavailable(OriginliveError):
    status = 503
    title = "Try again"
    slug = "unavailable"

    def __init__(self) -> None:
        super().__init__(
            "Orders are paused for a moment (the stock service is unreachable); try again.",
            headers={"Retry-After": "1"},
        )


@dataclass(frozen=True)
class Reservation:
    """Units held in Redis for one order until the database has answered."""

    token: str
    buyer_id: int
    lines: tuple[tuple[int, int], ...]  # (offer id, units), by offer id


class Gate(Protocol):
    """Decides a press before the database does; settles what it reserved afterwards."""

    async def reserve(self, cmd: placing.PlaceOrder) -> Reservation | None:
        """Hold the units or raise ``SoldOut`` and kin; None: let the database decide alone."""
        ...

    async def settle(self, reservation: Reservation, *, kept: bool) -> None:
        """The database committed the order (kept) or did not (the units come back)."""
        ...

    async def returned(self, units: Sequence[stock.Returned]) -> None:
        """Units of cancelled or expired orders went back to their offers in the database."""
        ...

    async def ended(self, offer_id: int) -> None:
        """The offer has ended in the database."""
        ...


class NoGate:
    """Embedded: the database decides alone (one writer, many orders per commit)."""

    async def reserve(self, cmd: placing.PlaceOrder) -> Reservation | None:
        return None

    async def settle(self, reservation: Reservation, *, kept: bool) -> None:
        return None

    async def returned(self, units: Sequence[stock.Returned]) -> None:
        return None

    async def ended(self, offer_id: int) -> None:
        return None


# Redis's own clock (ms), the same for every process and machine: offers' ends and the age of
# reservations are judged by it.
_NOW = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
"""

# KEYS: four per line (offer, buyers, pending, keys). ARGV: buyer, "buyer:key", token, then each
# line's units. Checks every line before taking anything: all lines or none.
_RESERVE = (
    _NOW
    + """
local n = #KEYS / 4
local buyer, mark, token, now = ARGV[1], ARGV[2], ARGV[3], now_ms()
-- A client's retry of a script that ran but whose answer was lost: the same reservation.
if redis.call('HEXISTS', KEYS[3], token) == 1 then return {'ok'} end
for i = 1, n do
  if redis.call('EXISTS', KEYS[4*i-3]) == 0 then return {'unknown', i} end
end
for i = 1, n do
  if redis.call('SISMEMBER', KEYS[4*i], mark) == 1 then return {'replay', i} end
end
for i = 1, n do
  local f = redis.call('HMGET', KEYS[4*i-3], 'remaining', 'limit', 'ends', 'active')
  local q = tonumber(ARGV[3+i])
  local ends = tonumber(f[3])
  if f[4] ~= '1' or (ends > 0 and now >= ends) then return {'ended', i} end
  local held = tonumber(redis.call('HGET', KEYS[4*i-2], buyer) or '0')
  if held + q > tonumber(f[2]) then return {'limit', i, f[2]} end
  if tonumber(f[1]) < q then return {'soldout', i} end
end
for i = 1, n do
  local q = tonumber(ARGV[3+i])
  redis.call('HINCRBY', KEYS[4*i-3], 'remaining', -q)
  redis.call('HINCRBY', KEYS[4*i-2], buyer, q)
  redis.call('HSET', KEYS[4*i-1], token, buyer .. ':' .. q .. ':' .. now)
  redis.call('SADD', KEYS[4*i], mark)
end
return {'ok'}
"""
)

# KEYS: three per line (offer, buyers, pending). ARGV: token, keep (1/0), buyer, units per line.
# Only the caller that deletes the pending entry moves units: exactly once.
_SETTLE = """
local token, keep, buyer = ARGV[1], ARGV[2], ARGV[3]
for i = 1, #KEYS / 3 do
  if redis.call('HDEL', KEYS[3*i], token) == 1 and keep == '0'
      and redis.call('EXISTS', KEYS[3*i-2]) == 1 then
    local q = tonumber(ARGV[3+i])
    redis.call('HINCRBY', KEYS[3*i-2], 'remaining', q)
    redis.call('HINCRBY', KEYS[3*i-1], buyer, -q)
  end
end
return 1
"""

# KEYS: offer, buyers. ARGV: buyer, units. A released order's units, back on an offer Redis knows.
_RETURN = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HINCRBY', KEYS[1], 'remaining', tonumber(ARGV[2]))
  if tonumber(redis.call('HINCRBY', KEYS[2], ARGV[1], -tonumber(ARGV[2]))) < 0 then
    redis.call('HSET', KEYS[2], ARGV[1], 0)
  end
end
return 1
"""

# KEYS: offer, buyers, pending, keys, staged buyers, staged keys, the set of known offers.
# ARGV: offer id, remaining, limit, ends, active, ttl for an ended offer.
# Loads the offer unless another process did first.
_LOAD = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[5], KEYS[6])
  return 0
end
redis.call('DEL', KEYS[2], KEYS[3], KEYS[4])
if redis.call('EXISTS', KEYS[5]) == 1 then redis.call('RENAME', KEYS[5], KEYS[2]) end
if redis.call('EXISTS', KEYS[6]) == 1 then redis.call('RENAME', KEYS[6], KEYS[4]) end
redis.call('HSET', KEYS[1], 'remaining', ARGV[2], 'limit', ARGV[3], 'ends', ARGV[4],
  'active', ARGV[5])
if ARGV[5] == '1' then
  redis.call('SADD', KEYS[7], ARGV[1])
else
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[6])) end
end
return 1
"""

# KEYS: offer, buyers, pending, keys, the set of known offers. ARGV: offer id, the database's
# remaining, limit, ends, active, stale age (ms), ttl for an ended offer, then pairs
# of (buyer, the database's count) for buyers whose orders were released lately.
# Returns {remaining before, remaining after, reservations dropped, counts corrected}.
_RECONCILE = (
    _NOW
    + """
if redis.call('EXISTS', KEYS[1]) == 0 then
  redis.call('SREM', KEYS[5], ARGV[1])
  return {-1, -1, 0, 0}
end
local now, stale = now_ms(), tonumber(ARGV[6])
local pending = redis.call('HGETALL', KEYS[3])
local held, dropped, by_buyer = 0, 0, {}
for i = 1, #pending, 2 do
  local buyer, q, at = string.match(pending[i+1], '^(%d+):(%d+):(%d+)$')
  if now - tonumber(at) > stale then
    redis.call('HDEL', KEYS[3], pending[i])
    redis.call('HINCRBY', KEYS[2], buyer, -tonumber(q))
    dropped = dropped + 1
  else
    held = held + tonumber(q)
    by_buyer[buyer] = (by_buyer[buyer] or 0) + tonumber(q)
  end
end
-- A released order whose units never reached Redis (its process died after the commit)
-- would hold its buyer's count up for ever: set those buyers' counts from the database.
local corrected = 0
for i = 8, #ARGV, 2 do
  local count = tonumber(ARGV[i+1]) + (by_buyer[ARGV[i]] or 0)
  if tonumber(redis.call('HGET', KEYS[2], ARGV[i]) or '0') ~= count then
    redis.call('HSET', KEYS[2], ARGV[i], count)
    corrected = corrected + 1
  end
end
local before = tonumber(redis.call('HGET', KEYS[1], 'remaining'))
local after = math.max(tonumber(ARGV[2]) - held, 0)
redis.call('HSET', KEYS[1], 'remaining', after, 'limit', ARGV[3], 'ends', ARGV[4],
  'active', ARGV[5])
if ARGV[5] ~= '1' then
  redis.call('SREM', KEYS[5], ARGV[1])
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[7])) end
end
return {before, after, dropped, corrected}
"""
)

# KEYS: offer, buyers, pending, keys. ARGV: ttl. The offer ended: refuse presses from now on.
_END = """
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'active', 0)
  for i = 1, 4 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[1])) end
end
return 1
"""


class _Pipeline(Gatherer[tuple[AsyncScript, list[Any], list[Any]]]):
    """Script calls of one moment go to Redis together: one pipeline, one round trip.

    At thousands of presses a second each call alone cost a connection checkout, a retry
    wrapper and a round trip of its own: a third of a server's CPU (py-spy, flash-sale bench).
    """

    def __init__(self, redis: Redis) -> None:
        super().__init__()
        self._redis = redis

    async def call(self, script: AsyncScript, keys: list[Any], args: list[Any]) -> Any:
        return await self._submit((script, keys, args))

    async def _handle(self, calls: list[tuple[Any, asyncio.Future[Any]]]) -> None:
        try:
            async with self._redis.pipeline(transaction=False) as pipe:
                for (script, keys, args), _future in calls:
                    pipe.evalsha(script.sha, len(keys), *keys, *args)
                results = await pipe.execute(raise_on_error=False)
        except RedisError as exc:
            results = [exc] * len(calls)
        again = [c for c, r in zip(calls, results, strict=True) if _noscript(r)]
        if again:  # Redis restarted and forgot the scripts: load them, call again
            try:
                for script in {job[0] for job, _future in again}:
                    await self._redis.script_load(script.script)
            except RedisError as exc:
                results = [exc if _noscript(r) else r for r in results]
                again = []
            self._waiting[:0] = again
        retried = {id(c) for c in again}
        for call, result in zip(calls, results, strict=True):
            if id(call) not in retried:
                answer(call[1], not isinstance(result, Exception), result)


def _noscript(result: Any) -> bool:
    return isinstance(result, NoScriptError)


def _ms(moment: datetime | None) -> int:
    return 0 if moment is None else int(moment.timestamp() * 1000)


class RedisGate:
    """The gate on Redis, shared by every process; loads offers from the database on demand."""

    def __init__(self, redis: Redis, reader: Runner, *, prefix: str = PREFIX) -> None:
        self._redis = redis
        self._reader = reader
        self._prefix = prefix
        self._reserve = redis.register_script(_RESERVE)
        self._settle = redis.register_script(_SETTLE)
        self._return = redis.register_script(_RETURN)
        self._load = redis.register_script(_LOAD)
        self._reconcile = redis.register_script(_RECONCILE)
        self._end = redis.register_script(_END)
        self._calls = _Pipeline(redis)
        self._loading: dict[int, asyncio.Task[None]] = {}

    def _keys(self, offer_id: int) -> list[str]:
        base = f"{self._prefix}offer:{offer_id}"
        return [base, base + ":buyers", base + ":pending", base + ":keys"]

    @property
    def _offers(self) -> str:
        return self._prefix + "offers"

    async def reserve(self, cmd: placing.PlaceOrder) -> Reservation | None:
        units: dict[int, int] = {}
        for line in cmd.lines:
            if line.offer_id is not None:
                units[line.offer_id] = units.get(line.offer_id, 0) + line.quantity
        if not units:
            return None  # plain SKUs: the database decides alone
        lines = tuple(sorted(units.items()))
        token = secrets.token_hex(8)
        keys = [k for offer_id, _ in lines for k in self._keys(offer_id)]
        args: list[Any] = [
            cmd.buyer_id,
            f"{cmd.buyer_id}:{cmd.idempotency_key}",
            token,
            *(q for _, q in lines),
        ]
        for _attempt in range(3):
            try:
                answer = await self._calls.call(self._reserve, keys, args)
            except RedisError as exc:
                log.warning("stock gate unreachable: %s", exc)
                raise GateUnavailable() from None
            verdict = answer[0].decode()
            if verdict == "ok":
                return Reservation(token, cmd.buyer_id, lines)
            if verdict == "replay":
                return None  # the database replays the first answer (or decides afresh)
            offer_id = lines[int(answer[1]) - 1][0]
            if verdict == "unknown":
                if not await self._ensure_loaded(offer_id):
                    return None  # no such offer: the database words the refusal
                continue
            if verdict == "ended":
                raise placing.OfferEnded(f"Offer {offer_id} has ended.")
            if verdict == "limit":
                raise placing.OverLimit(f"At most {int(answer[2])} of this offer per buyer.")
            raise placing.SoldOut(f"Offer {offer_id} is sold out.")
        return None  # loaded and lost again meanwhile (Redis flushed twice): database alone

    async def settle(self, reservation: Reservation, *, kept: bool) -> None:
        keys = [k for offer_id, _ in reservation.lines for k in self._keys(offer_id)[:3]]
        args: list[str | int] = [reservation.token, int(kept), reservation.buyer_id]
        args += [q for _, q in reservation.lines]
        try:
            await self._calls.call(self._settle, keys, args)
        except RedisError as exc:  # the reconciler drops the reservation in STALE_MS
            log.warning("could not settle reservation %s: %s", reservation.token, exc)

    async def returned(self, units: Sequence[stock.Returned]) -> None:
        for unit in units:
            try:
                await self._return(
                    keys=self._keys(unit.offer_id)[:2], args=[unit.buyer_id, unit.quantity]
                )
            except RedisError as exc:  # the reconciler corrects remaining from the database
                log.warning("could not return units to offer %d: %s", unit.offer_id, exc)

    async def ended(self, offer_id: int) -> None:
        try:
            await self._end(keys=self._keys(offer_id), args=[ENDED_TTL_SECONDS])
        except RedisError as exc:  # the reconciler sees the offer ended
            log.warning("could not end offer %d in the gate: %s", offer_id, exc)

    # Loading and reconciling

    async def _ensure_loaded(self, offer_id: int) -> bool:
        """Load the offer from the database (once per process at a time); False if none."""
        task = self._loading.get(offer_id)
        if task is None:
            task = asyncio.create_task(self._load_offer(offer_id))
            self._loading[offer_id] = task
            task.add_done_callback(lambda _t: self._loading.pop(offer_id, None))
        try:
            await asyncio.shield(task)
        except LookupError:
            return False
        except RedisError as exc:
            log.warning("stock gate unreachable: %s", exc)
            raise GateUnavailable() from None
        return True

    async def _load_offer(self, offer_id: int) -> None:
        state = await self._reader.run(stock.gate_state, offer_id=offer_id)
        if state is None:
            raise LookupError(offer_id)
        staged = f"{self._prefix}load:{secrets.token_hex(8)}"
        staged_buyers, staged_keys = staged + ":buyers", staged + ":keys"
        held = [x for buyer, q in state.held.items() for x in (buyer, q)]
        marks = [f"{buyer}:{key}" for buyer, key in state.keys]
        async with self._redis.pipeline(transaction=False) as pipe:
            for i in range(0, len(held), 2000):
                pipe.hset(staged_buyers, items=held[i : i + 2000])
            for i in range(0, len(marks), 1000):
                pipe.sadd(staged_keys, *marks[i : i + 1000])
            pipe.expire(staged_buyers, 300)
            pipe.expire(staged_keys, 300)
            await pipe.execute()
        loaded = await self._load(
            keys=[*self._keys(offer_id), staged_buyers, staged_keys, self._offers],
            args=[
                offer_id,
                state.remaining,
                state.per_buyer_limit,
                _ms(state.ends_at),
                int(state.active),
                ENDED_TTL_SECONDS,
            ],
        )
        if loaded:
            log.info("stock gate loaded offer %d: %d units left", offer_id, state.remaining)

    async def reconcile(
        self, *, released_since: datetime | None = None
    ) -> dict[int, tuple[int, int, int, int]]:
        """Set every known offer's units from the database, and the counts of buyers whose
        orders were released since ``released_since`` (default: the last ten minutes).

        Returns {offer: (remaining before, after, reservations dropped, counts corrected)}
        for the offers where anything changed.
        """
        offer_ids = sorted(int(x) for x in await self._redis.smembers(self._offers))
        if not offer_ids:
            return {}
        since = released_since or datetime.now(UTC) - RELEASED_WINDOW
        states = await self._reader.run(stock.gate_states, offer_ids=offer_ids, since=since)
        changed = {}
        for state in states:
            counts = [x for buyer, q in state.held.items() for x in (buyer, q)]
            before, after, dropped, corrected = await self._reconcile(
                keys=[*self._keys(state.offer_id), self._offers],
                args=[
                    state.offer_id,
                    state.remaining,
                    state.per_buyer_limit,
                    _ms(state.ends_at),
                    int(state.active),
                    STALE_MS,
                    ENDED_TTL_SECONDS,
                    *counts,
                ],
            )
            if before != after or dropped or corrected:
                changed[state.offer_id] = (int(before), int(after), int(dropped), int(corrected))
        missing = set(offer_ids) - {s.offer_id for s in states}
        if missing:  # deleted from the database (tests empty it): forget them
            await self._redis.srem(self._offers, *missing)
        return changed

    async def run_reconciler(self, *, interval_seconds: float) -> None:
        """Reconcile now and every ``interval_seconds``, one process at a time; never fatal."""
        lock = self._prefix + "reconciling"
        while True:
            try:
                # One process per interval does it; a crashed holder's lock times out.
                if await self._redis.set(lock, 1, nx=True, px=int(interval_seconds * 900)):
                    changed = await self.reconcile()
                    if changed:
                        log.info("stock gate reconciled: %s", changed)
            except Exception:
                log.exception("stock gate reconcile failed")
            await asyncio.sleep(interval_seconds)
