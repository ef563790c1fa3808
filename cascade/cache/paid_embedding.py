"""The semantic cache's embedding call, paid for like any call.

Before the call, its worst case (one token per byte of the text embedded, at the embedding model's
input price) is reserved against the request's caps — its principal's user, team, org and key, and
the global caps — under the request's id; the real cost (the tokens the provider counted, else the
worst case) is committed after it, or the reservation released when the call failed or the request
was cancelled. The ledger shows it under the embedding model; the trace in ``cache_embedding_usd``
(beside ``cost_usd``, which stays the models' answers).

A cap that refuses the embedding call, or a budget store that cannot budget it while the policy fails
closed, does not fail the request: its lookup goes on without a vector (exact matching only), and the
request's own plan then meets the cap with its own typed refusal.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from cascade.gate import BudgetGate

RawEmbed = Callable[[str], Awaitable[tuple[list[float], int]]]
_SLACK_TOKENS = 8          # a tokenizer's begin/end tokens beyond one per byte


@dataclass
class EmbeddingBill:
    """Who pays for a request's embedding calls, and what they cost so far."""

    request_id: str
    who: Any                  # a user name or a Principal (every level is charged)
    caps: tuple
    spent_usd: float = 0.0
    calls: int = 0


class PaidEmbedder:
    """``await embedder(text, bill)``: (vector, tokens) of ``text``, reserved and settled on ``bill``."""

    def __init__(self, gate: BudgetGate, model: str, price: Any, embed: RawEmbed) -> None:
        self.gate, self.model, self.price, self._embed = gate, model, price, embed

    async def __call__(self, text: str, bill: EmbeddingBill) -> tuple[list[float], int]:
        bound = len(text.encode("utf-8")) + _SLACK_TOKENS
        notes: list[str] = []
        reservation = await self.gate.reserve(notes, request_id=bill.request_id, user=bill.who, model=self.model,
                                              amount_usd=self.price.cost(bound, 0), caps=bill.caps)
        settled = False
        try:
            try:
                vector, tokens = await self._embed(text)
            except Exception:
                settled = True
                await self.gate.release(reservation)
                raise
            cost = self.price.cost(tokens or bound, 0)
            settled = True
            await self.gate.commit(reservation, cost, notes)
        finally:
            if not settled:           # cancelled: the call was not made to the end by us
                await self.gate.release_shielded(reservation)
        bill.spent_usd += cost
        bill.calls += 1
        return vector, tokens
