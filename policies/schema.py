"""The policy schema: pydantic v2 models, strict (``extra="forbid"``) and frozen.

A policy has five parts: the model ``catalog``, ``routing`` (classifier + thresholds), ``escalation``
(ladders per modality, answer checks, what to do when exhausted), ``retries`` and ``budgets``.
Cross-field rules (ladders name catalog models, checks exist, thresholds ascend) are validated here so
that a loaded Policy is always internally consistent.
"""
from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from policies.checks import CHECK_NAMES, validate_check_params
from policies.errors import ConfigError

# What a catalog model can serve. json_mode: response_format {"type": "json_object"} (JSON mode);
# json_schema: {"type": "json_schema", ...} (structured outputs). Model cards list the two apart
# (DeepSeek-VL2 has JSON mode but no structured outputs), so a model declares each it supports.
Capability = Literal["text", "vision", "document_ocr", "json_mode", "json_schema", "tools", "streaming"]
Modality = Literal["text", "vision", "document"]
Transport = Literal["litellm", "direct"]
# Providers whose API takes the OpenAI chat-completions request as it is: ``transport: direct`` may
# call them without litellm's per-call pipeline (cascade.direct).
DIRECT_PROVIDERS = frozenset({"deepseek", "openai"})


def speaks_direct(litellm_model: str) -> bool:
    """Whether ``litellm_model`` (``provider/name``) can use ``transport: direct``."""
    provider, sep, name = litellm_model.partition("/")
    return bool(sep and name) and provider in DIRECT_PROVIDERS
MODALITY_CAPABILITY: dict[str, str] = {"text": "text", "vision": "vision", "document": "document_ocr"}
JSON_OUTPUT_CAPABILITY: dict[str, str] = {"json_object": "json_mode", "json_schema": "json_schema"}
Fraction = Annotated[float, Field(ge=0.0, le=1.0, allow_inf_nan=False)]
NonNegative = Annotated[float, Field(ge=0.0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0.0, allow_inf_nan=False)]
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Price(_Strict):
    """USD per 1M tokens; overrides litellm's cost map (which has no DeepSeek-V2 entry)."""

    input_per_1m: NonNegative
    output_per_1m: NonNegative

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float:
        return (prompt_tokens * self.input_per_1m + completion_tokens * self.output_per_1m) / 1e6


class ModelSpec(_Strict):
    """One catalog entry. Keys are never stored: only the names of the variables that hold them."""

    litellm_model: str = Field(min_length=1)
    api_base_env: str | None = None
    api_key_env: str | None = None
    api_base: str | None = None
    price: Price
    context_window: Annotated[int, Field(gt=0)]
    max_output_tokens: Annotated[int, Field(gt=0)] = 4096
    capabilities: frozenset[Capability]
    strength: Annotated[int, Field(ge=0)]
    timeout_s: Positive | None = None
    # litellm (any provider, streaming) or direct (deepseek/ and openai/ models, non-streaming calls;
    # a sixth to a tenth of litellm's CPU per call; streams still go through litellm)
    transport: Transport = "litellm"

    @field_validator("api_base_env", "api_key_env")
    @classmethod
    def _env_name(cls, v: str | None) -> str | None:
        if v is not None and not _ENV_NAME.fullmatch(v):
            raise ValueError("not an environment variable name: give the name of the variable that holds "
                             "the value (e.g. DEEPSEEK_API_KEY), never the value itself")
        return v

    @model_validator(mode="after")
    def _output_fits(self) -> "ModelSpec":
        if self.transport == "direct" and not speaks_direct(self.litellm_model):
            raise ValueError(f"transport: direct speaks the OpenAI API of {sorted(DIRECT_PROVIDERS)} "
                             f"(litellm_model 'deepseek/...' or 'openai/...'), not {self.litellm_model!r}; "
                             "use transport: litellm")
        if self.max_output_tokens > self.context_window:
            raise ValueError(f"max_output_tokens ({self.max_output_tokens}) exceeds context_window ({self.context_window})")
        return self


