"""The transport seam: how one catalog model is called. The rest of the runtime never knows which
transport answered (httpx's shape: the fake lives at the seam, not in patched internals)::

    Transport (Protocol)          acall(CallSpec) -> CallResult
                                  astream(CallSpec) -> an opened stream (async iterator of chunks,
                                                       ``await .result()`` / ``.final()`` -> CallResult)
    ├── LiteLLMTransport          every provider litellm knows, streaming included
    ├── DirectTransport           OpenAI-compatible POST on a pooled aiohttp session (deepseek/, openai/),
    │                             no litellm; streams through litellm
    └── MockTransport(handler)    tests and demos: ``handler(CallSpec)`` returns a CallResult, an OpenAI
                                  chat.completion dict or a str (the answer), or raises

``TRANSPORTS`` maps the names a catalog uses (``transport: litellm | direct``) to factories;
:func:`transports_for` chooses one per catalog model, once, when a Router is built.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

from policies.errors import InvalidRequestError
from policies.schema import Policy

from cascade.calls import CallResult, CallSpec, check_call_args
from cascade.provider_errors import map_provider_error


@runtime_checkable
class Transport(Protocol):
    name: str
    needs_litellm: bool          # its first call imports litellm (the Router warms it up off the clock)
    streams_with_litellm: bool   # its streams do
    needs_credentials: bool      # it calls a provider that wants an API key

    async def acall(self, call: CallSpec) -> CallResult: ...

    async def astream(self, call: CallSpec) -> Any: ...

    async def aclose(self) -> None: ...


class LiteLLMTransport:
    name, needs_litellm, streams_with_litellm, needs_credentials = "litellm", True, True, True

    async def acall(self, call: CallSpec) -> CallResult:
        from cascade.providers import acall
        return await acall(**call.kwargs())

    async def astream(self, call: CallSpec) -> Any:
        from cascade.providers import acall
        return await acall(stream=True, **call.kwargs())

    async def aembed(self, call: CallSpec, text: str) -> tuple[list[float], int]:
        """(vector, prompt tokens) of ``text`` (the semantic cache's embeddings)."""
        from cascade.cache.embeddings import litellm_embed
        return await litellm_embed(call, text)

    async def aclose(self) -> None:
        return None


class DirectTransport:
    name, needs_litellm, streams_with_litellm, needs_credentials = "direct", False, True, True

    def __init__(self, streaming: Transport | None = None) -> None:
        self._streaming = streaming or LiteLLMTransport()
        _import_in_background("cascade.direct", "aiohttp")   # ~0.3 s of imports, off the first request


    async def acall(self, call: CallSpec) -> CallResult:
        from cascade import direct
        return await direct.acall(**call.kwargs())

    async def astream(self, call: CallSpec) -> Any:
        return await self._streaming.astream(call)

    async def aembed(self, call: CallSpec, text: str) -> tuple[list[float], int]:
        from cascade.cache.embeddings import direct_embed
        return await direct_embed(call, text)

    async def aclose(self) -> None:
        import sys
        direct = sys.modules.get("cascade.direct")
        if direct is not None:
            await direct.aclose()       # this event loop's pooled session


def _import_in_background(*modules: str) -> None:
    """Start importing ``modules`` in a daemon thread (the import lock makes a later import wait for it,
    never run it twice); nothing is done when they are imported already."""
    import sys
    import threading
    if all(m in sys.modules for m in modules):
        return

    def load() -> None:
        import importlib
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # noqa: BLE001 - the real import, on first use, reports it
                return
    threading.Thread(target=load, name="cascade-import", daemon=True).start()


Handler = Callable[[CallSpec], Any]


class MockTransport:
    """Answers every call with ``handler(call)`` (sync or async): a :class:`CallResult`, an OpenAI
    chat.completion dict, or a str taken as the answer text. Errors the handler raises reach the
    cascade as they are (raise :mod:`policies.errors` provider errors to script failures)."""

    name, needs_litellm, streams_with_litellm, needs_credentials = "mock", False, False, False

    def __init__(self, handler: Handler) -> None:
        self.handler = handler
        self.calls: list[CallSpec] = []

    async def acall(self, call: CallSpec) -> CallResult:
        check_call_args(call.messages, call.params)
        self.calls.append(call)
        started = time.perf_counter()
        try:
            got = self.handler(call)
            if asyncio.iscoroutine(got):
                got = await got
            if isinstance(got, CallResult):
                return got
            from cascade.direct import result_of_payload
            payload = got if isinstance(got, dict) else _completion(str(got))
            return result_of_payload(payload, started=started, call=call)
        except Exception as exc:  # noqa: BLE001 - mapped like a provider's; CancelledError passes through
            raise map_provider_error(exc, model=call.model_alias, secrets=[call.api_key]) from exc

    async def astream(self, call: CallSpec) -> Any:
        raise InvalidRequestError("MockTransport does not stream")

    async def aclose(self) -> None:
        return None


def _completion(text: str) -> dict[str, Any]:
    return {"id": "mock", "object": "chat.completion", "created": 0, "model": "mock",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}]}


TRANSPORTS: dict[str, Callable[[], Transport]] = {
    "litellm": LiteLLMTransport,
    "direct": DirectTransport,
}


def transports_for(policy: Policy, override: Transport | None = None) -> dict[str, Transport]:
    """The transport of every catalog model: ``override`` for all of them, else the one its catalog
    entry names (one shared instance per name)."""
    if override is not None:
        return {alias: override for alias in policy.catalog}
    made: dict[str, Transport] = {}
    for spec in policy.catalog.values():
        if spec.transport not in made:
            made[spec.transport] = TRANSPORTS[spec.transport]()
    return {alias: made[spec.transport] for alias, spec in policy.catalog.items()}


async def aclose_all(transports: Mapping[str, Transport]) -> None:
    for transport in {id(t): t for t in transports.values()}.values():
        await transport.aclose()


__all__ = ["Transport", "LiteLLMTransport", "DirectTransport", "MockTransport", "TRANSPORTS", "transports_for",
           "aclose_all", "CallSpec", "CallResult"]
