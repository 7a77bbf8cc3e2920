"""Rate budgets: each platform's documented rate limits as token buckets in Redis, so
a burst of deliveries never trips a platform's limit, whichever worker host sends them.

An adapter declares its limits (``Limits.buckets``: capacity, refill period, cost per
part and per image, and the scope the limit is shared at). A bucket lives in the
broker's Redis under ``herald:budget:<platform>:<bucket>:<holder>``, where the holder
is the channel, or a hash of what the adapter says identifies the shared holder (an
account, a token, a chat): two channels on one Mastodon token share one budget.

- :func:`take` runs once per delivery, after the claim committed and before the
  platform is called: one Lua script refills every bucket of the delivery by the time
  elapsed and takes the cost from all of them. If one had not enough, the tokens are
  taken all the same (the bucket goes into debt) as a reservation: the answer is when
  the delivery's turn comes, and the caller puts it back to wait in ``due_at`` until
  then (no worker slot, no broker ETA). When it comes back it goes without paying
  again. So a backlog of N deliveries is told N successive turns, once each, instead
  of all waking at the same instant to fight for one token. A second count per bucket
  ("sent") is charged only when a request actually goes, and every request needs room
  in it: a turn that comes due after a stall (a busy worker, a late scheduler), or
  with others the scheduler handed over in the same pass, is given the next free send
  slot instead (one per refill of the short bucket) and is checked again there. So the
  turns missed during a stall never go out in one burst, and the platform never sees
  two requests closer than its refill where Herald could space them.
- :func:`watch` corrects the buckets from what the platform says: an answer's
  ``X-RateLimit-Remaining`` / ``ratelimit-remaining`` lowers the tokens (never raises
  them: we may be mid-burst), a remaining of 0 with a reset, or a 429's Retry-After,
  blocks the bucket until then.
- A bucket the platform names per route (Discord's ``X-RateLimit-Bucket``,
  ``Bucket.named_by_platform``) is learned from the answers: each answer files its route
  under the bucket name it gives (a hash per holder, kept a week), and the name's budget,
  sized by the answer's ``X-RateLimit-Limit``, is what a delivery on that route takes
  from: routes named alike share one. Until a route is named, the declared bucket; a
  name heard of for the first time starts from what the route spent there (a first
  burst is at the platform already: a full new budget would let a second one follow).
- :func:`read` shows a channel's buckets (``GET /api/v1/channels/{id}``).

The time is Herald's clock (:func:`herald.core.clock.utcnow`, so tests drive it), not
Redis's. A bucket fills up to a tenth below the platform's capacity (``Bucket.usable``)
and refills at the documented rate: a request paid for now may reach the platform a
little later, and the headroom keeps the two counts apart. A bucket of one (Telegram's
message a second per chat) has no tenth to spare: it keeps its headroom in time
instead, refilling a tenth slower (``Bucket.usable_period``). A cost larger than the
bucket (a long thread) goes when the bucket is full and leaves it in debt.
``HERALD_RATE_LIMIT_SCALE`` divides every period (benchmarks and tests against the
fakes; 1 in production).

Pacing is an extra, never a reason not to publish: when Redis is unreachable (or the
broker is not Redis), :func:`take` lets the delivery go (fail open) and logs a warning;
the platform's own 429 is then handled as before (a retry after Retry-After).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import redis

from herald.adapters.base import Adapter, Bucket, Rendition, Scope, usable_shape
from herald.adapters.http import HttpAdapter, RateObservation
from herald.core.clock import utcnow
from herald.core.settings import get_settings
from herald.events.service import redis_url

log = logging.getLogger(__name__)

PREFIX = "herald:budget"

# KEYS: one bucket each, then the delivery's reservation. ARGV: now, then capacity,
# period, cost per bucket. Returns {seconds to wait as a string, the 1-based index of
# the bucket that waits (0: a reservation's own time, or none)}.
#
# Per bucket: tokens/at (turns: charged when a turn is given), sent/sat (sends: charged
# only when a request goes, so it is what the platform has seen), blocked (a 429 or a
# remaining of 0), next (the first send slot not yet given to a delivery that found the
# sends bucket short).
_TAKE = """
local now = tonumber(ARGV[1])
local n = #KEYS - 1
local tokens, at, blocked, cap, rate, cost, sent, sat, nxt = {}, {}, {}, {}, {}, {}, {}, {}, {}
local wait, which, hold, late = 0, 0, 0, 0
for i = 1, n do
  local c = tonumber(ARGV[3 * i - 1])
  local r = c / tonumber(ARGV[3 * i])
  local k = tonumber(ARGV[3 * i + 1])
  local s = redis.call('HMGET', KEYS[i], 'tokens', 'at', 'blocked', 'sent', 'sat', 'next')
  local t = tonumber(s[1]) or c
  local a = tonumber(s[2]) or now
  local b = tonumber(s[3]) or 0
  local m = tonumber(s[4]) or c
  local ma = tonumber(s[5]) or now
  if now > a then t = math.min(c, t + (now - a) * r); a = now end
  if now > ma then m = math.min(c, m + (now - ma) * r); ma = now end
  local w = 0
  local need = math.min(k, c)
  -- A bucket this delivery does not pay for (Bluesky's logins: a delivery logs in only
  -- when its session is gone) never holds it, blocked or not.
  if k > 0 then
    if b > now then w = b - now end
    if b - now > hold then hold = b - now end
    if t < need then w = math.max(w, (need - t) / r) end
    if m < need then late = math.max(late, (need - m) / r) end
  end
  if w > wait then wait = w; which = i end
  tokens[i], at[i], blocked[i], cap[i], rate[i], cost[i], sent[i], sat[i] = t, a, b, c, r, k, m, ma
  nxt[i] = tonumber(s[6]) or 0
