"""Learning from live traffic, the pure parts: the policy's ``shadow`` section, which requests are
sampled, the shadow call's attempt, and the judge's prompt and verdict (no I/O, no clock).

    shadow:
      rate: 0.05                   # share of the requests answered by a cheaper rung that are shadowed
      models: [gpt-4o]             # also asked, in the background, after the response went out
      budget_usd_per_day: 5        # a cap of the shadow calls' own (never the users' caps)
      seed: 0                      # the sample is a hash of (seed, request id): reproducible
      drain_s: 10                  # Router.aclose() / close() wait this long for shadow calls in flight
      judge: {model: gpt-4o, rubric: "..."}   # labels an answer when final answers cannot be compared
"""
from __future__ import annotations

import hashlib
import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

SHADOW_USER = "cascade-shadow"          # the budget scope shadow calls are reserved against
DEFAULT_RUBRIC = ("You grade answers. Given a question, a reference answer from a strong model and a candidate "
                  "answer, decide whether the candidate is adequate: correct, and as useful to the asker as the "
                  "reference. Reply with one word: ADEQUATE or INADEQUATE.")
_VERDICT = re.compile(r"\b(INADEQUATE|ADEQUATE)\b", re.IGNORECASE)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class JudgeConfig(_Strict):
    model: str = Field(min_length=1)
    rubric: str = Field(default=DEFAULT_RUBRIC, min_length=1)


class ShadowConfig(_Strict):
    rate: Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.05
    models: tuple[str, ...] = Field(min_length=1)
    budget_usd_per_day: Annotated[float, Field(ge=0.0, allow_inf_nan=False)] = 5.0
    seed: int = 0
    drain_s: Annotated[float, Field(gt=0.0, allow_inf_nan=False)] = 10.0
    judge: JudgeConfig | None = None

    def referenced_models(self) -> list[tuple[str, str]]:
        """(field path, alias) of every catalog model this section names."""
        out = [(f"shadow.models.{i}", m) for i, m in enumerate(self.models)]
        return out + ([("shadow.judge.model", self.judge.model)] if self.judge is not None else [])


def sampled(request_id: str, rate: float, seed: int = 0) -> bool:
    """Whether ``request_id`` is in the shadow sample: a uniform draw from a hash of (seed, id)."""
    if rate <= 0.0:
        return False
    digest = hashlib.blake2b(f"{seed}:{request_id}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2 ** 64 < rate


def shadow_models(config: ShadowConfig, strengths: dict[str, int], answered_by: str) -> list[str]:
    """The shadow models to ask about an answer of ``answered_by``: those stronger than it."""
    mine = strengths.get(answered_by, 0)
    return [m for m in config.models if m != answered_by and strengths.get(m, 0) > mine]


def explore_model(config: ShadowConfig, ladder: "tuple[object, ...]", strengths: dict[str, int],
                  answered_by: str) -> str | None:
    """The cheap rung to ask about a request answered by ``answered_by`` when the shadow models list it
    (exploration: a router that sends a request to the strong model learns whether the cheap one would
    have done): the ladder's first rung when it is weaker; None otherwise."""
    if answered_by not in config.models or not ladder:
        return None
    first = str(getattr(ladder[0], "model", ladder[0]))
    return first if strengths.get(first, 0) < strengths.get(answered_by, 0) else None


def shadow_attempt(policy: "object", request: "object", model: str, reason: str) -> "Attempt":
    """The attempt of a shadow (or judge) call of ``model`` for ``request``: the engine's own rule for
    max_tokens and the worst-case cost it is reserved for; no checks."""
    from policies.engine import _max_tokens
    from policies.plan import Attempt
    spec = policy.catalog[model]                    # type: ignore[attr-defined]
    max_tokens = _max_tokens(policy, request, spec)  # type: ignore[arg-type]
    return Attempt(model=model, litellm_model=spec.litellm_model, params=(("max_tokens", max_tokens),), checks=(),
                   est_cost_usd=spec.price.cost(request.prompt_tokens, max_tokens),  # type: ignore[attr-defined]
                   reason=reason, rung=-1, strength=spec.strength)


def judge_messages(rubric: str, prompt: str, reference: str, candidate: str) -> list[dict[str, str]]:
    return [{"role": "system", "content": rubric},
            {"role": "user", "content": f"Question:\n{prompt}\n\nReference answer:\n{reference}\n\n"
                                        f"Candidate answer:\n{candidate}\n\nIs the candidate answer adequate?"}]


def judge_verdict(text: str) -> bool | None:
    """The judge's last ADEQUATE / INADEQUATE word; None when it gave neither."""
    found = _VERDICT.findall(text or "")
    return None if not found else found[-1].upper() == "ADEQUATE"


def agreement_label(prompt: str, cheap: str, strong: str) -> bool | None:
    """Whether the cheap answer gives the strong answer's final answer (``classifiers.extract``, kind
    from the prompt); None when either has no final answer to compare."""
    from classifiers.extract import agree
    return agree(cheap, strong, "auto", prompt)
