"""benchmarks/bench_dashboard.py measures the dashboard's spend figures on both durable stores: SQLite and
a real redis-server's ledger stream, printed side by side (the figures equal a full read on both; Redis
catches up over several bounded polls). Without redis-server it says so and prints SQLite alone."""
from __future__ import annotations

import pytest

from tests.harness.benchmarks import load_benchmark

bench = load_benchmark("bench_dashboard")

ARGS = ["--rows", "3000", "--users", "20", "--new", "20", "--max-entries", "1000"]


def table(out: str) -> dict[str, list[str]]:
    """The printed table: its header's columns, and each row's cells by label."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.split() == ["SQLite", "Redis"])
    return {line[:44].strip(): line[44:].split() for line in lines[start:] if line.strip()}


@pytest.mark.redis
def test_both_stores_are_measured_and_their_figures_equal_the_full_read(redis_server, capsys):
    bench.main(ARGS)
    rows = table(capsys.readouterr().out)
    assert rows["ledger entries"] == ["3,020", "3,020"]
    assert rows["figures equal to the full read"] == ["True", "True"]
    assert rows["polls until the whole ledger is read"] == ["1", "3"]      # Redis: 1,000 entries a poll


def test_without_redis_server_it_says_so_and_measures_sqlite(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))                              # no redis-server on it
    bench.main(ARGS)
    out = capsys.readouterr().out
    assert "Redis: skipped, redis-server is not installed" in out
    rows = table(out)
    assert rows["ledger entries"] == ["3,020", "skipped"] and rows["figures equal to the full read"] == ["True", "skipped"]