end
local function save(i)
  redis.call('HSET', KEYS[i], 'tokens', tostring(tokens[i]), 'at', tostring(at[i]),
             'blocked', tostring(blocked[i]), 'sent', tostring(sent[i]), 'sat', tostring(sat[i]),
             'next', tostring(nxt[i]))
  local empty = (cap[i] - math.min(tokens[i], sent[i])) / rate[i]
  local ahead = math.max(0, blocked[i] - now, nxt[i] - now)
  redis.call('EXPIRE', KEYS[i], math.ceil(empty + ahead) + 60)
end
-- A request goes: the sends bucket pays.
local function go()
  for i = 1, n do sent[i] = sent[i] - cost[i]; save(i) end
  return {'0', 0}
end
local reserved = redis.call('GET', KEYS[n + 1])
if reserved then
  -- Paid for when it was told to wait: it goes at its time (unless a 429 blocks), and
  -- only if the sends bucket has room. After a stall, or when the scheduler hands over
  -- several due turns at once, the turns due meanwhile must not go out together: each
  -- that finds no room gets the next free send slot, one slot per refill of the short
  -- bucket, and is checked again when it comes back at it.
  local w = math.max(tonumber(string.match(reserved, '[^|]+')) - now, hold)
  if w > 0 then return {tostring(w), 0} end
  -- Within a millisecond of room is room (the times are floats of epoch seconds).
  if late > 0.001 then
    local slot = now + late
    for i = 1, n do
      if cost[i] > 0 and sent[i] < math.min(cost[i], cap[i]) then slot = math.max(slot, nxt[i]) end
    end
    for i = 1, n do
      if cost[i] > 0 and sent[i] < math.min(cost[i], cap[i]) then
        nxt[i] = slot + cost[i] / rate[i]
        save(i)
      end
    end
    redis.call('SET', KEYS[n + 1], tostring(slot) .. '|s', 'EX', math.ceil(slot - now) + 3600)
    return {tostring(slot - now), 0}
  end
  redis.call('DEL', KEYS[n + 1])
  return go()
end
for i = 1, n do
  -- Taken now, or reserved for later: each waiting delivery holds its own turn, so
  -- a backlog drains at the limit instead of all waking at the same instant.
  tokens[i] = tokens[i] - cost[i]
end
if wait == 0 and late <= 0.001 then return go() end
if wait == 0 then wait = late end
for i = 1, n do save(i) end
redis.call('SET', KEYS[n + 1], tostring(now + wait), 'EX', math.ceil(wait) + 3600)
return {tostring(wait), which}
"""

# KEYS: the named bucket, the declared one, the routes hash. ARGV: the route, the name,
# the named bucket's capacity. Files the route under the name and, the first time the
# name is heard of, starts its budget from the declared bucket's (what the route spent
# before it had a name): in one step, so no take finds the route named and its budget
# full meanwhile.
_NAME = """
if redis.call('HEXISTS', KEYS[1], 'tokens') == 0 then
  local s = redis.call('HMGET', KEYS[2], 'tokens', 'at', 'blocked', 'sent', 'sat', 'next')
  if s[1] then
    local c = tonumber(ARGV[3])
    redis.call('HSET', KEYS[1], 'tokens', tostring(math.min(c, tonumber(s[1]))), 'at', s[2],
               'blocked', s[3] or '0', 'sent', tostring(math.min(c, tonumber(s[4] or s[1]))),
               'sat', s[5] or s[2], 'next', s[6] or '0')
    redis.call('EXPIRE', KEYS[1], math.max(60, redis.call('TTL', KEYS[2])))
  end
