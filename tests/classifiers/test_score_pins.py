"""The shipped scorers' numbers are pinned: any change to features, hashing or inference that moves a
score by more than 1e-9 fails here.

``score_pins.json`` holds reference scores of every shipped classifier (``default``, ``mmlu-pro``,
``heuristic``) and of the ``default`` answer checker for the hand-written edge cases below and for a
fixed-seed draw of 300 prompts from the four data folders, each paired with a recorded answer (the
texts stay in ``../shared/data``; the pins hold a digest of the draw). For some of them it also pins
the raw features (the structural vector and a hashed sum, with and without character n-grams).

Regenerate only when a score is *meant* to change (a retrained artifact, a new feature), and say so::

    python -m tests.classifiers.test_score_pins --write
"""
from __future__ import annotations

import hashlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import classifiers
from classifiers.features import FeatureSpec, Single

PINS = Path(__file__).with_name("score_pins.json")
FOLDERS = ("mmlu_pro", "routellm_mmlu", "routerbench_subset", "llmrouter")
PER_FOLDER = 75
SEED = 20261201
WITH_FEATURES = 5            # data rows per folder whose raw features are pinned too
TOL = 1e-9
CLASSIFIERS = ("default", "mmlu-pro", "heuristic")
# two featurisers: the shipped one (word n-grams) and one with character n-grams and a short clip
FEATURE_SPECS = {"shipped": FeatureSpec(char_ngrams=()), "chars": FeatureSpec(bits=12, head=96, tail=48)}

# hand-written edge cases: (prompt, answer)
EDGE = [
    ("", ""),
    ("hi", "hello"),
    ("Prove that the square root of 2 is irrational, step by step.", "Suppose sqrt(2) = p/q... The answer is (B)."),
    ("Which of these is a mammal?\nOptions:\nA. shark\nB. whale\nC. trout\nD. eel", "The answer is (B)."),
    ("Ünïcödé ✓ 数学の問題: 2+2=? \U0001f600", "4 ✓"),
    ("x" * 20_000, "y" * 9_000),
    ("def f(x):\n    return x ** 2\n# what does f(3) return?", "It returns 9; f(3) = 3 ** 2."),
    ("\x00\ud800 lone surrogate and NUL", "\ud800"),
    ("(A) one\n(B) two\nC) three\nD. four\n", "Answer: C"),
    ("line\n((A) no\n(A)no\nA.no\nA.\nB.\r\nC) x\n(D)\x00y", "I'm sorry, but I can't help with that."),
    ("Q?\nOptions:\nA. 1\nB. 2\nJ. 3\nK. 4", "maybe 4, however I might be wrong; the answer is (J)"),
    ("  MIXED case WORDS, Numbers 12,345.6 and $x^2 + {y}_[3]; #tag `code` ??\n\n\t\f\v end  ",
     "Approximately 12,345.6 × 10^3. Wait, let me recheck: the answer is (A)."),
    ("word " * 700 + "\n".join(f"{chr(65 + i)}. option {i}" for i in range(10)), "The answer is (C)." * 50),
    ("é" * 1500 + "?" * 10 + "Z" * 10, "A"),
    ("supercalifragilisticexpialidocious antidisestablishmentarianism a b c d e f g h", "ok"),
]


def _prompts(data: Path, folder: str) -> dict[str, str]:
    import pyarrow.parquet as pq
    t = pq.read_table(data / folder / "prompts.parquet", columns=["prompt_id", "prompt"])
    return dict(zip(t.column("prompt_id").to_pylist(), t.column("prompt").to_pylist()))


def _responses(data: Path, folder: str) -> dict[tuple[str, str], str]:
    import pyarrow.parquet as pq
    t = pq.read_table(data / folder / "responses.parquet", columns=["prompt_id", "model", "response"])
    return {(p, m): r or "" for p, m, r in zip(*(t.column(c).to_pylist() for c in ("prompt_id", "model", "response")))}


def draw_rows(data: Path) -> list[dict[str, Any]]:
    """The fixed-seed draw: per folder, prompt ids and the (folder, prompt_id, model) of an answer
    (the prompt's own recorded answer where the folder has responses, else a random MMLU-Pro one)."""
    rng = np.random.default_rng(SEED)
    pool = {f: _responses(data, f) for f in FOLDERS if (data / f / "responses.parquet").is_file()}
    by_prompt: dict[str, dict[str, list[str]]] = {}
    for folder, responses in pool.items():
        index = by_prompt.setdefault(folder, {})
        for pid, model in sorted(responses):
            index.setdefault(pid, []).append(model)
    fallback = sorted(pool["mmlu_pro"])
    rows = []
    for folder in FOLDERS:
        ids = sorted(_prompts(data, folder))
        for i in rng.choice(len(ids), size=PER_FOLDER, replace=False).tolist():
            models = by_prompt.get(folder, {}).get(ids[i])
            if models:
                ref = [folder, ids[i], models[int(rng.integers(len(models)))]]
            else:
                ref = ["mmlu_pro", *fallback[int(rng.integers(len(fallback)))]]
            rows.append({"folder": folder, "prompt_id": ids[i], "answer": ref})
    return rows