class CheckSpec(_Strict):
    """A named answer check with its parameters (``{name: min_chars, n: 20}`` or just ``min_chars``)."""

    name: str
    params: tuple[tuple[str, Any], ...] = ()

    @model_validator(mode="before")
    @classmethod
    def _from_yaml(cls, data: Any) -> Any:
        if isinstance(data, str):
            return {"name": data}
        if isinstance(data, dict) and "params" not in data:
            bad = [k for k in data if not isinstance(k, str)]
            if bad:
                raise ValueError(f"check parameter names must be strings, got {bad[0]!r}")
            rest = {k: v for k, v in data.items() if k != "name"}
            return {"name": data.get("name"), "params": tuple(sorted(rest.items()))}
        return data

    @model_validator(mode="after")
    def _known(self) -> "CheckSpec":
        if self.name not in CHECK_NAMES:
            raise ValueError(f"unknown check {self.name!r}; known checks: {', '.join(sorted(CHECK_NAMES))}")
        validate_check_params(self.name, dict(self.params))
        return self

    def param(self, key: str, default: Any = None) -> Any:
        return dict(self.params).get(key, default)


class Rung(_Strict):
    """One step of a ladder: a catalog alias and, optionally, checks that replace the ladder's."""

    model: str
    checks: tuple[CheckSpec, ...] | None = None

    @model_validator(mode="before")
    @classmethod
    def _from_alias(cls, data: Any) -> Any:
        return {"model": data} if isinstance(data, str) else data


class RoutingConfig(_Strict):
    """``classifier`` scores the prompt; ``thresholds`` (ascending) pick the first rung of the ladder:
    a score below thresholds[0] starts at rung 0, at or above thresholds[i] starts at rung i+1."""

    classifier: str = "default"
    thresholds: tuple[Fraction, ...] = (0.5,)
    default_max_tokens: Annotated[int, Field(gt=0)] = 1024

    @field_validator("thresholds")
    @classmethod
    def _ascending(cls, v: tuple[float, ...]) -> tuple[float, ...]:
        if list(v) != sorted(v):
            raise ValueError(f"thresholds must be ascending, got {list(v)}")
        return v


class EscalationConfig(_Strict):
    ladders: dict[Modality, tuple[Rung, ...]]
    checks: tuple[CheckSpec, ...] = ()
    check_last_rung: bool = True
    on_exhausted: Literal["best_answer", "raise"] = "best_answer"
    stream_unchecked: bool = False

    @field_validator("ladders")
    @classmethod
    def _non_empty(cls, v: dict[str, tuple[Rung, ...]]) -> Any:
        if "text" not in v:
            raise ValueError("a 'text' ladder is required")
        for modality, rungs in v.items():
            if not rungs:
                raise ValueError(f"ladder {modality!r} is empty")
        return MappingProxyType(dict(v))

    @field_serializer("ladders")
    def _dump_ladders(self, v: Any) -> dict:
        return dict(v)


class Backoff(_Strict):
    initial_s: NonNegative = 0.5
    multiplier: Annotated[float, Field(ge=1.0)] = 2.0
    max_s: NonNegative = 8.0
    jitter_s: NonNegative = 0.25


class RetryRule(_Strict):
    attempts: Annotated[int, Field(ge=1, le=20)] = 3
    backoff: Backoff = Backoff()


class RetryConfig(_Strict):
    rate_limit: RetryRule = RetryRule(attempts=4)
    timeout: RetryRule = RetryRule(attempts=2)
    server_error: RetryRule = RetryRule(attempts=3)
    connection: RetryRule = RetryRule(attempts=3)
    honour_retry_after: bool = True
    max_retry_after_s: NonNegative = 30.0
    attempt_timeout_s: Positive = 60.0
    deadline_s: Positive = 180.0


class CapConfig(_Strict):
    window: Literal["minute", "hour", "day", "month", "total"]
    usd: NonNegative


