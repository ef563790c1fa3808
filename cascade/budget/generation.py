"""Ledger generations: how a Redis budget store notices that it lost its ledger.

A Redis that restarts without persistence (or is flushed, or replaced by an empty one) comes back
empty: every cap would silently start again from $0. To notice, the store keeps a *generation* — a
random id written once, when the ledger begins — in the hash ``<prefix>generation``, and every process
remembers the generation it serves:

- in memory: each reserve / commit / release / snapshot script first checks that the hash still holds
  the generation the process serves (one HGET, atomically with the operation);
- on disk, in a marker file beside the settlement spool (``<spool dir>/<store key>.generation``), so a
  process restarted on the same host also knows which ledger it served.

A store that holds another generation, or none, while a process remembers one has lost the ledger:
the process marks it lost in Redis (a tombstone ``{lost: <generation>}``, so that processes which
remember nothing refuse too) and raises :class:`LedgerLost` — a ``BudgetStoreUnavailable``, so the
policy's ``on_store_unavailable`` applies: refused by default (fail closed), settlements spooled.
An operator who accepts the loss confirms a new ledger (``cascade budget --confirm-new-ledger``):
a new generation marked ``confirmed``, which every process adopts; the spool is then applied to it.
A fresh Redis that no process on any host remembers begins a new ledger by itself.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["ADOPT", "CONFIRM", "GUARD", "GenerationMarker", "WRONG_GENERATION"]

WRONG_GENERATION = "CASCADE_LEDGER_GENERATION"

# Prepended to every script body (after the shared functions); the script's last ARGV is the
# generation the process serves.
GUARD = """
if redis.call('HGET', ARGV[1] .. 'generation', 'id') ~= ARGV[#ARGV] then
  return redis.error_reply('%s')
end
""" % WRONG_GENERATION

# ARGV: prefix, remembered generation ('' = none), new id, now -> {'ok', id} | {'lost', what}
ADOPT = """
local key = ARGV[1] .. 'generation'
local id = redis.call('HGET', key, 'id')
local remembered, new, now = ARGV[2], ARGV[3], ARGV[4]
if not id then
  if redis.call('EXISTS', key) == 0 then
    if remembered == '' then
      redis.call('HSET', key, 'id', new, 'how', 'new', 'at', now)
      return {'ok', new}
    end
    redis.call('HSET', key, 'lost', remembered, 'at', now)
  end
  return {'lost', 'no ledger (generation ' .. (redis.call('HGET', key, 'lost') or '?') .. ' was lost)'}
end
local how = redis.call('HGET', key, 'how')
if remembered == '' or remembered == id or how == 'confirmed' then return {'ok', id} end
if how == 'new' then
  redis.call('DEL', key)
  redis.call('HSET', key, 'lost', remembered, 'replaced', id, 'at', now)
end
return {'lost', 'generation ' .. id .. ', begun after ' .. remembered .. ' was lost'}
"""

# ARGV: prefix, new id, now -> the new id
CONFIRM = """
local key = ARGV[1] .. 'generation'
local old = redis.call('HGET', key, 'id') or redis.call('HGET', key, 'lost') or ''
redis.call('DEL', key)
redis.call('HSET', key, 'id', ARGV[2], 'how', 'confirmed', 'at', ARGV[3], 'replaces', old)
return ARGV[2]
"""


class GenerationMarker:
    """The generation this host last served, in a small file written atomically."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> str | None:
        try:
            text = self.path.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        return text or None

    def write(self, generation: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".generation-")
        try:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(generation + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