def resolve(data: Path, rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The (prompt, answer) texts of the stored rows."""
    prompts = {f: _prompts(data, f) for f in {r["folder"] for r in rows}}
    responses = {f: _responses(data, f) for f in {r["answer"][0] for r in rows}}
    return [(prompts[r["folder"]][r["prompt_id"]], responses[r["answer"][0]][tuple(r["answer"][1:])]) for r in rows]


def feature_values(text: str) -> dict[str, list[float]]:
    """Structural vector and hashed sum (a fixed random table) of ``text`` under each featuriser."""
    out = {}
    for name, spec in FEATURE_SPECS.items():
        table = np.random.default_rng(7).normal(size=spec.n_buckets)
        single = Single(text, spec)
        out[name] = [float(v) for v in single.struct_list()] + [float(single.hashed_total(table))]
    return out


def scores(pairs: list[tuple[str, str]]) -> dict[str, list[float]]:
    """Every shipped scorer's score of each pair, by the single-text path."""
    out = {name: [float(classifiers.load_classifier(name).score_one(p)) for p, _ in pairs] for name in CLASSIFIERS}
    checker = classifiers.load_answer_checker("default")
    out["checker"] = [float(checker.score_one(p, a)) for p, a in pairs]
    return out


def _digest(value: Any) -> str:
    return hashlib.sha256(json.dumps(value).encode("ascii")).hexdigest()


def _feature_rows(n_data: int) -> list[int]:
    """Which pairs (edge cases first, then the data rows) have their raw features pinned."""
    return list(range(len(EDGE))) + [len(EDGE) + i for i in range(n_data) if i % PER_FOLDER < WITH_FEATURES]


@pytest.fixture(scope="module")
def pins() -> dict[str, Any]:
    return json.loads(PINS.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def pairs(pins, data_root) -> list[tuple[str, str]]:
    rows = draw_rows(data_root)
    assert _digest(rows) == pins["draw_sha256"], "the fixed-seed draw changed (regenerate the pins)"
    return EDGE + resolve(data_root, rows)


def _assert_close(got: dict[str, list[float]], want: dict[str, list[float]], n: int) -> None:
    for name in (*CLASSIFIERS, "checker"):
        diff = np.abs(np.asarray(got[name]) - np.asarray(want[name][:n]))
        assert diff.max() <= TOL, f"{name}: {int((diff > TOL).sum())} scores moved (worst by {diff.max():.3g})"


def _assert_features(pins: dict[str, Any], pairs: list[tuple[str, str]]) -> None:
    for i, want in zip(pins["feature_rows"], pins["features"]):
        if i < len(pairs):
            got = feature_values(pairs[i][0])
            for name in FEATURE_SPECS:
                assert np.allclose(got[name], want[name], rtol=TOL, atol=TOL), f"pair {i}: {name} features changed"


def test_edge_cases_score_as_pinned(pins):
    assert pins["edge_sha256"] == _digest(EDGE), "EDGE changed since the pins were written"
    _assert_close(scores(EDGE), pins["scores"], len(EDGE))
    _assert_features(pins, EDGE)


def test_data_features_are_pinned(pins, pairs):
    _assert_features(pins, pairs)


def test_data_prompts_score_as_pinned(pins, pairs):
    _assert_close(scores(pairs), pins["scores"], len(pairs))


def test_batch_scores_match_the_pins(pins, pairs):
    prompts, answers = [p for p, _ in pairs], [a for _, a in pairs]
    got = {name: classifiers.load_classifier(name).score(prompts) for name in CLASSIFIERS}
    got["checker"] = classifiers.load_answer_checker("default").score(prompts, answers)
    _assert_close(got, pins["scores"], len(pairs))


def write(data: Path) -> None:
    rows = draw_rows(data)
    pairs = EDGE + resolve(data, rows)
    chosen = _feature_rows(len(rows))
    body = {"about": "reference scores and features; see tests/classifiers/test_score_pins.py",
            "edge_sha256": _digest(EDGE), "draw_sha256": _digest(rows), "scores": scores(pairs),
            "feature_rows": chosen, "features": [feature_values(pairs[i][0]) for i in chosen]}
    PINS.write_text(json.dumps(body, separators=(",", ":")) + "\n", encoding="ascii")


if __name__ == "__main__":  # pragma: no cover
    if sys.argv[1:] != ["--write"]:
        raise SystemExit(__doc__)
    from tests.conftest import DATA
    write(DATA)
    print(f"wrote {PINS}")
