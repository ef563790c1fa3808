"""What a cache hit owes to budgets and keys, through ``cascade serve`` with keys.

The chosen behaviour: a cap bounds what a user spends, and a hit spends nothing — so a user already over
their cap still gets an answer the cache holds ($0, no provider, ledger unchanged) while any new question
is refused with 429. Keys come first: an unknown key, or one taken out of the keys file (disabled), gets
401 and never reaches the cache, not even for an answer it made itself."""
from __future__ import annotations

import httpx

from policies.loader import parse_policy
from tests.harness.fake_provider import answer

from .conftest import ALICE_KEY, API_KEYS, BOB_KEY, user_msg


def cached_policy(tmp_path, scope: str = "user"):
    return parse_policy(f"extends: default\nname: cached\ncache: {{store: 'sqlite:///{tmp_path}/cache.db', "
                        f"scope: {scope}}}\n", source="cached.yaml")


def ask(served, key: str, text: str) -> httpx.Response:
    return httpx.post(served.base_url + "/chat/completions", headers={"Authorization": f"Bearer {key}"},
                      json={"model": "cascade", "temperature": 0, "max_tokens": 16, "messages": user_msg(text)},
                      timeout=30)


def test_a_user_over_the_cap_gets_a_cached_answer_but_nothing_new(serve, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("Paris", prompt_tokens=10, completion_tokens=100_000))
    served = serve(policy=cached_policy(tmp_path), keys=API_KEYS, user_cap_usd=0.02, cap_window="day")
    first = ask(served, ALICE_KEY, "Capital of France?")
    assert first.status_code == 200 and first.json()["cascade"]["cost_usd"] > 0.02      # over the cap now
    ledger, calls = len(served.router.store.ledger()), fake_provider.tally.n_requests
    new = ask(served, ALICE_KEY, "Capital of Spain?")
    assert new.status_code == 429 and new.json()["error"]["code"] == "budget_exceeded"
    hit = ask(served, ALICE_KEY, "Capital of France?")
    assert hit.status_code == 200 and hit.json()["choices"][0]["message"]["content"] == "Paris"
    assert hit.json()["cascade"]["cache_hit"] is True and hit.json()["cascade"]["cost_usd"] == 0
    assert len(served.router.store.ledger()) == ledger and fake_provider.tally.n_requests == calls


def test_an_unknown_or_disabled_key_never_reaches_the_cache(serve, fake_provider, tmp_path):
    fake_provider.script("deepseek-chat", answer("Paris"))
    policy = cached_policy(tmp_path, scope="global")
    before = serve(policy=policy, keys=API_KEYS)
    assert ask(before, BOB_KEY, "Capital of France?").status_code == 200
    assert ask(before, ALICE_KEY, "Capital of France?").json()["cascade"]["cache_hit"] is True
    after = serve(policy=policy, keys={ALICE_KEY: "alice"})       # bob's key taken out of the keys file
    for key in (BOB_KEY, "sk-cascade-nobody-000000"):
        refused = ask(after, key, "Capital of France?")
        assert refused.status_code == 401 and "Paris" not in refused.text
    assert after.router.recall.cache.counts["hit"] == after.router.recall.cache.counts["miss"] == 0
    assert ask(after, ALICE_KEY, "Capital of France?").json()["cascade"]["cache_hit"] is True
    assert fake_provider.tally.n_requests == 1
