"""Embedding calls for the semantic cache, through a catalog model's transport (litellm's
``aembedding``, or the direct transport's POST to ``/embeddings``), and cosine similarity."""
from __future__ import annotations

import asyncio
import math
import os
from typing import Any, Sequence

from cascade.calls import CallSpec


async def litellm_embed(call: CallSpec, text: str) -> tuple[list[float], int]:
    """(vector, prompt tokens) of ``text`` from ``litellm.aembedding``."""
    from cascade.providers import load_litellm
    kwargs: dict[str, Any] = {"model": call.litellm_model, "input": [text], "timeout": call.timeout_s}
    if call.api_base is not None:
        kwargs["api_base"] = call.api_base
    if call.api_key is not None:
        kwargs["api_key"] = call.api_key
    resp = await load_litellm().aembedding(**kwargs)
    return _vector_of(resp.data[0]), _tokens_of(getattr(resp, "usage", None))


async def direct_embed(call: CallSpec, text: str) -> tuple[list[float], int]:
    """(vector, prompt tokens) of ``text`` from the provider's OpenAI ``/embeddings`` route."""
    from cascade import direct
    provider, _, name = call.litellm_model.partition("/")
    env_base, default_base, key_env = direct.PROVIDERS[provider]
    base = (call.api_base or os.environ.get(env_base) or default_base).rstrip("/")
    key = call.api_key or os.environ.get(key_env)
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    async with asyncio.timeout(call.timeout_s):
        async with direct._session().post(base + "/embeddings", json={"model": name, "input": [text]},
                                          headers=headers) as resp:
            if resp.status >= 300:
                raise direct.ProviderHTTPError(resp.status, {}, (await resp.text())[:512])
            payload = await resp.json()
    return _vector_of(payload["data"][0]), _tokens_of(payload.get("usage"))


def _vector_of(item: Any) -> list[float]:
    vector = item["embedding"] if isinstance(item, dict) else getattr(item, "embedding")
    out = [float(x) for x in vector]
    if not out or not all(math.isfinite(x) for x in out):
        raise ValueError("the embedding model returned an empty or non-finite vector")
    return out


def _tokens_of(usage: Any) -> int:
    got = usage.get("prompt_tokens") if isinstance(usage, dict) else getattr(usage, "prompt_tokens", None)
    return int(got) if isinstance(got, int) else 0


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity (0 for vectors of different lengths or a zero vector)."""
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b))
    na, nb = math.sqrt(sum(x * x for x in a)), math.sqrt(sum(y * y for y in b))
    return dot / (na * nb) if na and nb else 0.0