end
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 1
"""

# KEYS: the bucket. ARGV: now, capacity, period, remaining, reset_in, retry_after,
# bucket id (each but now may be '' for "not said").
_OBSERVE = """
local now = tonumber(ARGV[1])
local c = tonumber(ARGV[2])
local r = c / tonumber(ARGV[3])
local s = redis.call('HMGET', KEYS[1], 'tokens', 'at', 'blocked')
local t = tonumber(s[1]) or c
local a = tonumber(s[2]) or now
local b = tonumber(s[3]) or 0
if now > a then t = math.min(c, t + (now - a) * r); a = now end
local remaining = tonumber(ARGV[4])
local reset_in = tonumber(ARGV[5])
local retry = tonumber(ARGV[6])
if remaining ~= nil and remaining < t then t = remaining end
if remaining ~= nil and remaining <= 0 and reset_in ~= nil then b = math.max(b, now + reset_in) end
if retry ~= nil then t = math.min(t, 0); b = math.max(b, now + retry) end
-- The sends bucket (see _TAKE) is told the same.
local ss = redis.call('HMGET', KEYS[1], 'sent', 'sat')
local m = tonumber(ss[1]) or c
local ma = tonumber(ss[2]) or now
if now > ma then m = math.min(c, m + (now - ma) * r); ma = now end
if remaining ~= nil and remaining < m then m = remaining end
if retry ~= nil then m = math.min(m, 0) end
redis.call('HSET', KEYS[1], 'tokens', tostring(t), 'at', tostring(a), 'blocked', tostring(b),
           'sent', tostring(m), 'sat', tostring(ma))
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'route', ARGV[7]) end
redis.call('EXPIRE', KEYS[1], math.ceil(c / r + math.max(0, b - now)) + 60)
return 1
"""


@dataclass(frozen=True)
class Wait:
    """A delivery the budget does not allow yet: when it may go, and why."""

    until: datetime
    bucket: Bucket

    @property
    def reason(self) -> str:
        at = self.until.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
        return (
            f"waiting: rate limit, next at {at} ({self.bucket.name}: "
            f"{self.bucket.capacity} per {_period(self.bucket.period_seconds)}"
            f" per {self.bucket.scope.value})"
        )


@dataclass(frozen=True)
class BucketState:
    """One bucket as ``GET /api/v1/channels/{id}`` shows it."""

    name: str
    scope: str
    capacity: int
    period_seconds: float
    remaining: float
    resets_at: datetime  # when it is full again (or unblocked, if later)
    blocked_until: datetime | None
    source: str


def _period(seconds: float) -> str:
    for unit, size in (("h", 3600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)} {unit}"
    return f"{seconds:g} s"


# --- where budgets live ----------------------------------------------------------------

_clients: dict[str, redis.Redis] = {}
_lock = threading.Lock()


def _client() -> redis.Redis | None:
    """The broker's Redis (one client per URL and process), or None if it is not Redis."""
    url = redis_url(get_settings().effective_broker_url)
    if url is None:
        return None
    with _lock:
        client = _clients.get(url)
        if client is None:
            timeout = get_settings().redis_timeout_seconds
            client = redis.Redis.from_url(
                url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            _clients[url] = client
        return client


def _scale() -> float:
    return get_settings().rate_limit_scale


def _shape(bucket: Bucket, scale: float) -> tuple[int, float]:
    """The bucket as Redis keeps it: its usable capacity and the period that refills it
    (``Bucket.usable``, ``Bucket.usable_period``), scaled."""
    return bucket.usable, bucket.usable_period / scale


def _key(adapter: Adapter[Any, Any], bucket: Bucket, channel_id: uuid.UUID) -> str:
    who = adapter.budget_scope(bucket.scope) if bucket.scope != Scope.CHANNEL else None
    if who is None:
        holder = f"channel:{channel_id}"
    else:
        # A hash: the identity may hold a token, and keys are visible to anyone on Redis.
        digest = hashlib.sha256(f"{adapter.platform}|{bucket.scope}|{who}".encode()).hexdigest()
        holder = f"{bucket.scope.value}:{digest[:32]}"
    return f"{PREFIX}:{adapter.platform}:{bucket.name}:{holder}"


def _buckets(adapter: Adapter[Any, Any]) -> Sequence[Bucket]:
    return adapter.limits.buckets


# --- buckets the platform names per route (Discord's X-RateLimit-Bucket) ---------------

ROUTES_TTL = 7 * 24 * 3600  # a route's bucket name is forgotten a week after last seen


def _routes_key(adapter: Adapter[Any, Any], bucket: Bucket, channel_id: uuid.UUID) -> str:
    """The hash of route → the bucket name the platform answered it with."""
    return f"{_key(adapter, bucket, channel_id)}:routes"


def _named_key(adapter: Adapter[Any, Any], bucket: Bucket, channel_id: uuid.UUID, name: str) -> str:
    """The budget of the platform's bucket ``name`` (shared by every route it names)."""
    digest = hashlib.sha256(name.encode()).hexdigest()[:24]
    return f"{_key(adapter, bucket, channel_id)}:named:{digest}"


def _named_shape(bucket: Bucket, limit: float | None, scale: float) -> tuple[int, float]:
    """A named bucket as Redis keeps it: the platform's limit if it said one, over the
    declared period (Discord gives no window; its resets correct the rest)."""
    if limit is None or limit < 1:
        return _shape(bucket, scale)
    capacity, period = usable_shape(int(limit), bucket.period_seconds)
    return capacity, period / scale


def _resolve(
    client: redis.Redis, adapter: Adapter[Any, Any], channel_id: uuid.UUID, scale: float
) -> list[tuple[str, int, float]]:
    """Each bucket's Redis key and shape (capacity, period). A bucket the platform names
    per route is the one its answers named for the delivery's route, with the limit they
    gave; until one did, the declared one."""
    buckets = list(_buckets(adapter))
    resolved = [(_key(adapter, b, channel_id), *_shape(b, scale)) for b in buckets]
    named = [i for i, b in enumerate(buckets) if b.named_by_platform]
    route = adapter.budget_route() if named else ""
    if not route:
        return resolved
    with client.pipeline(transaction=False) as pipe:
        for i in named:
            pipe.hget(_routes_key(adapter, buckets[i], channel_id), route)
        names = pipe.execute()
    for i, name in zip(named, names, strict=True):
        if name is None:
            continue
        key = _named_key(adapter, buckets[i], channel_id, name.decode())
        limit = client.hget(key, "limit")
        shape = _named_shape(buckets[i], float(limit) if limit is not None else None, scale)
        resolved[i] = (key, *shape)
    return resolved


def _unavailable(action: str, exc: Exception) -> None:
    log.warning(
        "rate budget unavailable (%s): Redis does not answer (%r); sending anyway", action, exc
    )


# --- the moves -------------------------------------------------------------------------


def take(
    adapter: Adapter[Any, Any], channel_id: uuid.UUID, rendition: Rendition, idempotency_key: str
) -> Wait | None:
    """Take what sending ``rendition`` costs from every bucket of the channel; None: send
    now. When a bucket has not enough, the cost is reserved all the same and the answer
    is the delivery's turn: it waits until then and goes without paying again. None also
    when there is no budget to keep (no buckets, no Redis: fail open)."""
    buckets = list(_buckets(adapter))
    if not buckets:
        return None
    client = _client()
    if client is None:
        return None
    scale = _scale()
    parts, media = len(rendition.parts), len(rendition.media)
    args: list[Any] = []
    keys: list[str] = []
    try:
        for bucket, (key, capacity, period) in zip(
            buckets, _resolve(client, adapter, channel_id, scale), strict=True
        ):
            keys.append(key)
            args += [capacity, repr(period), bucket.cost_of(parts, media)]
        keys.append(f"{PREFIX}:reserved:{adapter.platform}:{idempotency_key}")
        # The clock is read after the route's look-up, as late as it can be: a time read
        # before a round trip (and a wait for the GIL among a pool's threads) lets takes
        # made within a few ms count as spread over tens of ms.
        now = utcnow()
        wait_text, which = client.eval(_TAKE, len(keys), *keys, repr(now.timestamp()), *args)
    except (redis.RedisError, OSError) as exc:
        _unavailable("take", exc)
        return None
    wait = float(wait_text)
    if wait <= 0:
        return None
    bucket = buckets[int(which) - 1] if int(which) else buckets[0]
    return Wait(until=now + timedelta(seconds=wait), bucket=bucket)


def observe(
    adapter: Adapter[Any, Any], channel_id: uuid.UUID, path: str, seen: RateObservation
) -> None:
    """Correct the buckets that an answer to ``path`` describes; never raises."""
    buckets = [b for b in _buckets(adapter) if any(p in path for p in b.corrected_by)]
    if not buckets:
        return
    client = _client()
    if client is None:
        return
    now = utcnow().timestamp()
    scale = _scale()

    def text(value: float | None) -> str:
        # The platform's own times: a scaled fake already answers in its scaled time.
        return "" if value is None else repr(value)

    try:
        for bucket in buckets:
            key = _key(adapter, bucket, channel_id)
            capacity, period = _shape(bucket, scale)
            if bucket.named_by_platform and seen.bucket:
                # The route belongs to the platform's bucket of that name: remember it, and
                # the limit the answer gives, then correct that bucket. A name first heard
                # of starts from what the route spent under the declared bucket: the
                # requests of a first burst are at the platform already.
                routes = _routes_key(adapter, bucket, channel_id)
                declared = key
                key = _named_key(adapter, bucket, channel_id, seen.bucket)
                with client.pipeline(transaction=False) as pipe:
                    if seen.limit is not None:
                        pipe.hset(key, "limit", repr(seen.limit))
                    pipe.hget(key, "limit")
                    limit = pipe.execute()[-1]
                capacity, period = _named_shape(
                    bucket, float(limit) if limit is not None else None, scale
                )
                with client.pipeline(transaction=False) as pipe:
                    pipe.eval(_NAME, 3, key, declared, routes, path, seen.bucket, capacity)
                    pipe.expire(routes, ROUTES_TTL)
                    pipe.execute()
            client.eval(
                _OBSERVE,
                1,
                key,
                repr(now),
                capacity,
                repr(period),
                text(seen.remaining),
                text(seen.reset_in),
                text(seen.retry_after),
                seen.bucket or "",
            )
    except (redis.RedisError, OSError) as exc:
        _unavailable("observe", exc)


def watch(adapter: Adapter[Any, Any], channel_id: uuid.UUID) -> None:
    """Have every answer the adapter gets correct the channel's buckets."""
    if isinstance(adapter, HttpAdapter) and _buckets(adapter):

        def observer(path: str, seen: RateObservation) -> None:
            observe(adapter, channel_id, path, seen)

        adapter.rate_observer = observer


def read(adapter: Adapter[Any, Any], channel_id: uuid.UUID) -> list[BucketState] | None:
    """The channel's buckets now (refilled to this instant), or None when Redis does not
    answer."""
    buckets = list(_buckets(adapter))
    if not buckets:
        return []
    client = _client()
    if client is None:
        return None
    now = utcnow()
    scale = _scale()
    try:
        resolved = _resolve(client, adapter, channel_id, scale)
        with client.pipeline(transaction=False) as pipe:
            for key, _, _ in resolved:
                pipe.hmget(key, ["tokens", "at", "blocked"])
            stored = pipe.execute()
    except (redis.RedisError, OSError) as exc:
        _unavailable("read", exc)
        return None
    states = []
    for bucket, (_, usable, period), (tokens, at, blocked) in zip(
        buckets, resolved, stored, strict=True
    ):
        rate = usable / period
        t = float(tokens) if tokens is not None else float(usable)
        a = float(at) if at is not None else now.timestamp()
        b = float(blocked) if blocked is not None else 0.0
        t = min(usable, t + max(0.0, now.timestamp() - a) * rate)
        full_in = (usable - t) / rate
        until = datetime.fromtimestamp(b, UTC) if b > now.timestamp() else None
        resets = now + timedelta(seconds=full_in)
        if until is not None and until > resets:
            resets = until
        states.append(
            BucketState(
                name=bucket.name,
                scope=bucket.scope.value,
                capacity=bucket.capacity,
                period_seconds=bucket.period_seconds / scale,
                remaining=0.0 if until is not None else max(0.0, round(t, 3)),
                resets_at=resets,
                blocked_until=until,
                source=bucket.source,
            )
        )
    return states
