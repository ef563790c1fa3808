"""schemathesis against a live ``cascade serve`` app (fake provider, API keys): every check, a bounded
number of cases. It drives the server from the published /openapi.json: schema-valid requests must be
answered, schema-invalid ones refused with a 4xx, no 500 anywhere, responses as documented."""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ALICE_KEY, API_KEYS

ST = shutil.which("st", path=str(Path(sys.executable).parent))


@pytest.mark.skipif(ST is None, reason="schemathesis is not installed (pip install -e '.[dev]')")
def test_schemathesis_finds_nothing(serve, fake_provider, tmp_path):
    from schemathesis.core.warnings import SchemathesisWarning
    # every warning but "missing test data": POST /v1/feedback with a random request_id is rightly a 404
    warnings = ",".join(w.value for w in SchemathesisWarning if w is not SchemathesisWarning.MISSING_TEST_DATA)
    served = serve(keys=API_KEYS, transport="direct")
    cmd = [ST, "run", served.url + "/openapi.json", "--checks", "all", "--max-examples", "30", "--seed", "11",
           "--phases", "examples,coverage,fuzzing", "--generation-database", "none", "--no-color",
           "--request-timeout", "30", "--max-failures", "5", "--warnings", warnings, "-H", f"Authorization: Bearer {ALICE_KEY}"]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    report = out.stdout[-6000:] + out.stderr[-2000:]
    assert out.returncode == 0, report
    assert "No issues found" in out.stdout and "Unresolvable" not in out.stdout, report
    assert served.router.store.open_reservations() == 0
