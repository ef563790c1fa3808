"""`RedisBudgetStore`: budgets shared by many hosts through one Redis (standalone or Sentinel).

reserve / commit / release / expire / snapshot are each one Lua script, so every check-and-write is
atomic on the server. Key layout (``p`` = prefix, default ``cascade:``; bucket keys as in
:mod:`cascade.budget.base`)::

    p spend:<bucket>   STRING  spent nano-dollars; EXPIRE = bucket end + 1 day (none for "total")
    p rz:<bucket>      ZSET    reservation ids holding money in the bucket, score = expires_at
    p r:<id>           HASH    amount (nano), meta (JSON: request_id, user, model, buckets);
                               EXPIRE = ttl + 1 h, so a crashed process cannot hold money forever
    p reservations     ZSET    every open reservation id, score = expires_at
    p done:<id>        STRING  the ledger entry of a committed reservation (7 days; double commit guard)
    p ledger           STREAM  one entry per commit, field ``e`` = entry JSON
    p total            STRING  all-time spent nano-dollars
    p by_user          HASH    all-time spent nano-dollars per user ("u:<user>", "-" = anonymous)
    p generation       HASH    id of the ledger generation (or a tombstone {lost}): see
                               :mod:`cascade.budget.generation`; every script checks it first

Reservations whose ``expires_at`` passed stop counting at once (scores are filtered by ``now``) and are
dropped by the next reserve or ``expire``. Scripts build key names from the prefix, so this store is not
for Redis Cluster. Money travels as decimal strings; Lua only compares and sums integers < 2**53.

Persistence: the ledger is only as durable as Redis. Run it with ``appendonly yes`` (``appendfsync
everysec`` loses at most about a second of writes on a crash of the host; ``always`` none); a Redis
without persistence that restarts comes back empty, which this store notices (a lost generation) and
refuses rather than restarting every cap from $0.
"""
from __future__ import annotations

import json
import logging
import math
import uuid
from typing import Any, Sequence

from cascade.budget.base import (BudgetStoreBase, LedgerEntry, Reservation, ReservationNotFound, clock,
                                 commit_inputs, exceeded, mask_url, new_reservation, reservation_id,
                                 reserve_inputs, resolve_caps, usage_snapshot)
from cascade.budget.generation import ADOPT, CONFIRM, GUARD, WRONG_GENERATION, GenerationMarker
from policies.budget import BudgetSnapshot, Cap, from_nano
from policies.errors import BudgetStoreUnavailable, LedgerLost

log = logging.getLogger("cascade.budget")
_WRONG_GENERATION = object()

SPEND_GRACE_S = 86_400
HOLD_GRACE_S = 3_600
DONE_TTL_S = 7 * 86_400
_ANONYMOUS = "-"

_LUA_COMMON = """
local function extend(key, secs)
  local cur = redis.call('TTL', key)
  if cur == -1 or cur < secs then redis.call('EXPIRE', key, secs) end
end
local function reserved(p, bucket, now)
  local total = 0
  for _, id in ipairs(redis.call('ZRANGEBYSCORE', p .. 'rz:' .. bucket, now, '+inf')) do
    local a = redis.call('HGET', p .. 'r:' .. id, 'amount')
    if a then total = total + tonumber(a) end
  end
  return total
end
local function forget(p, id)
  local meta = redis.call('HGET', p .. 'r:' .. id, 'meta')
  if meta then
    for _, b in ipairs(cjson.decode(meta).buckets) do redis.call('ZREM', p .. 'rz:' .. b[1], id) end
  end
  redis.call('DEL', p .. 'r:' .. id)
  return redis.call('ZREM', p .. 'reservations', id)
end
local function drop_expired(p, now)
  local ids = redis.call('ZRANGEBYSCORE', p .. 'reservations', '-inf', '(' .. now)
  for _, id in ipairs(ids) do forget(p, id) end
  return #ids
end
"""

