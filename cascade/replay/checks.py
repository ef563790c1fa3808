"""The policy's answer checks, evaluated once over every recorded answer of every rung.

Each check is built with :func:`policies.checks.build_check` and run on the recorded response text
(``Answer(prompt, response)``). ``answer_checker`` checks are scored in one batch per artifact with
:func:`classifiers.load_answer_checker` and compared with the threshold when looked up, so the same table
serves every checker threshold of a sweep. A check that cannot be evaluated (no recorded answer text,
or ``not_truncated`` on data without a finish reason) counts as passed and is marked so; from a trace,
the recorded outcome of the same check is used when the text is not there.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

import numpy as np

from policies.checks import CHECKER_ABSTAINS, Answer, CheckOutcome, build_check
from policies.schema import CheckSpec, Policy

from cascade.replay.data import ReplayData
from cascade.replay.textchecks import TEXT_ONLY, run_text_check

UNEVALUABLE = "not evaluated (no recorded answer text): counted as passed"
CHECKER = "answer_checker"
AGREEMENT = "agreement"
NOT_ASKED = "not asked: another check failed"
Key = tuple


def spec_key(spec: CheckSpec) -> Key:
    """Checks that give the same outcome on the same answer share a key (a checker's threshold is not
    part of it: the table holds the checker's score)."""
    if spec.name == CHECKER:
        return (CHECKER, str(spec.param("artifact", "default")))
    return (spec.name, spec.params)


def outcome_name(spec: CheckSpec) -> str:
    return f"custom:{spec.param('callable')}" if spec.name == "custom" else spec.name


def checker_threshold(spec: CheckSpec) -> float:
    return float(spec.param("threshold", 0.5))


def swept_checker(policy: Policy) -> CheckSpec | None:
    """The answer_checker a sweep or calibration tunes: the first in the policy (escalation.checks,
    then the text rungs' own checks). Every answer_checker of the same artifact shares its threshold."""
    specs = [*policy.escalation.checks, *(c for r in policy.escalation.ladders["text"] for c in (r.checks or ()))]
    return next((s for s in specs if s.name == CHECKER), None)


class CheckTable:
    def __init__(self, policy: Policy, data: ReplayData, tick: Callable[[str], None] | None = None,
                 answer_checkers: Mapping[str, Any] | None = None) -> None:
        self.data = data
        self._checkers = dict(answer_checkers or {})
        self.rung_specs: list[tuple[CheckSpec, ...]] = [policy.checks_for(r) for r in policy.escalation.ladders["text"]]
        self.aliases = data.aliases
        self._passed: dict[tuple[Key, int], np.ndarray] = {}
        self._evaluable: dict[tuple[Key, int], np.ndarray] = {}
        self._score: dict[tuple[Key, int], np.ndarray] = {}
        self._abstains: dict[tuple[Key, int], np.ndarray] = {}   # the answer checker cannot judge the answer
        self._asks: dict[int, np.ndarray] = {}         # rung -> (N,) its agreement check would call the second model
        self._consult_nano: dict[int, np.ndarray] = {}  # rung -> (N,) what that call cost (0: none recorded)
        self._parallel: dict[int, bool] = {}
        self._reason: dict[tuple[Key, int], dict[int, str]] = {}
        self._lookups: dict[tuple[int, int], tuple[CheckSpec, tuple]] = {}
        self._score_checkers()
        for r, specs in enumerate(self.rung_specs):
            unique = list({spec_key(s): s for s in specs}.values())
            for spec in unique:
                if spec.name == AGREEMENT:
                    self._agreement(spec, r)
            self._run_checks([s for s in unique if s.name not in (CHECKER, AGREEMENT)], r)
            if tick:
                tick(f"checks on {self.aliases[r]}")

    # ---- building --------------------------------------------------------------------------------
    def _texts(self, r: int) -> list[str | None]:
        return self.data.responses[r] if self.data.responses is not None else [None] * len(self.data)

    def _recorded(self, r: int, i: int, name: str) -> tuple[bool, float | None] | None:
        rec = self.data.recorded_checks
        found = rec[r][i] if rec is not None else None
        return found.get(name) if found else None

    def _run_checks(self, specs: list[CheckSpec], r: int) -> None:
        """Run every text check of rung ``r`` on each recorded answer: the checks that read the text alone
        once per distinct text (:mod:`cascade.replay.textchecks`), the others once per answer."""
        n = len(self.data)
        checks = [build_check(s.name, dict(s.params)) for s in specs]
        names = [outcome_name(s) for s in specs]
        needs_text = [s.name != "not_truncated" for s in specs]      # the data hold no finish reason
        passed = [np.ones(n, dtype=bool) for _ in specs]
        evaluable = [np.zeros(n, dtype=bool) for _ in specs]
        reasons: list[dict[int, str]] = [{} for _ in specs]
        texts, prompts, alias = self._texts(r), self.data.prompts, self.aliases[r]
        rows = np.flatnonzero(self.data.available[:, r]).tolist() if specs else []
        with_text = [i for i in rows if texts[i] is not None]
        distinct: dict[str, int] = {}
        slot = np.fromiter((distinct.setdefault(texts[i], len(distinct)) for i in with_text), dtype=np.int64,
                           count=len(with_text))
        by_text = list(distinct)
        for k, (spec, check) in enumerate(zip(specs, checks)):
            if not needs_text[k] or spec.name not in TEXT_ONLY:
                continue
            ok, why = run_text_check(spec.name, dict(spec.params), check, by_text)
            idx = np.asarray(with_text, dtype=np.int64)
            evaluable[k][idx], passed[k][idx] = True, ok[slot]
            for j in np.flatnonzero(~ok[slot]).tolist():
                reasons[k][with_text[j]] = why[int(slot[j])]
        per_answer = [k for k, s in enumerate(specs) if not (needs_text[k] and s.name in TEXT_ONLY)]
        reads_text = any(needs_text[k] for k in per_answer)
        if not reads_text and self.data.recorded_checks is None:
            per_answer = []                 # e.g. not_truncated without finish reasons: nothing to evaluate
        for i in rows if per_answer else ():
            text = texts[i]
            answer = None if text is None or not reads_text else Answer(
                prompt=prompts[i] if prompts is not None else "", text=text, model=alias)
            for k in per_answer:
                if answer is not None and needs_text[k]:
                    out = checks[k](answer)
                    ok, why = out.passed, out.reason
                else:
                    recorded = self._recorded(r, i, names[k])
                    if recorded is None:
                        continue
                    ok, why = recorded[0], "recorded in the trace"
                evaluable[k][i] = True
                if not ok:
                    passed[k][i] = False
                    reasons[k][i] = why
        for k in (k for k, s in enumerate(specs) if needs_text[k] and s.name in TEXT_ONLY):
            for i in (i for i in rows if texts[i] is None):           # no text: the trace's outcome, if any
                recorded = self._recorded(r, i, names[k])
                if recorded is not None:
                    evaluable[k][i] = True
                    if not recorded[0]:
                        passed[k][i], reasons[k][i] = False, "recorded in the trace"
        for k, spec in enumerate(specs):
            key = (spec_key(spec), r)
            self._passed[key], self._evaluable[key], self._reason[key] = passed[k], evaluable[k], reasons[k]

    def _agreement(self, spec: CheckSpec, r: int) -> None:
        """Agreement of each recorded answer with the second model's recorded answer (the data's
        ``consult_*`` columns); its call's cost, and whether it would be asked at all."""
        from policies.checks import consults
        n, data = len(self.data), self.data
        c = data.consult_aliases.index(str(spec.param("with"))) if str(spec.param("with")) in data.consult_aliases else -1
        check = build_check(spec.name, dict(spec.params))
        texts, prompts = self._texts(r), data.prompts or [""] * n
        seconds = data.consult_responses[c] if c >= 0 and data.consult_responses is not None else None
        passed, evaluable = np.ones(n, dtype=bool), np.zeros(n, dtype=bool)
        asks, reasons = np.zeros(n, dtype=bool), {}
        for i in range(n):
            asks[i] = consults(spec, prompts[i])
            if texts[i] is None or (asks[i] and seconds is None):
                continue                                    # nothing to compare: not evaluated
            second = seconds[i] if asks[i] and data.consult_available[i, c] else None
            out = check(Answer(prompt=prompts[i], text=texts[i], model=self.aliases[r], second=second))
            evaluable[i], passed[i] = True, out.passed
            if not out.passed or out.reason:
                reasons[i] = out.reason
        key = (spec_key(spec), r)
        self._passed[key], self._evaluable[key], self._reason[key] = passed, evaluable, reasons
        nano = (np.floor(data.consult_cost_usd[:, c] * 1e9 + 0.5).astype(np.int64) if c >= 0
                else np.zeros(n, dtype=np.int64))
        self._asks[r], self._consult_nano[r] = asks, np.where(asks, nano, 0)
        self._parallel[r] = bool(spec.param("parallel", False))

    def consult_nano(self, specs: Sequence[CheckSpec], i: int, r: int, answered: bool, others_passed: bool) -> int:
        """Nano-dollars of the second opinion an attempt with ``specs`` pays for request ``i``: asked at
        once (parallel), or once the answer came and passed every other check."""
        if r not in self._asks or not any(s.name == AGREEMENT for s in specs) or not self._asks[r][i]:
            return 0
        return int(self._consult_nano[r][i]) if self._parallel[r] or (answered and others_passed) else 0

    def _score_checkers(self) -> None:
        """Score every rung's answers for each answer_checker artifact in one batch: each distinct
        (prompt, answer) pair is judged and scored once, whichever rung it comes from."""
        groups: dict[str, list[tuple[CheckSpec, int]]] = {}
        for r, specs in enumerate(self.rung_specs):
            for spec in {spec_key(s): s for s in specs}.values():
                if spec.name == CHECKER:
                    groups.setdefault(str(spec.param("artifact", "default")), []).append((spec, r))
        for artifact, members in groups.items():
            self._score_artifact(artifact, members)

    def _score_artifact(self, artifact: str, members: list[tuple[CheckSpec, int]]) -> None:
        from classifiers import load_answer_checker
        n, prompts = len(self.data), self.data.prompts
        pair_slot: dict[tuple[str, str], int] = {}         # identical (prompt, answer) pairs: scored once
        rung_rows: list[tuple[np.ndarray, np.ndarray]] = []
        for _, r in members:
            texts = self._texts(r)
            rows = ([i for i in np.flatnonzero(self.data.available[:, r]).tolist() if texts[i] is not None]
                    if prompts is not None else [])
            slot = [pair_slot.setdefault((prompts[i], texts[i]), len(pair_slot)) for i in rows]  # type: ignore[index]
            rung_rows.append((np.asarray(rows, dtype=np.int64), np.asarray(slot, dtype=np.int64)))
        pairs = list(pair_slot)
        scorer = self._checkers.get(artifact) or (load_answer_checker(artifact) if pairs else None)
        judges = getattr(scorer, "judges", None)          # the answers the scorer can judge (None: all)
        judged = (np.ones(len(pairs), dtype=bool) if judges is None else
                  np.fromiter((bool(judges(q, a)) for q, a in pairs), dtype=bool, count=len(pairs)))
        pair_scores = np.full(len(pairs), np.nan)
        chosen = np.flatnonzero(judged).tolist()
        if chosen:
            pair_scores[chosen] = scorer.score([pairs[k][0] for k in chosen], [pairs[k][1] for k in chosen])
        for (spec, r), (rows, slot) in zip(members, rung_rows):
            scores, abstains = np.full(n, np.nan), np.zeros(n, dtype=bool)
            scores[rows], abstains[rows] = pair_scores[slot], ~judged[slot]
            for i in np.flatnonzero(self.data.available[:, r] & np.isnan(scores) & ~abstains).tolist():
                recorded = self._recorded(r, i, CHECKER)
                if recorded is not None and recorded[1] is not None:
                    scores[i] = float(recorded[1])
            self._score[(spec_key(spec), r)] = scores
            self._abstains[(spec_key(spec), r)] = abstains

    # ---- lookup (the replay executor) ------------------------------------------------------------
    def outcomes(self, specs: Sequence[CheckSpec], i: int, r: int) -> list[CheckOutcome]:
        """The outcomes of ``specs`` on request ``i``'s answer of rung ``r``, as the live executor runs
        them: the agreement check last, and not asked (failed) when another check failed."""
        out = [self.outcome(spec, i, r) for spec in specs if spec.name != AGREEMENT]
        for spec in (s for s in specs if s.name == AGREEMENT):
            asked = r in self._asks and self._asks[r][i]
            if asked and not self._parallel[r] and not all(o.passed for o in out):
                out.append(CheckOutcome(AGREEMENT, False, NOT_ASKED))
            else:
                out.append(self.outcome(spec, i, r))
        return out

    def _lookup(self, spec: CheckSpec, r: int) -> tuple[str, float | None, list, list | None, dict[int, str], dict]:
        """Per (spec, rung), once: (outcome name, checker threshold, scores or passed, evaluable, reasons,
        the outcomes made so far) as Python lists (scalar lookups in numpy arrays are slow)."""
        cache = self._lookups
        found = cache.get((id(spec), r))
        if found is None or found[0] is not spec:
            key = (spec_key(spec), r)
            if spec.name == CHECKER:
                entry = (CHECKER, checker_threshold(spec), self._score[key].tolist(), self._abstains[key].tolist(), {}, {})
            else:
                entry = (outcome_name(spec), None, self._passed[key].tolist(), self._evaluable[key].tolist(),
                         self._reason[key], {})
            found = cache[(id(spec), r)] = (spec, entry)      # the spec is kept: its id stays unique
        return found[1]

    def outcome(self, spec: CheckSpec, i: int, r: int) -> CheckOutcome:
        name, threshold, values, evaluable, reasons, made = self._lookup(spec, r)
        if threshold is not None:
            p = values[i]
            if p != p:                                          # NaN: no answer text to score, or abstains
                key: tuple = (None, evaluable[i])
            elif p == 0.0:                                      # 0.0 and -0.0 are equal keys: made each time
                return self._make(name, threshold, (p,))
            else:
                key = (p,)
        elif not evaluable[i]:
            key = ()
        else:
            key = (values[i], reasons.get(i, "failed") if not values[i] else "")
        found = made.get(key)                 # outcomes are frozen: equal ones are made once per (spec, rung)
        if found is None:
            found = made[key] = self._make(name, threshold, key)
        return found

    @staticmethod
    def _make(name: str, threshold: float | None, key: tuple) -> CheckOutcome:
        if threshold is not None:
            if len(key) == 2:
                return CheckOutcome(CHECKER, True, CHECKER_ABSTAINS if key[1] else UNEVALUABLE)
            p = key[0]
            ok = p < threshold
            return CheckOutcome(CHECKER, ok, "" if ok else f"P(inadequate)={p:.3f} >= {threshold}", p)
        if not key:
            return CheckOutcome(name, True, UNEVALUABLE)
        return CheckOutcome(name, key[0], key[1])

    # ---- arrays (the vectorised sweep) -----------------------------------------------------------
    def arrays(self, swept: CheckSpec | None) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(fixed_pass, fixed_npass, swept_count, chk)``: whether every check other than the swept
        checker passes, how many of them pass, how many swept-checker specs each rung has, and the swept
        checker's score (NaN = not evaluable, passes at any threshold)."""
        n, r_count = len(self.data), len(self.rung_specs)
        fixed_pass = np.ones((n, r_count), dtype=bool)
        fixed_npass = np.zeros((n, r_count), dtype=np.int64)
        swept_count = np.zeros(r_count, dtype=np.int64)
        chk = np.full((n, r_count), np.nan)
        swept_key = spec_key(swept) if swept is not None else None
        for r, specs in enumerate(self.rung_specs):
            for spec in specs:
                key = (spec_key(spec), r)
                if spec.name == AGREEMENT:
                    continue                                     # agreement_arrays()
                if key[0] == swept_key:
                    swept_count[r] += 1
                    chk[:, r] = self._score[key]
                    continue
                if spec.name == CHECKER:
                    s = self._score[key]
                    ok = np.isnan(s) | (s < checker_threshold(spec))
                else:
                    ok = self._passed[key]
                fixed_pass[:, r] &= ok
                fixed_npass[:, r] += ok
        return fixed_pass, fixed_npass, swept_count, chk

    def agreement_arrays(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """``(has (R,), parallel (R,), passed (N, R), asks (N, R), consult_nano (N, R))`` of the rungs'
        agreement checks (the sweep adds them to the other checks as the executor does)."""
        n, r_count = len(self.data), len(self.rung_specs)
        has, parallel = np.zeros(r_count, dtype=bool), np.zeros(r_count, dtype=bool)
        passed, asks = np.ones((n, r_count), dtype=bool), np.zeros((n, r_count), dtype=bool)
        nano = np.zeros((n, r_count), dtype=np.int64)
        for r, specs in enumerate(self.rung_specs):
            for spec in (s for s in specs if s.name == AGREEMENT):
                has[r], parallel[r] = True, self._parallel[r]
                passed[:, r], asks[:, r], nano[:, r] = self._passed[(spec_key(spec), r)], self._asks[r], self._consult_nano[r]
        return has, parallel, passed, asks, nano
