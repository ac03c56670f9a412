"""benchmarks/scale.py runs end to end at its `--quick` size: seeding, requests, restarts,
audit verify and the EXPLAIN of every lookup path (its numbers at that size mean nothing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.plugins.database import PG_ENV

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


def test_the_scale_benchmark_runs_at_its_quick_size(tmp_path):
    server = os.environ.get(PG_ENV)
    if not server:
        pytest.skip(f"{PG_ENV} is not set: the benchmark runs on PostgreSQL only")
    plans = tmp_path / "plans.txt"
    done = subprocess.run(
        [sys.executable, "benchmarks/scale.py", "--quick", "--database-url", server,
         "--explain", str(plans)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )  # fmt: skip

    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    for path in ("status short", "cancel first", "cancel later", "status unknown", "list"):
        assert f"\n{path} " in out, out
    assert "'No send in': 8" in out  # the unknown ids were answered as unknown
    assert "unanswered" not in out
    assert "sends, one workspace" in out and "sends, every workspace" in out
    assert "(FAILED)" not in out  # the seeded chains verify
    assert "SEQ SCAN" not in out
    # Each path's slowest acks come with what the machine did meanwhile.
    assert "  cancel later         1,500  slow " in out, out
    assert "% of a core" in out
    written = plans.read_text()
    assert "## find_send later batch" in written
    # The Home tab's reads are explained too: each of its six queries, and its watch's.
    assert written.count("## Home tab: read\n") == 6, written
    assert "## Home tab: states of the sends shown\n" in written
