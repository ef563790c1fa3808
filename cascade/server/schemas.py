"""Request shape of ``POST /v1/chat/completions`` and the helpers that turn it into Router arguments.

Validation is deliberately shallow here (types of the top-level fields); the messages themselves are
validated by the Router (``policies.request.describe_messages``), which names the exact place of a
problem (``messages[2].content[0].type``). Unknown top-level parameters are refused (400,
``unsupported_parameter``) rather than silently dropped, as OpenAI does.
"""
from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, StringConstraints, ValidationError
from typing_extensions import TypedDict

__all__ = ["ChatCompletionRequest", "PASSTHROUGH", "IGNORED", "ValidationError", "router_params",
           "validation_problem"]

#: Parameters handed to ``Router.acomplete`` (and from there to the provider) as they are.
PASSTHROUGH = ("temperature", "top_p", "max_tokens", "max_completion_tokens", "stop", "response_format",
               "tools", "tool_choice", "parallel_tool_calls", "seed", "presence_penalty",
               "frequency_penalty", "logit_bias", "logprobs", "top_logprobs", "functions", "function_call")

#: OpenAI-platform parameters accepted and ignored (they have no meaning behind the cascade).
IGNORED = ("store", "metadata", "service_tier", "safety_identifier", "prompt_cache_key")

Stop = Union[str, Annotated[list[str], Field(max_length=4)], None]
INT32_MAX, INT64_MIN, INT64_MAX = 2**31 - 1, -2**63, 2**63 - 1
MetadataKey = Annotated[str, StringConstraints(max_length=64)]
MetadataValue = Annotated[str, StringConstraints(max_length=512)]
Bias = Annotated[float, Field(ge=-100, le=100)]


def _integral(value: Any) -> Any:
    """JSON has one number type: ``13.0`` is the integer 13 (as JSON Schema says), ``13.5`` is not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


def Int(ge: int, le: int) -> Any:
    """An integer in [ge, le] that may be written 13.0 (the bounds inside the Annotated, so that the
    JSON schema states them as minimum / maximum)."""
    return Annotated[int, Field(ge=ge, le=le), BeforeValidator(_integral)]


class FunctionName(TypedDict):
    name: str


class NamedToolChoice(TypedDict):
    type: Literal["function"]
    function: FunctionName


ToolChoice = Union[Literal["none", "auto", "required"], NamedToolChoice, None]
FunctionCall = Union[Literal["none", "auto"], FunctionName, None]


class ChatCompletionRequest(BaseModel):
    """The OpenAI chat-completions request, as far as the cascade serves it."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    model: str
    messages: list[dict[str, Any]] = Field(min_length=1)
    stream: bool = False
    stream_options: dict[str, Any] | None = None
    user: str = Field(default=None, max_length=256)      # type: ignore[assignment] - absent, never null
    n: Annotated[Literal[1], BeforeValidator(_integral)] | None = None
    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, ge=0, le=1)
    max_tokens: Int(1, INT32_MAX) | None = None
    max_completion_tokens: Int(1, INT32_MAX) | None = None
    stop: Stop = None
    response_format: dict[str, Any] | None = None
    tools: list[dict[str, Any]] | None = None
    tool_choice: ToolChoice = None
    parallel_tool_calls: bool | None = None
    seed: Int(INT64_MIN, INT64_MAX) | None = None
    presence_penalty: float | None = Field(default=None, ge=-2, le=2)
    frequency_penalty: float | None = Field(default=None, ge=-2, le=2)
    logit_bias: dict[str, Bias] | None = None
    logprobs: bool | None = None
    top_logprobs: Int(0, 20) | None = None
    functions: list[dict[str, Any]] | None = None
    function_call: FunctionCall = None
    store: bool | None = None
    metadata: Annotated[dict[MetadataKey, MetadataValue], Field(max_length=16)] | None = None
    service_tier: str | None = None
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    @property
    def include_usage(self) -> bool:
        return bool(self.stream_options and self.stream_options.get("include_usage"))


def router_params(req: ChatCompletionRequest) -> dict[str, Any]:
    """The keyword arguments for ``Router.acomplete`` besides ``messages`` and ``user``."""
    params = {name: value for name in PASSTHROUGH if (value := getattr(req, name)) is not None}
    if req.stream:
        params["stream"] = True
    return params


def validation_problem(exc: ValidationError) -> tuple[str, str | None, str]:
    """(message, param, code) for the first error of a pydantic ValidationError."""
    errors = exc.errors(include_url=False, include_input=False)
    first = errors[0]
    loc = _path(first.get("loc", ()))
    branches = [e for e in errors if e.get("loc", ())[:1] == first.get("loc", ())[:1] and len(e.get("loc", ())) > 1]
    if len(branches) > 1 and first.get("type") not in ("extra_forbidden", "missing"):
        return _union_problem(branches)
    if first.get("type") == "extra_forbidden":
        return f"Unrecognized request argument supplied: {loc}", loc or None, "unsupported_parameter"
    if first.get("type") == "missing":
        return f"Missing required parameter: {loc!r}.", loc or None, "missing_required_parameter"
    if loc == "n":
        return "Only n=1 is supported by the cascade.", "n", "unsupported_value"
    return f"Invalid value for {loc!r}: {first.get('msg', 'invalid')}.", loc or None, "invalid_value"


def _path(loc: Any) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def _union_problem(branches: list[Any]) -> tuple[str, str | None, str]:
    """A field of several accepted shapes (``stop``: a string or a list of strings): name the field and
    what each shape wanted, not pydantic's tag of the first shape tried."""
    field = str(branches[0]["loc"][0])
    wanted: list[str] = []
    for e in branches:
        if e.get("type") == "none_required":
            continue
        where = _path(e["loc"][2:])
        text = f"{where}: {e.get('msg')}" if where else str(e.get("msg"))
        if text not in wanted:
            wanted.append(text)
    return f"Invalid value for {field!r}: {' or '.join(wanted)}.", field, "invalid_value"