# Every script: ARGV[1] is the prefix and its last ARGV the ledger generation the process serves (GUARD).
# ARGV: prefix, now, id, amount, expires_at, meta, hold_ttl, n, then n x (bucket, limit, keep_s)
_RESERVE = _LUA_COMMON + GUARD + """
local p, now, id, amount = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local n = tonumber(ARGV[8])
drop_expired(p, now)
for i = 1, n do
  local b, limit = ARGV[6 + 3 * i], tonumber(ARGV[7 + 3 * i])
  redis.call('ZREMRANGEBYSCORE', p .. 'rz:' .. b, '-inf', '(' .. now)
  local spent = tonumber(redis.call('GET', p .. 'spend:' .. b) or '0')
  local held = reserved(p, b, now)
  if spent + held + amount > limit then return {i, spent, held} end
end
redis.call('HSET', p .. 'r:' .. id, 'amount', ARGV[4], 'meta', ARGV[6])
redis.call('EXPIRE', p .. 'r:' .. id, tonumber(ARGV[7]))
redis.call('ZADD', p .. 'reservations', ARGV[5], id)
for i = 1, n do
  local key = p .. 'rz:' .. ARGV[6 + 3 * i]
  redis.call('ZADD', key, ARGV[5], id)
  extend(key, tonumber(ARGV[8 + 3 * i]))
end
return {0, 0, 0}
"""

# ARGV: prefix, id, cost, at, fallback meta ('' = none)
_COMMIT = _LUA_COMMON + GUARD + """
local p, id, cost, at = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local done = redis.call('GET', p .. 'done:' .. id)
if done then return {1, done} end
local meta = redis.call('HGET', p .. 'r:' .. id, 'meta')
if not meta then
  if ARGV[5] == '' then return {2, ''} end
  meta = ARGV[5]
end
local m = cjson.decode(meta)
for _, b in ipairs(m.buckets) do
  local key = p .. 'spend:' .. b[1]
  redis.call('INCRBY', key, cost)
  if b[2] ~= cjson.null then
    extend(key, math.max(0, math.ceil(b[2] - tonumber(at))) + %(spend_grace)d)
  end
end
forget(p, id)
redis.call('INCRBY', p .. 'total', cost)
local who = '%(anonymous)s'
if m.user ~= nil and m.user ~= cjson.null then who = 'u:' .. m.user end
redis.call('HINCRBY', p .. 'by_user', who, cost)
local entry = '{"meta":' .. meta .. ',"cost_nano":"' .. cost .. '","at":"' .. at .. '"}'
redis.call('XADD', p .. 'ledger', '*', 'e', entry)
redis.call('SET', p .. 'done:' .. id, entry, 'EX', %(done_ttl)d)
return {0, entry}
""" % {"spend_grace": SPEND_GRACE_S, "anonymous": _ANONYMOUS, "done_ttl": DONE_TTL_S}

# ARGV: prefix, id
_RELEASE = _LUA_COMMON + GUARD + """
if redis.call('EXISTS', ARGV[1] .. 'done:' .. ARGV[2]) == 1 then return 0 end
return forget(ARGV[1], ARGV[2])
"""

# ARGV: prefix, now
_EXPIRE = _LUA_COMMON + GUARD + "return drop_expired(ARGV[1], ARGV[2])"

# ARGV: prefix, now, bucket... -> {spent1, held1, spent2, held2, ...}
_SNAPSHOT = _LUA_COMMON + GUARD + """
local out = {}
for i = 3, #ARGV - 1 do
  out[#out + 1] = tonumber(redis.call('GET', ARGV[1] .. 'spend:' .. ARGV[i]) or '0')
  out[#out + 1] = reserved(ARGV[1], ARGV[i], ARGV[2])
end
return out
"""


