"""The shipped manifest is complete and pinned; malformed manifests and upstream files are typed errors that
name the file and what is wrong."""
from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

import pytest

from cascade.datasets.convert import CONVERTERS, convert
from cascade.datasets.errors import ConversionError, ManifestError
from cascade.datasets.manifest import FileSpec, load_manifest, read_lock
from cascade.datasets.sample import sample_index
from tests.cascade.datasets.helpers import Served, write_manifest

PINNED = re.compile(r"https://raw\.githubusercontent\.com/[\w.-]+/[\w.-]+/[0-9a-f]{40}/\S+")


def test_the_shipped_manifest_pins_every_file_with_its_digest():
    sets = load_manifest()
    # each sample folder has its full set; the held-out math and chat sets are not in the sample
    assert set(sets) - set(sample_index()["folders"]) == {"routellm_gsm8k", "routellm_mt_bench"}
    for spec in sets.values():
        assert spec.converter in CONVERTERS and spec.license in ("Apache-2.0", "MIT")
        assert spec.expect_prompts and spec.expect_models and spec.unrecorded == ()
        for f in spec.files:
            assert PINNED.fullmatch(f.url), f.url
            assert f.size and f.size > 0 and re.fullmatch(r"[0-9a-f]{40}", f.git_blob or "")
    assert sum(1 for f in sets["mmlu_pro"].files if f.model) == 57
    assert set(sets["mmlu_pro"].responses_for) <= {f.model for f in sets["mmlu_pro"].files}


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format=2), "expected"),
    (lambda d: d["sets"]["tiny_llmrouter"]["files"][0].update(sha256="ABC"), "tiny_llmrouter.files[0] (train.json): sha256"),
    (lambda d: d["sets"]["tiny_llmrouter"]["files"][0].update(name="../x"), "plain file name"),
    (lambda d: d["sets"]["tiny_llmrouter"]["files"][0].update(url="file:///etc/passwd"), "http(s)"),
    (lambda d: d["sets"]["tiny_llmrouter"].pop("pair"), "tiny_llmrouter.pair: 'cheap'"),
    (lambda d: d["sets"]["tiny_llmrouter"].update(files=[]), "non-empty list"),
])
def test_a_malformed_manifest_names_the_entry(tmp_path, edit, message):
    path = write_manifest(tmp_path / "m.json", "http://127.0.0.1:9", Served())
    doc = json.loads(path.read_text())
    edit(doc)
    path.write_text(json.dumps(doc))
    with pytest.raises(ManifestError) as info:
        load_manifest(path)
    assert message in str(info.value) and str(path) in str(info.value)


def test_an_unreadable_manifest_or_lock_is_a_typed_error(tmp_path):
    with pytest.raises(ManifestError, match="cannot read"):
        load_manifest(tmp_path / "missing.json")
    (tmp_path / "bad.json").write_text("{")
    with pytest.raises(ManifestError, match="not valid JSON"):
        load_manifest(tmp_path / "bad.json")
    (tmp_path / "cascade-data.lock.json").write_text('{"s": {"f": "nothex"}}')
    with pytest.raises(ManifestError, match="fix or remove it"):
        read_lock(tmp_path)


def spec_with(tmp_path: Path, name: str, files: dict[str, bytes]):
    """A set of the fixture manifest whose files are replaced by ``files`` (written to tmp_path/raw)."""
    spec = load_manifest(write_manifest(tmp_path / "m.json", "http://127.0.0.1:9", Served()))[name]
    raw = tmp_path / "raw"
    raw.mkdir(exist_ok=True)
    for fname, data in files.items():
        (raw / fname).write_bytes(data)
    models = {f.name: f.model for f in spec.files}
    new_files = tuple(FileSpec(n, f"http://x/{n}", len(d), None, model=models.get(n, "A")) for n, d in files.items())
    return raw, spec.__class__(**{**spec.__dict__, "files": new_files})


def zipped(*members: str) -> bytes:
    path_bytes = __import__("io").BytesIO()
    with zipfile.ZipFile(path_bytes, "w") as archive:
        for i, m in enumerate(members):
            archive.writestr(f"m{i}.json", m)
    return path_bytes.getvalue()


@pytest.mark.parametrize("name, files, message", [
    ("tiny_mmlu_pro", {"a_result.json": b"{not json"}, "a_result.json: not readable as JSON"),
    ("tiny_mmlu_pro", {"b.zip": zipped("[]", "[]")}, "b.zip: expected one JSON file in the zip, found 2"),
    ("tiny_mmlu_pro", {"a_result.json": b'[{"question_id": 1}]'}, "a_result.json: a question lacks a usable"),
    ("tiny_routellm", {"mmlu_law.csv": b"prompt,m\nq,maybe\n"}, "mmlu_law.csv: column 'm': expected True or False"),
    ("tiny_routellm", {"law.csv": b"prompt,m\nq,True\n"}, "law.csv: expected a file named mmlu_<subject>.csv"),
    ("tiny_routerbench", {"x.csv": b"sample_id,prompt,eval_name,m\n1,x,e,1\n"}, "missing column(s) ['m|model_response'"),
    ("tiny_routerbench", {"x.csv": b"sample_id,prompt,eval_name,m,m|model_response,m|total_cost\n1,__import__('os'),e,1,a,0\n"},
     "a prompt cell is not a list of strings"),
    ("tiny_llmrouter", {"train.json": b'[{"question": "q", "scores": {"m": "high"}}]'}, "item 0: score of 'm'"),
    ("tiny_llmrouter", {"train.json": b"[]"}, "the files hold no outcome at all"),
])
def test_malformed_upstream_files_are_conversion_errors_naming_the_file(tmp_path, name, files, message):
    raw, spec = spec_with(tmp_path, name, files)
    with pytest.raises(ConversionError) as info:
        convert(raw, spec)
    assert message in str(info.value)


def test_a_conversion_that_disagrees_with_the_manifest_counts_is_refused(tmp_path):
    from tests.cascade.datasets.helpers import mmlu_pro_files
    files = mmlu_pro_files()
    raw, spec = spec_with(tmp_path, "tiny_mmlu_pro", {"a_result.json": files["a_result.json"]})
    with pytest.raises(ConversionError, match="conversion gave 1 models, the manifest expects 2"):
        convert(raw, spec)
