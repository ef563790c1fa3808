"""The fake provider's ``POST /v1/embeddings``: deterministic vectors, a hashed bag of words.

Each lower-cased word adds +1 or -1 (by a hash) to one of :data:`DIM` coordinates (by another), and
the vector is scaled to unit length: texts with the same words get the same vector (cosine 1),
texts sharing most of their words are close, unrelated texts are near-orthogonal.
"""
from __future__ import annotations

import hashlib
import math
import re

DIM = 256
_WORD = re.compile(r"\w+", re.UNICODE)


def bag_of_words_vector(text: str, dim: int = DIM) -> list[float]:
    vector = [0.0] * dim
    for word in _WORD.findall(text.lower()):
        h = hashlib.sha256(word.encode("utf-8")).digest()
        vector[int.from_bytes(h[:4], "big") % dim] += 1.0 if h[4] & 1 else -1.0
    norm = math.sqrt(sum(x * x for x in vector))
    return [x / norm for x in vector] if norm else vector


def embeddings_payload(body: dict) -> dict:
    """The OpenAI embeddings response to ``body`` (``input``: a string or a list of strings)."""
    texts = body.get("input")
    texts = [texts] if isinstance(texts, str) else list(texts or [])
    data = [{"object": "embedding", "index": i, "embedding": bag_of_words_vector(str(t))} for i, t in enumerate(texts)]
    tokens = sum(len(_WORD.findall(str(t))) for t in texts)
    return {"object": "list", "data": data, "model": str(body.get("model", "")),
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