class RedisBudgetStore(BudgetStoreBase):
    def __init__(self, url: str, *, prefix: str = "cascade:", socket_timeout_s: float = 5.0,
                 max_connections: int = 50, marker: GenerationMarker | None = None) -> None:
        """``marker``: where this host remembers the ledger generation it served (see
        :mod:`cascade.budget.generation`); without one, a loss is noticed by a running process only."""
        from cascade.extras import require     # lazily: `import cascade.budget` must not import redis
        redis = require("redis", "a redis:// budget store")

        self.url = mask_url(url)
        self.prefix = prefix
        self._password = _password_of(url)
        # a blocking pool: many threads (asyncio.to_thread, a server) wait for a connection
        # instead of failing with "Too many connections"
        self._pool = redis.BlockingConnectionPool.from_url(
            url, max_connections=max_connections, timeout=socket_timeout_s, decode_responses=True,
            socket_timeout=socket_timeout_s, socket_connect_timeout=socket_timeout_s)
        self._client = redis.Redis(connection_pool=self._pool)
        self._errors = redis.exceptions.RedisError
        self._response_error = redis.exceptions.ResponseError
        register = self._client.register_script
        self._reserve, self._commit = register(_RESERVE), register(_COMMIT)
        self._release, self._expire = register(_RELEASE), register(_EXPIRE)
        self._snapshot = register(_SNAPSHOT)
        self._adopt_script, self._confirm_script = register(ADOPT), register(CONFIRM)
        self.marker = marker
        self._generation: str | None = None        # the ledger generation served; None: check it first
        self._last_generation: str | None = None   # the one served before a check

    # ---- reserve / commit / release ----------------------------------------------------------------

    def reserve(self, *, request_id: str, user: str | None, model: str, amount_usd: float,
                caps: Sequence[Cap], ttl_s: float = 300.0,
                now: float | None = None) -> Reservation:
        amount, ttl, now, checks = reserve_inputs(amount_usd, ttl_s, now, caps, user)
        res = new_reservation(request_id=request_id, user=user, model=model, amount_nano=amount,
                              expires_at=now + ttl, checks=checks)
        args: list[Any] = [self.prefix, repr(now), res.id, str(amount), repr(res.expires_at),
                           _meta(res), math.ceil(ttl) + HOLD_GRACE_S, len(checks)]
        for check in checks:
            bucket_left = 0.0 if check.ends_at is None else check.ends_at - now
            args += [check.bucket, str(check.cap.limit_nano),
                     math.ceil(max(bucket_left, ttl)) + HOLD_GRACE_S]
        refused, spent, held = self._script(self._reserve, args)
        if refused:
            raise exceeded(checks[refused - 1], user=user, spent_nano=int(spent),
                           reserved_nano=int(held), amount_nano=amount, now=now)
        return res

    def commit(self, reservation: Reservation | str, cost_usd: float, *,
               now: float | None = None) -> LedgerEntry:
        rid, cost, now = commit_inputs(reservation, cost_usd, now)
        fallback = "" if isinstance(reservation, str) else _meta(reservation)
        status, entry = self._script(self._commit, [self.prefix, rid, str(cost), repr(now), fallback])
        if status == 2:
            raise ReservationNotFound(f"unknown reservation {rid!r} (released, expired or never made)")
        return _entry(entry)[0]

    def release(self, reservation: Reservation | str) -> None:
        self._script(self._release, [self.prefix, reservation_id(reservation)])

    # ---- reading ------------------------------------------------------------------------------------

    def snapshot(self, *, user: str | None, caps: Sequence[Cap],
                 now: float | None = None) -> BudgetSnapshot:
        now = clock(now)
        checks = resolve_caps(caps, user, now)
        flat = self._script(self._snapshot, [self.prefix, repr(now)] + [c.bucket for c in checks])
        return usage_snapshot(checks, [int(x) for x in flat[0::2]], [int(x) for x in flat[1::2]])

    def open_reservations(self, now: float | None = None) -> int:
        return int(self._run(self._client.zcount, self.prefix + "reservations",
                             repr(clock(now)), "+inf"))

    def expire(self, now: float | None = None) -> int:
        return int(self._script(self._expire, [self.prefix, repr(clock(now))]))

    def total_spent(self, *, user: str | None = None) -> float:
        if user is None:
            value = self._run(self._client.get, self.prefix + "total")
        else:
            value = self._run(self._client.hget, self.prefix + "by_user", "u:" + user)
        return from_nano(int(value or 0))

    def spend_by_user(self) -> dict[str | None, float]:
        raw = self._run(self._client.hgetall, self.prefix + "by_user")
        return {(None if k == _ANONYMOUS else k[2:]): from_nano(int(v)) for k, v in raw.items()}

    def ledger(self, *, request_id: str | None = None) -> list[LedgerEntry]:
        """All ledger entries in commit order (scans the stream; meant for reports, not hot paths)."""
        entries, start = [], "-"
        while True:
            page = self._run(self._client.xrange, self.prefix + "ledger", start, "+", 1000)
            for _, fields in page:
                entry, req = _entry(fields["e"])
                if request_id is None or req == request_id:
                    entries.append(entry)
            if len(page) < 1000:
                return entries
            start = "(" + page[-1][0]

    def ledger_page(self, after: str = "0-0", count: int = 1000) -> tuple[list[LedgerEntry], str]:
        """Up to ``count`` ledger entries committed after stream id ``after``, oldest first, and the id of
        the last one: a bounded read for a reader that keeps running figures of its own (the dashboard)."""
        page = self._run(self._client.xrange, self.prefix + "ledger", "(" + after, "+", count)
        return [_entry(fields["e"])[0] for _, fields in page], (page[-1][0] if page else after)

    def ledger_length(self) -> int:
        """How many entries the ledger stream holds."""
        return int(self._run(self._client.xlen, self.prefix + "ledger"))

    def close(self) -> None:
        self._client.close()
        self._pool.disconnect()

    # ---- the ledger generation (cascade.budget.generation) ----------------------------------------

    def verify(self) -> str:
        """The ledger generation, checked against Redis now; LedgerLost when the ledger was lost."""
        self._generation = None
        return self._serving()

    def confirm_new_ledger(self) -> str:
        """An operator's decision after a loss: begin a new ledger generation, which every process
        adopts (returns its id)."""
        generation = uuid.uuid4().hex
        self._run(lambda: self._confirm_script(keys=[], args=[self.prefix, generation, repr(clock(None))]))
        self._generation = self._last_generation = generation
        self._remember(generation)
        return generation

    def persistence(self) -> str:
        """How Redis keeps its data across a restart: "aof", "rdb", "none" or "unknown"."""
        try:
            if int(self._run(self._client.info, "persistence").get("aof_enabled", 0)):
                return "aof"
            save = self._run(self._client.config_get, "save").get("save", "")
        except BudgetStoreUnavailable:
            return "unknown"
        return "rdb" if str(save).strip() else "none"

    def _serving(self) -> str:
        if self._generation is None:
            remembered = self._last_generation or (self.marker.read() if self.marker else None) or ""
            status, what = self._run(lambda: self._adopt_script(
                keys=[], args=[self.prefix, remembered, uuid.uuid4().hex, repr(clock(None))]))
            if status != "ok":
                raise LedgerLost(f"redis budget store {self.url} (key prefix {self.prefix!r}) lost its ledger: "
                                 f"generation {remembered} was served, the store now holds {what} (restarted "
                                 f"without persistence, flushed or replaced). Every cap would start again from "
                                 f"$0, so budgeted requests are refused until an operator confirms a new "
                                 f"ledger: cascade budget --budget-store URL --confirm-new-ledger (settlements "
                                 f"spooled meanwhile are then applied). Run Redis with appendonly yes.")
            self._generation = self._last_generation = what
            self._remember(what)
        return self._generation

    def _remember(self, generation: str) -> None:
        if self.marker is None:
            return
        try:
            if self.marker.read() != generation:
                self.marker.write(generation)
        except OSError as exc:
            log.warning("cannot remember the ledger generation in %s: %s", self.marker.path, exc)

    # ---- internals ----------------------------------------------------------------------------------

    def _run(self, fn: Any, *args: Any) -> Any:
        """Call Redis; any Redis failure becomes BudgetStoreUnavailable without the password."""
        try:
            return fn(*args)
        except self._errors as exc:
            detail = f"{type(exc).__name__}: {exc}"
            if self._password:
                detail = detail.replace(self._password, "***")
            raise BudgetStoreUnavailable(f"redis budget store {self.url} unavailable ({detail})") from exc

    def _script(self, script: Any, args: Sequence[Any]) -> Any:
        """Run a guarded script against the generation served; when Redis holds another one, check
        again (a confirmed new ledger is adopted, a lost one raises LedgerLost) and run it once more."""
        for _ in range(2):
            generation = self._serving()
            result = self._run(self._guarded, script, [*args, generation])
            if result is not _WRONG_GENERATION:
                return result
            self._generation = None
        raise LedgerLost(f"redis budget store {self.url}: the ledger generation changed twice during one operation")

    def _guarded(self, script: Any, args: list[Any]) -> Any:
        try:
            return script(keys=[], args=args)
        except self._response_error as exc:
            if WRONG_GENERATION in str(exc):
                return _WRONG_GENERATION
            raise


def _password_of(url: str) -> str | None:
    from urllib.parse import unquote, urlsplit

    try:
        password = urlsplit(url).password
    except ValueError:
        return None
    return unquote(password) if password else None


def _meta(res: Reservation) -> str:
    return json.dumps({"id": res.id, "request_id": res.request_id, "user": res.user,
                       "model": res.model, "buckets": [list(b) for b in res.buckets]},
                      ensure_ascii=False, separators=(",", ":"))


def _entry(text: str) -> tuple[LedgerEntry, str]:
    data = json.loads(text)
    meta = data["meta"]
    entry = LedgerEntry(reservation_id=meta["id"], request_id=meta["request_id"], user=meta["user"],
                        model=meta["model"], cost_usd=from_nano(int(data["cost_nano"])),
                        at=float(data["at"]))
    return entry, meta["request_id"]
