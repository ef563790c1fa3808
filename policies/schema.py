"""The policy schema: pydantic v2 models, strict (``extra="forbid"``) and frozen.

A policy has five parts: the model ``catalog``, ``routing`` (classifier + thresholds), ``escalation``
(ladders per modality, answer checks, what to do when exhausted), ``retries`` and ``budgets``; and
``cache`` (a response cache, off when absent) and ``sessions`` (session pinning), in :mod:`policies.cache`.
Cross-field rules (ladders name catalog models, checks exist, thresholds ascend) are validated here so
that a loaded Policy is always internally consistent.
"""
from __future__ import annotations

import difflib
import re
from typing import Annotated, Any, Collection, Iterable, Literal, Mapping, Sequence, get_args

from types import MappingProxyType

from pydantic import BaseModel, ConfigDict, Field, field_serializer, field_validator, model_validator

from policies.cache import CacheConfig, SessionConfig, cache_problems
from policies.checks import CHECK_NAMES, validate_check_params
from policies.errors import ConfigError
from policies.learning import ShadowConfig

# What a catalog model can serve. json_mode: response_format {"type": "json_object"} (JSON mode);
# json_schema: {"type": "json_schema", ...} (structured outputs). Model cards list the two apart
# (DeepSeek-VL2 has JSON mode but no structured outputs), so a model declares each it supports.
# logprobs: the provider returns token logprobs when asked (``logprobs: true``): the runtime asks for them,
# and the ``confidence`` check and the trace read them.
Capability = Literal["text", "vision", "document_ocr", "json_mode", "json_schema", "tools", "streaming", "logprobs",
                     "embeddings"]
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
    per_team: tuple[CapConfig, ...] = ()     # each team (a key's team: ``cascade serve --keys``)
    per_org: tuple[CapConfig, ...] = ()      # each org
    per_key: tuple[CapConfig, ...] = ()      # each API key
    global_: tuple[CapConfig, ...] = Field(default=(), alias="global")
    at_cap: Literal["downgrade", "reject"] = "downgrade"
    reservation_ttl_s: Positive = 300.0
    on_store_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class TelemetryConfig(_Strict):
    """``opentelemetry``: a GenAI span per request and attempt, and token / duration histograms
    (cascade.otel; the ``[otel]`` extra). ``capture_content``: prompt and answer text in the spans."""

    opentelemetry: bool = False
    capture_content: bool = False


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
    telemetry: TelemetryConfig = TelemetryConfig()
    shadow: ShadowConfig | None = None        # shadow sampling: policies.learning
    cache: CacheConfig | None = None            # response cache (policies/cache.py); off when absent
    sessions: SessionConfig = SessionConfig()   # session pinning (policies/cache.py)

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
        ladders = {modality: [(rung.model, [c.param("with") for c in self.checks_for(rung) if c.name == "agreement"],
                               f"escalation.ladders.{modality}.{i}.checks" if rung.checks is not None
                               else "escalation.checks") for i, rung in enumerate(rungs)]
                   for modality, rungs in self.escalation.ladders.items()}
        problems = reference_problems({a: spec.capabilities for a, spec in self.catalog.items()}, ladders,
                                      len(self.routing.thresholds))
        problems += [(where, f"unknown model {alias!r}{did_you_mean(alias, self.catalog)}; catalog has: "
                             f"{', '.join(sorted(self.catalog))}")
                     for where, alias in (self.shadow.referenced_models() if self.shadow else ()) if alias not in self.catalog]
        problems += cache_problems(self.cache, {a: spec.capabilities for a, spec in self.catalog.items()})
        if problems:
            where, message = problems[0]
            raise ValueError(f"{where}: {message}")
        return self

    def checks_for(self, rung: Rung) -> tuple[CheckSpec, ...]:
        return self.escalation.checks if rung.checks is None else rung.checks


RawRung = tuple[str, list[Any], str]    # (model alias, the ``with`` of its agreement checks, where its checks are)


def reference_problems(capabilities: Mapping[str, Collection[str] | None], ladders: Mapping[str, Sequence[RawRung]],
                       n_thresholds: int | None) -> list[tuple[str, str]]:
    """Every cross-field problem, as (field path, message): ladders name catalog models that have the
    ladder's capability, an agreement check's ``with`` is a catalog model (one per rung), and there are
    fewer thresholds than text rungs. Works on a loaded Policy and on raw YAML data alike (a model whose
    capabilities are unknown, None, is not checked for them), so that the loader can report these
    problems together with schema errors elsewhere in the file."""
    known = ", ".join(sorted(capabilities))
    problems: list[tuple[str, str]] = []
    for modality, rungs in ladders.items():
        for i, (model, _, _) in enumerate(rungs):
            if model not in capabilities:
                problems.append((f"escalation.ladders.{modality}.{i}",
                                 f"unknown model {model!r}{did_you_mean(model, capabilities)}; catalog has: {known}"))
                continue
            need, caps = MODALITY_CAPABILITY.get(modality), capabilities[model]
            if need is not None and caps is not None and need not in caps:
                problems.append((f"escalation.ladders.{modality}.{i}", f"model {model!r} lacks capability "
                                 f"{need!r} needed by the {modality} ladder"))
    for rungs in ladders.values():
        for _, withs, where in rungs:
            if len(withs) > 1:
                problems.append((where, f"at most one agreement check per rung, got {len(withs)}"))
            for other in withs:
                if other not in capabilities:
                    problems.append((where, f"agreement with unknown model {other!r}"
                                     f"{did_you_mean(other, capabilities)}; catalog has: {known}"))
    n_rungs = len(ladders.get("text", ()))
    if n_thresholds is not None and n_rungs and n_thresholds > n_rungs - 1:
        problems.append(("routing.thresholds", f"{n_thresholds} thresholds but the text ladder has only {n_rungs} "
                         f"rungs (at most {n_rungs - 1} thresholds)"))
    return list(dict.fromkeys(problems))


def did_you_mean(word: Any, candidates: Iterable[str]) -> str:
    """`` (did you mean 'per_user'?)`` when ``word`` is close to one of ``candidates``, else ``""``."""
    if not isinstance(word, str):
        return ""
    close = difflib.get_close_matches(word, list(candidates), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


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
