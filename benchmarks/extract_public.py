"""Our final-answer extractor and prompt kinds on public math, code-output and chat traffic.

Used by ``benchmarks/bench_extract.py`` (``--gsm8k DIR``, ``--cruxeval DIR``, ``--kinds DIR``):

* GSM8K (the outcome folder of ``cascade data download routellm_gsm8k``): per model, on the answers its
  scorer judged right, how often ``extract(text, "auto", prompt)`` equals GSM8K's gold number (recall) and how often it
  reads nothing; on the answers judged wrong, how often it still equals the gold number (it should not:
  precision) and how often it reads nothing. RouteLLM's scorer reads the last run of digits, so it judges
  "... = $5.00." wrong when the gold number is 5 (it read "00"), and "So, there are 12 bales of hay left
  after a 6 hour day." wrong (it read 6): the "misread" column counts such wrong labels (:func:`misread`,
  which does not use our extractor), and "==gold*" is the precision figure on the wrong answers without them.
* CRUXEval (a folder holding ``cruxeval.jsonl``, the benchmark's ``crux_prompts.py`` and CodeLlama's scored
  output predictions ``crux_scored_codellama_output.json``, from a clone of github.com/facebookresearch/cruxeval
  (MIT): ``data/cruxeval.jsonl``, ``prompts.py`` (imported: it holds the prompt templates) and
  ``samples/evaluation_results/sample_scored_codellama-7b_temp0.2_output.json``): the prompt kind of the 800 questions in every
  template, and for each generation whether the literal we read equals the gold output's literal, against
  the benchmark's own True/False (it executes ``assert f(input) == generation``).
* ``--kinds DIR``: the prompt kinds of any outcome folder (MT-Bench, llmrouter, ...).
"""
from __future__ import annotations

import importlib.util
import json
import re
from collections import Counter
from pathlib import Path
from typing import Callable

from cascade.datasets.convert_evals import scorer_number
from classifiers.extract import canonical_number, extract, final_answer_failure, prompt_kind

CRUX_TEMPLATES = ("make_direct_output_prompt", "make_cot_output_prompt", "make_direct_output_prompt_phind",
                  "make_direct_input_prompt", "make_cot_input_prompt")


def _table(folder: Path, name: str) -> dict[str, list]:
    import pyarrow.parquet as pq
    return pq.read_table(folder / f"{name}.parquet").to_pydict()


def kind_counts(prompts: list[str]) -> Counter:
    return Counter(prompt_kind(p) for p in prompts)


def folder_kinds(folder: Path) -> Counter:
    return kind_counts(_table(folder, "prompts")["prompt"])


def gold_number(reference: str) -> str:
    from fractions import Fraction
    return canonical_number(Fraction(reference.replace(",", "")))


_LAST_NUMBER = re.compile(r"-?\d+(?:\.\d+)?")


def _integers(text: str) -> set[str]:
    return {str(int(n)) for n in re.findall(r"\d+", text.replace(",", ""))}


def misread(text: str, gold: str, prompt: str = "") -> bool:
    """Whether RouteLLM's scorer (the last run of digits) misread an answer that states the gold number on
    its last line: the text's last number, decimals included, is gold (it took the "00" of "$5.00"), or the
    last integer is a number the question itself gives while gold is on the last line ("So, there are 12
    bales left after a 6 hour day." read as 6). Independent of our extractor."""
    from fractions import Fraction
    flat = text.replace(",", "")
    found = _LAST_NUMBER.findall(flat)
    if not found:
        return False
    if "." in found[-1] and canonical_number(Fraction(found[-1])) == gold:
        return True
    lines = [line for line in flat.splitlines() if line.strip()]
    scorer = scorer_number(text)            # what RouteLLM's scorer read: the last run of digits
    return scorer != gold and scorer in _integers(prompt) and gold in _integers(lines[-1])


