"""What `pushops audit verify` costs an event, on SQLite and PostgreSQL, against a baseline tree.

    .venv/bin/python benchmarks/audit_verify.py [--events 100000] [--workspaces 3]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres] [--baseline DIR]
        [--among 1000] [--others 29]

Each workspace gets --events audit events, appended by PushOps' own storage code (in batches,
as a burst of sends appends them: three events a send, each naming its send). Then the
verification that `pushops audit verify` runs walks one workspace, and every workspace, in a
child process of its own: once with the code of --baseline (another checkout, e.g. a git
worktree at main) when given, once with this tree's. The figure is the CPU time of the walk
in that process (not its start or the database's work): the machine is shared, and wall time
says more about the others' load than about verify. Wall events/s is shown beside it.

On PostgreSQL a third case, "one among many", walks one workspace of --events events whose
events lie scattered among those of --among other workspaces (--others times as many in all,
written in turns as a busy server writes them), in a database of its own: there the walk waits
for PostgreSQL to gather the workspace's rows, and its wall time is the figure (the ratio
compares wall time too). The load average is printed beside each figure.

Target (issue 16): at least 50,000 events/s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Coroutine
from functools import partial
from pathlib import Path
from typing import Any

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.*, storage when run as a script

from benchmarks.ack_latency import postgres_database  # noqa: E402
from storage.audit import AuditEntry, AuditKeys, append_audit_entries  # noqa: E402
from storage.crypto import KeyRing, generate_key  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrations import upgrade  # noqa: E402
from storage.models import Workspace  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
TARGET = 50_000
_BATCH = 2_000
_ACTIONS = ("send.created", "send.scheduled", "send.sent")
AMONG = "one among many"
_TURN = 20  # the measured workspace's events in a row, before the others write theirs
_ALONGSIDE = 10  # how many other workspaces write in each turn

# The other workspaces' events: rows of the size PushOps writes, unchained (only the measured
# workspace is walked), many a statement so that seeding millions takes minutes, not hours.
_OTHERS_SQL = """
INSERT INTO audit_events (id, team_id, seq, created_at, actor, action, target, outcome,
                          details, prev_hash, hash, mac, mac_key_id)
SELECT gen_random_uuid(), t.team, t.after + n, now(), 'U0BENCH', 'send.sent', 'send 000000',
       'ok', json_build_object('app', 'default', 'recipients', 600, 'send_id', gen_random_uuid()),
       md5(t.team) || md5(t.team), md5(n::text) || md5(n::text), md5(t.team) || md5(n::text),
       '0a1b2c3d'
FROM unnest(CAST(:teams AS text[]), CAST(:afters AS int[])) AS t(team, after),
     generate_series(1, :count) AS n
"""

# Run in a child with the tree under test first on sys.path: verify as the command runs it,
# timed from inside (process CPU time of the walk alone).
_CHILD = """
import asyncio, json, os, sys, time
import storage
from storage.audit import AuditKeys
from storage.audit_chain import verify_audit_chain
from storage.crypto import KeyRing
from storage.db import Database

async def main(url, key, team):
    keys = AuditKeys.from_keyring(KeyRing.from_text(key))
    database = Database.open(url, audit_keys=keys)
    try:
        async with database.sessions() as session:  # connected before the clock starts
            await verify_audit_chain(session=session, keys=keys, team_id="T0EMPTY")
        cpu, wall = time.process_time(), time.monotonic()
        async with database.sessions() as session:
            report = await verify_audit_chain(session=session, keys=keys, team_id=team or None)
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
    finally:
        await database.dispose()
    print(json.dumps({"events": report.events, "ok": report.ok, "cpu": cpu, "wall": wall,
                      "code": os.path.dirname(os.path.dirname(storage.__file__))}))

