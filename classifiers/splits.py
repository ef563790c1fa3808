"""The one deterministic train / calibration / test split, by prompt.

A prompt's split is a pure function of its text (whitespace-normalised): blake2b of the text ->
a number in [0, 100) -> train (< 70), calibration (< 85) or test. Identical prompt texts that
appear under different ids (MMLU-Pro has 159) therefore always land in the same split, and
training, calibration, replay and the benchmarks all agree on which prompts are held out.
Never tune anything on ``test``.
"""
from __future__ import annotations

import hashlib
from typing import Iterable, Literal

import numpy as np

Split = Literal["train", "calibration", "test"]
SPLITS: tuple[Split, ...] = ("train", "calibration", "test")
#: cumulative upper bounds (percent) of each split
BOUNDS: tuple[int, int, int] = (70, 85, 100)


def split_key(prompt: str) -> str:
    """The text a prompt's split is computed from: its whitespace-normalised form."""
    return " ".join(prompt.split())


def split_bucket(prompt: str) -> int:
    """A stable number in [0, 100) for the prompt (independent of Python's hash seed)."""
    digest = hashlib.blake2b(split_key(prompt).encode("utf-8", "surrogatepass"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % 100


def split_of(prompt: str) -> Split:
    """``"train"``, ``"calibration"`` or ``"test"`` for this prompt (70 / 15 / 15)."""
    bucket = split_bucket(prompt)
    for name, bound in zip(SPLITS, BOUNDS):
        if bucket < bound:
            return name
    raise AssertionError("unreachable")  # pragma: no cover


def split_array(prompts: Iterable[str]) -> np.ndarray:
    """Split names of many prompts, as a numpy array of str."""
    return np.array([split_of(p) for p in prompts], dtype="<U11")


def split_mask(prompts: Iterable[str], *names: Split) -> np.ndarray:
    """Boolean mask of the prompts that fall in any of ``names``."""
    for name in names:
        if name not in SPLITS:
            raise ValueError(f"unknown split {name!r}; expected one of {SPLITS}")
    return np.isin(split_array(prompts), list(names))
