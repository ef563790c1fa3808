"""Registry, artifact loading and its errors, import cost."""
from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

import classifiers
from classifiers.artifact import artifact_paths, read_artifact, write_artifact
from classifiers.heuristic import HeuristicClassifier
from policies.errors import ConfigError


def test_registry_names():
    assert isinstance(classifiers.load_classifier("heuristic"), HeuristicClassifier)
    assert set(classifiers.CLASSIFIERS) == {"heuristic", "default", "mmlu-pro", "by-kind"}
    assert set(classifiers.ANSWER_CHECKERS) == {"rules", "default"}


@pytest.mark.parametrize("name", ["nope", "Default", ""])
def test_unknown_name_is_config_error(name):
    with pytest.raises(ConfigError, match=repr(name)):
        classifiers.load_classifier(name)
    with pytest.raises(ConfigError):
        classifiers.load_answer_checker(name)


def test_missing_artifact_is_config_error(tmp_path):
    missing = tmp_path / "absent.json"
    with pytest.raises(ConfigError, match="absent"):
        classifiers.load_classifier(str(missing))


def test_malformed_artifacts_are_config_errors(tmp_path):
    stem = tmp_path / "bad"
    json_path, npz_path = artifact_paths(stem)
    json_path.write_text("{not json")
    np.savez(npz_path, table=np.zeros(3))
    with pytest.raises(ConfigError, match="bad"):
        classifiers.load_classifier(str(json_path))
    json_path.write_text(json.dumps({"format": "other"}))
    with pytest.raises(ConfigError, match="format"):
        classifiers.load_classifier(str(json_path))
    json_path.write_text(json.dumps({"format": "deepseek-cascade/scorer-v1", "kind": "classifier",
                                     "model": "linear-hashed-v1", "features": {}, "bias": 0}))
    with pytest.raises(ConfigError, match="malformed"):
        classifiers.load_classifier(str(json_path))
    npz_path.write_bytes(b"garbage")
    with pytest.raises(ConfigError):
        classifiers.load_classifier(str(stem) + ".npz")


def test_wrong_kind_and_unknown_model(tmp_path):
    default = classifiers.DEFAULT_CLASSIFIER
    meta, arrays = read_artifact(default)
    path = write_artifact(tmp_path / "clf", {**meta, "kind": "classifier"}, arrays)
    with pytest.raises(ConfigError, match="not a 'answer_checker'"):
        classifiers.load_answer_checker(str(path))
    path = write_artifact(tmp_path / "odd", {**meta, "model": "exec-me"}, arrays)
    with pytest.raises(ConfigError, match="unknown model"):
        classifiers.load_classifier(str(path))


def test_artifact_never_holds_objects(tmp_path):
    with pytest.raises(ValueError):
        write_artifact(tmp_path / "x", {"kind": "classifier", "model": "m"},
                       {"a": np.array([object()], dtype=object)})


def test_path_forms_and_cache(tmp_path):
    meta, arrays = read_artifact(classifiers.DEFAULT_CLASSIFIER)
    write_artifact(tmp_path / "model", meta, arrays)
    by_dir = classifiers.load_classifier(tmp_path)
    by_json = classifiers.load_classifier(str(tmp_path / "model.json"))
    by_npz = classifiers.load_classifier(str(tmp_path / "model.npz"))
    assert by_dir is by_json is by_npz  # cached per resolved path
    assert classifiers.load_classifier("default") is classifiers.load_classifier("default")
    text = ["What is 2 + 2?"]
    assert by_dir.score(text)[0] == classifiers.load_classifier("default").score(text)[0]


def _run(code: str) -> str:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True, timeout=120).stdout


def test_import_is_cheap():
    out = _run("import sys, classifiers; "
               "print(sorted(m for m in ('sklearn', 'pyarrow', 'litellm', 'scipy') if m in sys.modules))")
    assert out.strip() == "[]"


def test_inference_needs_no_sklearn():
    out = _run("import sys, classifiers\n"
               "classifiers.load_classifier('default').score(['x'])\n"
               "classifiers.load_answer_checker('default').score(['q\\nA. a\\nB. b'], ['The answer is (A)'])\n"
               "print(sorted(m for m in ('sklearn', 'pyarrow', 'litellm', 'scipy') if m in sys.modules))")
    assert out.strip() == "[]"
