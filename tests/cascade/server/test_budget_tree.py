"""``cascade budget --keys FILE``: the org -> team -> user -> key tree with spent / cap / left, as text and JSON."""
from __future__ import annotations

import json

import typer
from typer.testing import CliRunner

from cascade.budget import open_budget_store
from cascade.server.auth import load_keys
from cascade.server.cli import register
from policies.budget import Cap

app = typer.Typer()
register(app)
runner = CliRunner(env={"COLUMNS": "200", "NO_COLOR": "1"})
KEY_A, KEY_B, KEY_C = "sk-tree-alice-000001", "sk-tree-bob-0000002", "sk-tree-carol-000003"
CAPS = (Cap("team", "day", 5.0), Cap("user", "day", 2.0))


def test_the_tree_shows_every_level_with_its_caps(tmp_path):
    keys = tmp_path / "keys.yaml"
    keys.write_text(f"{KEY_A}: {{user: alice, team: ml, org: acme}}\n"
                    f"{KEY_B}: {{user: bob, team: ml, org: acme, name: bob-ci}}\n{KEY_C}: carol\n")
    url = f"sqlite:///{tmp_path}/spend.db"
    alice, bob, _ = load_keys(keys).principals
    with open_budget_store(url) as store:
        for who, usd in ((alice, 1.2), (bob, 1.9)):
            store.commit(store.reserve(request_id="r", user=who, model="m", amount_usd=usd, caps=CAPS), usd)
    args = ["budget", "--budget-store", url, "--keys", str(keys), "--team-cap-usd", "5", "--user-cap-usd", "2",
            "--cap-window", "day"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = lines.index("global  no cap")
    assert lines[start + 1:start + 9] == [
        "  org acme  no cap",
        "    team ml  day: $3.10 spent / $5.00 cap, $1.90 left",
        "      user alice ($1.20 spent in all)  day: $1.20 spent / $2.00 cap, $0.80 left",
        f"        key {alice.key}  no cap",
        "      user bob ($1.90 spent in all)  day: $1.90 spent / $2.00 cap, $0.10 left",
        "        key bob-ci  no cap",
        "  org -  no cap",
        "    team -  no cap"]
    assert not any(k in result.stdout for k in (KEY_A, KEY_B, KEY_C))
    doc = json.loads(runner.invoke(app, [*args, "--json"]).stdout)
    [acme, _] = doc["tree"]["children"]
    assert acme["children"][0]["caps"][0]["spent_usd"] == 3.1 and acme["children"][0]["name"] == "ml"
