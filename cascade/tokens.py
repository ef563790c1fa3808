"""Token counting with the DeepSeek tokenizer that litellm bundles, read without importing litellm.

``importlib.util.find_spec`` locates the installed litellm package without executing it; the tokenizer
file is loaded once (about 0.3 s) on first use with the ``tokenizers`` library.
"""
from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from policies.errors import ConfigError

TOKENS_PER_MESSAGE = 4          # role + separators, as chat templates add
TOKENS_PER_IMAGE = 1_024        # a conservative per-image estimate for budgeting and fit
# Per document page: DeepSeek-OCR-2's model card gives 256-1,120 visual tokens per page; the planner
# takes the worst case, so context fit and the budget reservation never fall short.
TOKENS_PER_DOCUMENT_PAGE = 1_120
_lock = threading.Lock()
# From this length on the text is encoded with encode_batch, which releases the GIL while it works (encode
# holds it: a 1 MB prompt would freeze every other thread, the event loop's included, for ~2 s).
GIL_FREE_CHARS = 4_096


@lru_cache(maxsize=1)
def deepseek_tokenizer_path() -> Path:
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigError("litellm is not installed: cannot find the bundled DeepSeek tokenizer")
    path = Path(list(spec.submodule_search_locations)[0]) / "litellm_core_utils" / "tokenizers" / "deepseek_tokenizer.json"
    if not path.is_file():
        raise ConfigError(f"the DeepSeek tokenizer is missing from the litellm install ({path})")
    return path


_tokenizer: Any = None


def _get_tokenizer() -> Any:
    global _tokenizer
    if _tokenizer is None:
        with _lock:
            if _tokenizer is None:
                from tokenizers import Tokenizer
                _tokenizer = Tokenizer.from_file(str(deepseek_tokenizer_path()))
    return _tokenizer


def count_text_tokens(text: str) -> int:
    if not text:
        return 0
    if len(text) < GIL_FREE_CHARS:
        return len(_get_tokenizer().encode(text, add_special_tokens=False).ids)
    return len(_get_tokenizer().encode_batch([text], add_special_tokens=False)[0].ids)


def text_token_bound(text: str) -> int:
    """An upper bound of the DeepSeek token count, in O(1) for ASCII: the tokenizer is byte-level BPE,
    so every token covers at least one UTF-8 byte."""
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogatepass"))


def count_prompt_tokens(text: str, *, n_messages: int, n_images: int = 0, document_pages: int = 0,
                        exact: bool = True) -> int:
    """Tokens of a whole conversation: its text, per-message overhead and an estimate per image and
    per document page. ``exact=False`` returns the byte bound instead of running the tokenizer (never
    an under-count)."""
    text_tokens = count_text_tokens(text) if exact else text_token_bound(text)
    return (text_tokens + TOKENS_PER_MESSAGE * n_messages + TOKENS_PER_IMAGE * n_images
            + TOKENS_PER_DOCUMENT_PAGE * document_pages)
