"""The semantic cache's embedding call, paid for like any call.

Before the call, its worst case (one token per byte of the text embedded, at the embedding model's
input price) is reserved against the request's caps — its principal's user, team, org and key, and
the global caps — under the request's id; the real cost (the tokens the provider counted, else the
worst case) is committed after it, or the reservation released when the call failed or the request
was cancelled. The ledger shows it under the embedding model; the trace in ``cache_embedding_usd``
(beside ``cost_usd``, which stays the models' answers).

A call we stop waiting for — the embedding model's timeout passed, or the request was cancelled — is
treated like a chat call (:func:`cascade.provider_call.wait_or_give_up`, as ``timed_call`` does): its reservation is
released at once, and the call runs on for a grace period; if the provider answers after all, the gate
records what it cost in the ledger (:meth:`cascade.gate.BudgetGate.settle_late`), since the provider
bills it. The lookup itself goes on without a vector.

A cap that refuses the embedding call, or a budget store that cannot budget it while the policy fails
closed, does not fail the request: its lookup goes on without a vector (exact matching only), and the
request's own plan then meets the cap with its own typed refusal.
"""
from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from cascade.gate import BudgetGate
from cascade.provider_call import late_grace, wait_or_give_up

RawEmbed = Callable[[str, float], Awaitable[tuple[list[float], int]]]   # (text, timeout_s) -> (vector, tokens)
_SLACK_TOKENS = 8          # a tokenizer's begin/end tokens beyond one per byte
DEFAULT_TIMEOUT_S = 30.0   # when the embedding model's catalog entry sets no timeout_s


@dataclass
class EmbeddingBill:
    """Who pays for a request's embedding calls, and what they cost so far."""

    request_id: str
    who: Any                  # a user name or a Principal (every level is charged)
    caps: tuple
    spent_usd: float = 0.0
    calls: int = 0


@dataclass(frozen=True)
class _LateUsage:
    """A late embedding answer's usage, in the shape :meth:`BudgetGate.settle_late` prices."""

    prompt_tokens: int
    completion_tokens: int = 0


class PaidEmbedder:
    """``await embedder(text, bill)``: (vector, tokens) of ``text``, reserved and settled on ``bill``."""

    def __init__(self, gate: BudgetGate, model: str, price: Any, embed: RawEmbed,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.gate, self.model, self.price, self._embed = gate, model, price, embed
        self.timeout_s = timeout_s

    async def __call__(self, text: str, bill: EmbeddingBill) -> tuple[list[float], int]:
        bound = len(text.encode("utf-8")) + _SLACK_TOKENS
        notes: list[str] = []
        reservation = await self.gate.reserve(notes, request_id=bill.request_id, user=bill.who, model=self.model,
                                              amount_usd=self.price.cost(bound, 0), caps=bill.caps)
        call = asyncio.ensure_future(self._embed(text, self.timeout_s + late_grace(self.timeout_s)))

        async def give_up(cancelled: bool) -> None:   # released now, a late answer still billed
            await (self.gate.release_shielded if cancelled else self.gate.release)(reservation)
            self._settle_late(call, bill, bound)

        await wait_or_give_up(call, self.timeout_s, give_up, model=self.model, what="embedding")
        try:
            vector, tokens = call.result()
        except Exception:
            await self.gate.release(reservation)
            raise
        cost = self.price.cost(tokens or bound, 0)
        await self.gate.commit(reservation, cost, notes)
        bill.spent_usd += cost
        bill.calls += 1
        return vector, tokens

    def _settle_late(self, call: "asyncio.Future[tuple[list[float], int]]", bill: EmbeddingBill,
                     bound: int) -> None:
        async def usage() -> _LateUsage:
            _, tokens = await call
            return _LateUsage(tokens or bound)
        self.gate.settle_late(asyncio.ensure_future(usage()), request_id=bill.request_id, user=bill.who,
                              model=self.model, caps=bill.caps, price=self.price)
