"""Inference never imports training: scoring prompts and answers, deciding and the whole runtime run
without scikit-learn, scipy or :mod:`classifiers.training`.

Two proofs: a fresh interpreter that scores, decides and imports every module of ``cascade`` and
``policies`` then lists what it imported; and a scan of the source for the imports no inference
module may hold, anywhere (module level or inside a function).
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
INFERENCE_PACKAGES = ("classifiers", "cascade", "policies")
TRAINING_PACKAGE = ROOT / "classifiers" / "training"
#: imported modules an inference process must never hold (a package and everything under it)
FORBIDDEN = ("sklearn", "scipy", "classifiers.training")
#: (file, function) that may name a forbidden module, each for a stated reason
ALLOWED = {
    # ``cascade train``: the command is a training entry point, importing the trainers when it runs
    ("cascade/commands.py", "_trainer", "classifiers.training"),
    # ``cascade train --engine``: where the trainers' features are extracted (imported when the command runs)
    ("cascade/train_engine.py", "feature_map", "classifiers.training"),
    # ``cascade train --traces``: fitting the adapted scorers on labelled traces (cascade.learning.train)
    ("cascade/learning/train.py", "_classifier", "classifiers.training"),
    ("cascade/learning/train.py", "_checker", "classifiers.training"),
    ("cascade/learning/train.py", "outcome_examples", "classifiers.training"),
    # ... and the two-parameter calibration of the checker behind its threshold (cascade.learning.thresholds)
    ("cascade/learning/thresholds.py", "_calibrated", "sklearn"),
    # the scipy matrix of hashed features that only training builds (inference uses Single / Batch)
    ("classifiers/features.py", "sparse_matrix", "scipy"),
}

PROBE = """
import importlib, json, pkgutil, sys
import classifiers
prompt = "Which of these is a mammal?\\nOptions:\\nA. shark\\nB. whale\\nC. trout\\nD. eel"
answer = "A whale breathes air and nurses its young. The answer is (B)."
classifier = classifiers.load_classifier("default")
checker = classifiers.load_answer_checker("default")
scores = [float(classifier.score([prompt])[0]), classifier.score_one(prompt),
          float(checker.score([prompt], [answer])[0]), checker.score_one(prompt, answer)]
import cascade, policies
from policies.engine import decide
from policies.loader import load_policy
from policies.request import Request
plan = decide(load_policy("default"), Request(text=prompt, prompt_tokens=40), scores[0])
for package in (cascade, policies):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if not info.name.endswith(".__main__"):
            importlib.import_module(info.name)
print(json.dumps({"scores": scores, "attempts": len(plan.attempts), "modules": sorted(sys.modules)}))
"""


def _is_forbidden(module: str) -> str | None:
    """The entry of :data:`FORBIDDEN` that ``module`` is or lies under, else None."""
    return next((f for f in FORBIDDEN if module == f or module.startswith(f + ".")), None)


def test_inference_and_runtime_import_no_training():
    done = subprocess.run([sys.executable, "-c", PROBE], capture_output=True, text=True, cwd=ROOT,
                          timeout=240)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert all(0.0 <= s <= 1.0 for s in result["scores"]) and result["attempts"] >= 1
    assert result["scores"][0] == result["scores"][1] and result["scores"][2] == result["scores"][3]
    modules = set(result["modules"])
    assert {"classifiers.artifact", "policies.engine", "cascade.router", "cascade.replay.run"} <= modules
    imported = sorted(m for m in modules if _is_forbidden(m))
    assert not imported, f"inference imported {imported[:10]}"


class _Imports(ast.NodeVisitor):
    """Every module an AST imports or names as an importlib string, with the enclosing function."""

    def __init__(self) -> None:
        self.found: list[tuple[str, str]] = []  # (function or "<module>", imported module)
        self._where = ["<module>"]

    def _scope(self, node: ast.AST) -> None:
        self._where.append(getattr(node, "name", "<lambda>"))
        self.generic_visit(node)
        self._where.pop()

    visit_FunctionDef = visit_AsyncFunctionDef = visit_ClassDef = visit_Lambda = _scope

    def visit_Import(self, node: ast.Import) -> None:
        self.found.extend((self._where[-1], alias.name) for alias in node.names)

    def visit_ImportFrom(self, node: ast.ImportFrom) -> None:
        if node.level == 0 and node.module:
            self.found.append((self._where[-1], node.module))
            self.found.extend((self._where[-1], f"{node.module}.{a.name}") for a in node.names)

    def visit_Constant(self, node: ast.Constant) -> None:  # importlib.import_module("...")
        if isinstance(node.value, str) and _is_forbidden(node.value):
            self.found.append((self._where[-1], node.value))


def _inference_sources() -> list[Path]:
    files = [p for pkg in INFERENCE_PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))]
    return [p for p in files if TRAINING_PACKAGE not in p.parents]


def _scan(path: Path) -> set[tuple[str, str]]:
    """(function or "<module>", forbidden package) for each forbidden import in ``path``."""
    visitor = _Imports()
    visitor.visit(ast.parse(path.read_text(), filename=str(path)))
    return {(where, hit) for where, name in visitor.found if (hit := _is_forbidden(name))}


def forbidden_imports(paths: list[Path]) -> set[tuple[str, str, str]]:
    """(file relative to the repository, function, forbidden package) for each path."""
    return {(p.relative_to(ROOT).as_posix(), where, hit) for p in paths for where, hit in _scan(p)}


def test_no_inference_module_imports_training():
    sources = _inference_sources()
    assert len(sources) > 40 and ROOT / "classifiers" / "features.py" in sources
    unexpected = sorted(forbidden_imports(sources) - ALLOWED)
    assert not unexpected, f"(file, function, package) importing training code: {unexpected}"


def test_the_scan_sees_every_kind_of_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import scipy.sparse\n"
                   "def f():\n    from classifiers.training import fit\n"
                   "async def g():\n    from sklearn.linear_model import Ridge\n"
                   "def h():\n    import importlib\n    return importlib.import_module('classifiers.training.train')\n"
                   "from classifiers import training\n"
                   "'''Docstrings may speak of classifiers.training.'''\n")
    assert _scan(bad) == {("<module>", "scipy"), ("f", "classifiers.training"), ("g", "sklearn"),
                          ("h", "classifiers.training"), ("<module>", "classifiers.training")}