class BudgetConfig(_Strict):
    store: str = "sqlite:///~/.cascade/spend.db"
    per_request_usd: NonNegative | None = None
    per_user: tuple[CapConfig, ...] = ()
    global_: tuple[CapConfig, ...] = Field(default=(), alias="global")
    at_cap: Literal["downgrade", "reject"] = "downgrade"
    reservation_ttl_s: Positive = 300.0
    on_store_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class CircuitConfig(_Strict):
    """Per-model circuit breaker: ``failures`` consecutive failed calls open it for ``cooldown_s``;
    then one half-open probe decides whether it closes again. Each failed probe opens it again for
    ``cooldown_multiplier`` times longer, up to ``max_cooldown_s`` (or ``cooldown_s`` if larger); a
    success closes it and the next opening starts short again."""

    failures: Annotated[int, Field(ge=1)] = 5
    cooldown_s: Positive = 2.0
    cooldown_multiplier: Annotated[float, Field(ge=1.0, le=100.0)] = 2.0
    max_cooldown_s: Positive = 60.0

    def cooldown(self, openings: int) -> float:
        """The cooldown of the ``openings``-th opening in a row (1: the first)."""
        longest = max(self.cooldown_s, self.max_cooldown_s)
        steps = min(max(0, openings - 1), 64)
        return min(longest, self.cooldown_s * self.cooldown_multiplier ** steps)


class Policy(_Strict):
    name: str = Field(min_length=1)
    description: str = ""
    catalog: dict[str, ModelSpec]
    routing: RoutingConfig = RoutingConfig()
    escalation: EscalationConfig
    retries: RetryConfig = RetryConfig()
    budgets: BudgetConfig = BudgetConfig()
    circuit_breaker: CircuitConfig = CircuitConfig()

    @field_validator("catalog")
    @classmethod
    def _freeze_catalog(cls, v: dict[str, ModelSpec]) -> Any:
        if not v:
            raise ValueError("the catalog is empty")
        return MappingProxyType(dict(v))

    @field_serializer("catalog")
    def _dump_catalog(self, v: Any) -> dict:
        return dict(v)

    @model_validator(mode="after")
    def _consistent(self) -> "Policy":
        for modality, rungs in self.escalation.ladders.items():
            for i, rung in enumerate(rungs):
                if rung.model not in self.catalog:
                    raise ValueError(
                        f"escalation.ladders.{modality}.{i}: unknown model {rung.model!r}; "
                        f"catalog has: {', '.join(sorted(self.catalog))}")
                need = MODALITY_CAPABILITY[modality]
                if need not in self.catalog[rung.model].capabilities:
                    raise ValueError(f"escalation.ladders.{modality}.{i}: model {rung.model!r} lacks "
                                     f"capability {need!r} needed by the {modality} ladder")
        self._agreements_name_models()
        n_rungs = len(self.escalation.ladders["text"])
        if len(self.routing.thresholds) > max(0, n_rungs - 1):
            raise ValueError(f"routing.thresholds: {len(self.routing.thresholds)} thresholds but the text "
                             f"ladder has only {n_rungs} rungs (at most {n_rungs - 1} thresholds)")
        return self

    def _agreements_name_models(self) -> None:
        """An agreement check's ``with`` is a catalog model; one agreement check per rung."""
        for modality, rungs in self.escalation.ladders.items():
            for i, rung in enumerate(rungs):
                found = [c for c in self.checks_for(rung) if c.name == "agreement"]
                where = (f"escalation.ladders.{modality}.{i}.checks" if rung.checks is not None
                         else "escalation.checks")
                if len(found) > 1:
                    raise ValueError(f"{where}: at most one agreement check per rung, got {len(found)}")
                for spec in found:
                    other = spec.param("with")
                    if other not in self.catalog:
                        raise ValueError(f"{where}: agreement with unknown model {other!r}; catalog has: "
                                         f"{', '.join(sorted(self.catalog))}")

    def checks_for(self, rung: Rung) -> tuple[CheckSpec, ...]:
        return self.escalation.checks if rung.checks is None else rung.checks


def with_transport(policy: Policy, transport: str) -> Policy:
    """``policy`` with ``transport`` on every catalog model that can use it (an operator's override:
    ``cascade serve --transport direct`` leaves models of other providers on litellm)."""
    if transport not in get_args(Transport):
        raise ConfigError(f"transport must be 'litellm' or 'direct', got {transport!r}")
    data = policy.model_dump()
    for spec in data["catalog"].values():
        if transport == "litellm" or speaks_direct(spec["litellm_model"]):
            spec["transport"] = transport
    return Policy.model_validate(data)