def gsm8k(folder: Path) -> dict[str, Counter]:
    """model -> counts: right / right_gold / right_none, wrong / wrong_gold / wrong_none, the wrong answers
    the scorer misread (``misread``) / the others (``clean``, ``clean_gold``), and the answers that fail the
    answer checker's no_number rule (``unstated``, ``unstated_right``)."""
    prompts = _table(folder, "prompts")
    prompt_of = dict(zip(prompts["prompt_id"], prompts["prompt"]))
    refs = _table(folder, "references")
    gold = {p: gold_number(r) for p, r in zip(refs["prompt_id"], refs["reference"])}
    outcomes = _table(folder, "outcomes")
    score = {(p, m): s for p, m, s in zip(outcomes["prompt_id"], outcomes["model"], outcomes["score"])}
    texts = _table(folder, "responses")
    counts: dict[str, Counter] = {}
    for pid, model, text in zip(texts["prompt_id"], texts["model"], texts["response"]):
        side = "right" if score[(pid, model)] >= 0.5 else "wrong"
        got = extract(text or "", "auto", prompt_of[pid])
        c = counts.setdefault(model, Counter())
        c[side] += 1
        c[f"{side}_gold"] += got == gold[pid]
        c[f"{side}_none"] += got is None
        unstated = final_answer_failure(prompt_of[pid], text or "") is not None
        c["unstated"] += unstated
        c["unstated_right"] += unstated and side == "right"
        if side == "wrong":
            bad = misread(text or "", gold[pid], prompt_of[pid])
            c["misread"] += bad
            c["clean"] += not bad
            c["clean_gold"] += (not bad) and got == gold[pid]
    return counts


def naive_number(text: str) -> str | None:
    """The naive reading: the last number of the text (commas dropped, decimals kept)."""
    from fractions import Fraction
    found = _LAST_NUMBER.findall(text.replace(",", ""))
    return canonical_number(Fraction(found[-1])) if found else None


def gsm8k_agreement(folder: Path) -> dict[str, Counter]:
    """reader -> counts over the prompts with both models' answers: both right (``both``) and how often the
    reader says they agree (``both_agree``); the first (cheap) model wrong (``cheap_wrong``) and how often
    the reader still says they agree (``cheap_wrong_agree``)."""
    from classifiers.extract import agree
    prompts = _table(folder, "prompts")
    prompt_of = dict(zip(prompts["prompt_id"], prompts["prompt"]))
    meta = json.loads((folder / "meta.json").read_text(encoding="utf-8"))
    outcomes = _table(folder, "outcomes")
    score = {(p, m): s for p, m, s in zip(outcomes["prompt_id"], outcomes["model"], outcomes["score"])}
    texts = _table(folder, "responses")
    text = {(p, m): t or "" for p, m, t in zip(texts["prompt_id"], texts["model"], texts["response"])}
    readers = {"ours (agree, auto)": lambda a, b, q: agree(a, b, "auto", q) is True,
               "naive last number": lambda a, b, q: naive_number(a) is not None and naive_number(a) == naive_number(b)}
    counts = {name: Counter() for name in readers}
    for pid, prompt in prompt_of.items():
        cheap, strong = (pid, meta["cheap"]), (pid, meta["strong"])
        if cheap not in text or strong not in text:
            continue
        side = "both" if score[cheap] >= 0.5 and score[strong] >= 0.5 else "cheap_wrong" if score[cheap] < 0.5 else ""
        for name, reader in readers.items():
            if side:
                counts[name][side] += 1
                counts[name][f"{side}_agree"] += reader(text[cheap], text[strong], prompt)
    return counts


def print_gsm8k(folder: Path) -> None:
    print(f"GSM8K ({folder}): extract(text, 'auto', prompt) vs GSM8K's gold number")
    print(f"{'model':38s} {'right':>6s} {'==gold':>8s} {'none':>7s}   {'wrong':>6s} {'==gold':>8s} {'none':>7s} "
          f"{'misread':>8s} {'==gold*':>8s}")
    counts = sorted(gsm8k(folder).items())
    for model, c in counts:
        r, w, w2 = max(c["right"], 1), max(c["wrong"], 1), max(c["clean"], 1)
        print(f"{model:38s} {c['right']:6d} {c['right_gold'] / r:8.2%} {c['right_none'] / r:7.2%}   "
              f"{c['wrong']:6d} {c['wrong_gold'] / w:8.2%} {c['wrong_none'] / w:7.2%} {c['misread']:8d} "
              f"{c['clean_gold'] / w2:8.2%}")
    for model, c in counts:
        stated, n = c["right"] + c["wrong"] - c["unstated"], c["unstated"]
        print(f"{model}: {n} answers state no final number (rule no_number), right {c['unstated_right'] / max(n, 1):.1%};"
              f" the other {stated} right {(c['right'] - c['unstated_right']) / max(stated, 1):.1%}")
    print("agreement of the two models' final answers (an agreement check's view):")
    for name, c in gsm8k_agreement(folder).items():
        print(f"  {name:22s} both right: agree {c['both_agree'] / max(c['both'], 1):6.2%} of {c['both']};  "
              f"cheap wrong: agree {c['cheap_wrong_agree'] / max(c['cheap_wrong'], 1):6.2%} of {c['cheap_wrong']}")
    prompts = list(_table(folder, "prompts")["prompt"])
    print(f"prompt kinds: {dict(sorted(kind_counts(prompts).items()))}")
    shares = straight_shares(prompts)
    print("sent straight to the strong model: " + ", ".join(f"{policy} {share:.1%}" for policy, share in shares.items()))