asyncio.run(main(*sys.argv[1:]))
"""


async def seed(url: str, key: str, workspaces: int, events: int) -> None:
    """`workspaces` workspaces (and an empty one) of `events` events each, appended by storage."""
    database = Database.open(url, audit_keys=AuditKeys.from_keyring(KeyRing.from_text(key)))
    try:
        await upgrade(database.engine)
        for team in [*_teams(workspaces), "T0EMPTY"]:
            async with database.sessions.begin() as session:
                session.add(Workspace(team_id=team, name=team))
        for team in _teams(workspaces):
            for start in range(0, events, _BATCH):
                entries = [_entry(n) for n in range(start, min(events, start + _BATCH))]
                async with database.sessions.begin() as session:
                    await append_audit_entries(session=session, team_id=team, entries=entries)
    finally:
        await database.dispose()


async def seed_among(url: str, key: str, events: int, among: int, others: int) -> None:
    """One workspace of `events` events among `among` workspaces' `others` times as many."""
    database = Database.open(url, audit_keys=AuditKeys.from_keyring(KeyRing.from_text(key)))
    team, crowd = _teams(1)[0], [f"T1{n:07d}" for n in range(among)]
    written = dict.fromkeys(crowd, 0)
    each = max(1, _TURN * others // _ALONGSIDE)
    try:
        await upgrade(database.engine)
        async with database.sessions.begin() as session:
            session.add_all(Workspace(team_id=name, name=name) for name in [team, *crowd])
        for turn, start in enumerate(range(0, events, _TURN)):
            entries = [_entry(n) for n in range(start, min(events, start + _TURN))]
            alongside = [crowd[(turn * _ALONGSIDE + n) % among] for n in range(_ALONGSIDE)]
            bind = {"teams": alongside, "afters": [written[t] for t in alongside], "count": each}
            async with database.sessions.begin() as session:
                await append_audit_entries(session=session, team_id=team, entries=entries)
                await session.execute(sa.text(_OTHERS_SQL), bind)
            for name in alongside:
                written[name] += each
        async with database.engine.connect() as connection:
            await connection.execute(sa.text("ANALYZE audit_events"))
    finally:
        await database.dispose()


def _teams(count: int) -> list[str]:
    return [f"T{n:08d}" for n in range(count)]


def _entry(number: int) -> AuditEntry:
    send = uuid.UUID(int=number // 3 + 1)
    details = {"send_id": str(send), "app": "default", "recipients": 600}
    return AuditEntry("U0BENCH", _ACTIONS[number % 3], f"send {number // 3:06d}", "ok", details)


def verify(tree: Path, url: str, key: str, team: str | None) -> dict[str, object]:
    """One walk with `tree`'s code, in a child process: what it reported and cost."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, url, key, team or ""],
        cwd=tree, env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    if Path(str(result["code"])).resolve() != tree.resolve():
        raise RuntimeError(f"the child ran {result['code']}, not {tree}")
    return result


Case = tuple[str, str | None]
"""What is walked (for the table) and the workspace walked (None: every one)."""


def measure(
    name: str, url: str, key: str, trees: list[tuple[str, Path]], cases: list[Case]
) -> list[str]:
    """Print one database's table; the rows under the target."""
    missed = []
    for what, team in cases:
        cpus: dict[str, float] = {}
        walls: dict[str, float] = {}
        for label, tree in trees:
            result = verify(tree, url, key, team)
            events, cpu, wall = (
                int(str(result["events"])),
                float(str(result["cpu"])),
                float(str(result["wall"])),
            )
            cpus[label], walls[label] = cpu / events * 100_000, wall / events * 100_000
            per_cpu, per_wall = events / cpu, events / wall
            print(
                f"  {name:10} {what:15} {label:8} {events:>9,} events  "
                f"{cpus[label]:6.2f} CPU s per 100,000  {per_cpu:>8,.0f} events/CPU s  "
                f"{per_wall:>8,.0f} events/s wall  load {os.getloadavg()[0]:.1f}"
                f"{'' if result['ok'] else '  (FAILED)'}"
            )
            figure, unit = (per_wall, "second") if what == AMONG else (per_cpu, "CPU second")
            if label == "this" and (figure < TARGET or not result["ok"]):
                missed.append(f"{name} {what}: {figure:,.0f} events per {unit}")
        if "baseline" in cpus:
            print(
                f"  {'':10} {what:15} ratio    {cpus['baseline'] / cpus['this']:.2f}x less CPU, "
                f"{walls['baseline'] / walls['this']:.2f}x less wall time"
            )
    return missed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=100_000, help="events a workspace")
    parser.add_argument("--workspaces", type=int, default=3, help="0: only one among many")
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PUSHOPS_BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="a PostgreSQL server (a fresh database, dropped after); 'none' for SQLite only",
    )
    parser.add_argument("--baseline", type=Path, help="another checkout to compare with")
    parser.add_argument(
        "--among", type=int, default=1000, help="other workspaces, one among many; 0: none"
    )
    parser.add_argument("--others", type=int, default=29, help="their events, x --events")
    args = parser.parse_args(argv)
    key = generate_key()
    trees = [("baseline", args.baseline)] if args.baseline else []
    trees.append(("this", ROOT))
    server = None if args.database_url == "none" else args.database_url
    missed: list[str] = []
    with (
        tempfile.TemporaryDirectory(prefix="pushops-verify-") as workdir,
        postgres_database(server) as pg_url,
        postgres_database(server if args.among else None) as among_url,
    ):
        runs = _runs(args, f"sqlite+aiosqlite:///{workdir}/audit.db", pg_url, among_url)
        for name, url, _cases, seeding in runs:
            began = time.monotonic()
            asyncio.run(seeding(url, key))
            print(f"seeded {name}: {time.monotonic() - began:.0f} s", file=sys.stderr, flush=True)
        load = os.getloadavg()
        print(
            f"pushops audit verify: {args.workspaces} workspaces of {args.events:,} events, and "
            f"one of {args.events:,} among {args.among:,} with {args.others}x as many; "
            f"{os.cpu_count()} cores, load {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}"
        )
        for name, url, cases, _seeding in runs:
            missed += measure(name, url, key, trees, cases)
    load = os.getloadavg()
    print(f"load at the end {load[0]:.1f}; target {TARGET:,} events per (CPU) second: "
          + ("met" if not missed else "MISSED: " + "; ".join(missed)))  # fmt: skip
    return 0


_Seeding = Callable[[str, str], Coroutine[Any, Any, None]]


def _runs(
    args: argparse.Namespace, sqlite_url: str, pg_url: str | None, among_url: str | None
) -> list[tuple[str, str, list[Case], _Seeding]]:
    """Each database to measure: its name, URL, cases (what, workspace) and how to seed it."""
    runs: list[tuple[str, str, list[Case], _Seeding]] = []
    if args.workspaces:
        cases = [("one workspace", _teams(args.workspaces)[0]), ("every workspace", None)]
        plain = partial(seed, workspaces=args.workspaces, events=args.events)
        runs.append(("SQLite", sqlite_url, cases, plain))
        if pg_url is not None:
            runs.append(("PostgreSQL", pg_url, cases, plain))
    if among_url is not None:
        among = partial(seed_among, events=args.events, among=args.among, others=args.others)
        runs.append(("PostgreSQL", among_url, [(AMONG, _teams(1)[0])], among))
    return runs


if __name__ == "__main__":
    raise SystemExit(main())