def crux_templates(folder: Path) -> dict[str, Callable]:
    spec = importlib.util.spec_from_file_location("crux_prompts", folder / "crux_prompts.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {name: getattr(module, name) for name in CRUX_TEMPLATES}


def crux_rows(folder: Path) -> list[dict]:
    with (folder / "cruxeval.jsonl").open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def cruxeval(folder: Path) -> tuple[dict[str, list[str]], Counter]:
    """(template -> the questions' prompts in it, counts of (extracted literal == gold literal, benchmark's
    verdict))."""
    from classifiers.extract_output import literal        # gold outputs in the form extract() writes them
    rows, templates = crux_rows(folder), crux_templates(folder)
    prompts = {name: [make((r["code"], r["input"])) for r in rows] for name, make in templates.items()}
    scored = json.loads((folder / "crux_scored_codellama_output.json").read_text(encoding="utf-8"))
    prompt = {r["id"]: text for r, text in zip(rows, prompts["make_direct_output_prompt"])}
    gold = {r["id"]: literal(r["output"]) for r in rows}
    verdicts: Counter = Counter()
    for sample, generations in scored["raw_generations"].items():
        for text, ok in zip(generations, scored["raw_scored_generations"][sample]):
            got = extract(text, "auto", prompt[sample])
            verdicts[("none" if got is None else got == gold[sample], bool(ok))] += 1
    return prompts, verdicts


def straight_shares(prompts: list[str], policies: tuple[str, ...] = ("default", "quality-match")) -> dict[str, float]:
    """Per built-in policy, the share of ``prompts`` its classifier sends straight to the strong model
    (score >= its first threshold), before any answer is checked."""
    import numpy as np

    from classifiers import load_classifier
    from policies.loader import load_policy
    out = {}
    for name in policies:
        routing = load_policy(name).routing
        score = np.asarray(load_classifier(routing.classifier).score(prompts), dtype=float)
        out[name] = float((score >= routing.thresholds[0]).mean())
    return out


def print_cruxeval(folder: Path) -> None:
    prompts, verdicts = cruxeval(folder)
    print(f"CRUXEval ({folder}): prompt kinds per template; share sent straight to the strong model")
    for name, texts in prompts.items():
        said = ", ".join(f"{policy} {share:.1%}" for policy, share in straight_shares(texts).items())
        print(f"  {name:34s} {dict(sorted(kind_counts(texts).items()))}  straight: {said}")
    total = sum(verdicts.values())
    same = verdicts[(True, True)] + verdicts[(False, False)] + verdicts[("none", False)]
    print(f"CodeLlama-7B output predictions ({total}, direct-output prompt): extracted literal == gold literal")
    print(f"  benchmark True:  equal {verdicts[(True, True)]:5d}  differ {verdicts[(False, True)]:5d}  "
          f"none {verdicts[('none', True)]:5d}")
    print(f"  benchmark False: equal {verdicts[(True, False)]:5d}  differ {verdicts[(False, False)]:5d}  "
          f"none {verdicts[('none', False)]:5d}")
    print(f"  our verdict (equal: right; differ or none: not right) = benchmark's: {same / total:.2%}")


def print_kinds(folder: Path) -> None:
    print(f"prompt kinds of {folder}: {dict(sorted(folder_kinds(folder).items()))}")
