"""How PushOps' cost grows with a year of history, on PostgreSQL.

    .venv/bin/python benchmarks/scale.py [--database-url postgresql://postgres@127.0.0.1:5432/postgres]
        [--quick] [--samples 300] [--rate 25] [--explain FILE] [--keep]

A fresh database on the server at --database-url (dropped afterwards) is filled in bulk
with the rows PushOps' own code writes (COPY of the same columns; every audit event hashed
and MACed as `storage.audit` chains them, so `pushops audit verify` holds): 1,000
workspaces, 1,000,000 sends over a year (every state; 3% sent in several batches, each
batch's id in `send_notifications`), three audit events a send (3,000,000), and one
workspace, the one `pushops serve` answers (the fake Slack's), with 100,000 of them.

It measures twice, once with 10,000 sends stored and once with 1,000,000:
- the ack (HTTP response) and the answer (the reply posted to the response URL, where the
  lookup happens) of signed `/push status ID`, `/push cancel ID` (ID a short id, the
  OneSignal id of a first batch, of a later batch, an id PushOps never made) and
  `/push list`, p50 and p99, at --rate requests/s;
- how long `pushops serve` takes from its start to its scheduler's timers armed (1% of the
  sends are scheduled: 10,000 at full size);
- `pushops audit verify` of the served workspace (100,000 events at full size) and of every
  workspace (events/s, and per CPU second of the command);
- serve's RSS once idle and after the requests.
For each path it also shows how many acks serve itself timed over 25 ms (its
`pushops_slack_ack_seconds` histogram, read from /metrics before and after), and, for the
slowest acks and a median one, what the machine did meanwhile (`Watch`: CPUs busy, serve's
share of a core, PostgreSQL's running queries and background work, sampled every 10 ms):
whether an outlier waited for serve, for a CPU or for the database.
Then EXPLAIN of every query behind those paths, the scheduler's claims and sweeps, at the
full size (to --explain FILE too), flagging a sequential scan of sends or audit_events.

Targets (issue 16): each p99 at 1,000,000 sends within 1.5x its value at 10,000; audit verify
at least 50,000 events/s (judged per CPU second of the command: the machine is shared);
serve's idle RSS at most 100 MB. `--quick` runs the same at a tiny size
(tests/benchmarks/test_scale.py); its numbers mean nothing.

Seeding drops the indexes, keys and foreign keys of the tables it fills and makes them again
from the catalog's definitions after the rows are in (`indexes_built_after`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import random
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.*, storage, tests.fakes when run as a script

from benchmarks.ack_latency import (  # noqa: E402
    FakeSlackProcess,
    _stop,
    base_env,
    postgres_database,
    process_cpu,
    pushops_command,
    real_env,
    start_fake_onesignal,
    wait_until_serving,
)
from tests.fakes import signing  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
P99_RATIO = 1.5
VERIFY_RATE = 50_000
IDLE_RSS_MB = 100.0
START_TIMEOUT = 600.0


@dataclass(frozen=True)
class Size:
    """How much history to store, and how many requests each path gets."""

    workspaces: int
    small: int  # sends at the first measurement
    sends: int  # sends at the second
    main_events: int  # audit events of the served workspace at the second
    samples: int
    events_per_send: int = 3
    scheduled: float = 0.01  # share of sends scheduled (in the future)
    batched: float = 0.03  # share of delivered sends that went out in several batches


# 300 requests a path: a p99 that is the third slowest, not the second of 150.
FULL = Size(workspaces=1_000, small=10_000, sends=1_000_000, main_events=100_000, samples=300)
QUICK = Size(workspaces=5, small=300, sends=1_500, main_events=900, samples=8, batched=0.3)


# ------------------------------------------------------------------ seeding

_STATES = (  # (state, share) of the sends not scheduled
    ("sent", 0.85),
    ("failed", 0.03),
    ("cancelled", 0.04),
    ("rejected", 0.01),
    ("expired", 0.01),
    ("missed", 0.01),
    ("pending_approval", 0.005),
    ("draft", 0.004),
    ("sending", 0.001),
)
_DELIVERED = {"sent", "cancelled"}
_SEND_COLUMNS = (
    "id", "short_id", "team_id", "app_ref", "app_name", "requester_id", "content", "audience",
    "is_test", "due_at", "timezone", "state", "approvals_required", "approvals_received",
    "notification_id", "batches", "slack_messages", "last_error", "attempts", "claimed_by",
    "claimed_at", "lease_until", "finished_at", "submission", "created_at", "updated_at",
)  # fmt: skip
_EVENT_COLUMNS = (
    "id", "team_id", "seq", "created_at", "actor", "action", "target", "outcome", "details",
    "prev_hash", "hash", "mac", "mac_key_id",
)  # fmt: skip
_ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
_AUDIENCE = json.dumps({"segments": ["Active Users"]})
_CHUNK = 20_000


@dataclass
class Targets:
    """Ids of the served workspace's sends, for the requests."""

    short: list[str] = field(default_factory=list)
    first: list[str] = field(default_factory=list)
    later: list[str] = field(default_factory=list)


class Seeder:
    """Writes history in bulk: the rows `storage` writes, its audit chains continued."""

    def __init__(self, dsn: str, main_team: str, secret_key: str, size: Size) -> None:
        from storage.audit import AuditKeys
        from storage.crypto import KeyRing

        self.dsn = dsn
        self.size = size
        self.main = main_team
        self.keys = AuditKeys.from_keyring(KeyRing.from_text(secret_key))
        self.teams = [main_team] + [f"T{n:08d}" for n in range(1, size.workspaces)]
        self.empty = "T0EMPTY"  # no event: `audit verify` of it is the command's own cost
        self.heads: dict[str, tuple[int, str]] = {}
        self.counters: dict[str, int] = {}
        self.rng = random.Random(16)
        self.now = datetime.now(UTC)
        self.start = self.now - timedelta(days=365)
        self.main_app: uuid.UUID | None = None
        self.targets = Targets()
        self.stored = 0
        self.events = 0

    def workspaces(self) -> None:
        """The workspaces other than the served one (serve made that one and its app)."""
        import psycopg

        from storage.models import GENESIS_HASH

        with psycopg.connect(self.dsn) as connection:
            found = connection.execute(
                "SELECT team_id, audit_head_seq, audit_head_hash FROM workspaces"
            ).fetchall()
            self.heads = {team: (seq, head) for team, seq, head in found}
            row = connection.execute(
                "SELECT id FROM onesignal_apps WHERE team_id = %s", (self.main,)
            ).fetchone()
            self.main_app = row[0] if row else None
            with connection.cursor().copy(
                "COPY workspaces (team_id, name, settings, audit_head_seq, audit_head_hash, "
                "created_at, updated_at) FROM STDIN"
            ) as copy:
                for team in [*self.teams, self.empty]:
                    if team not in self.heads:
                        copy.write_row(
                            (team, f"Team {team}", "{}", 0, GENESIS_HASH, self.start, self.start)
                        )
                        self.heads[team] = (0, GENESIS_HASH)

    def fill(self, total: int) -> float:
        """Sends (and their events, batch ids) up to `total` stored; the seconds it took."""
        import psycopg

        began = time.monotonic()
        count = total - self.stored
        events = 0
        with psycopg.connect(self.dsn) as connection:
            # serve wrote events since: chain after its heads
            found = connection.execute(
                "SELECT team_id, audit_head_seq, audit_head_hash FROM workspaces"
            ).fetchall()
            self.heads = {team: (seq, head) for team, seq, head in found}
            connection.execute("SET synchronous_commit = off")  # one commit, at the end
            connection.execute("SET maintenance_work_mem = '256MB'")  # for the index builds
            cursor = connection.cursor()
            with indexes_built_after(connection, _BULK_TABLES) as timing:
                for chunk in range(self.stored, total, _CHUNK):  # a chunk's rows in memory
                    events += self._fill_chunk(cursor, chunk, min(total, chunk + _CHUNK))
                cursor.executemany(
                    "UPDATE workspaces SET audit_head_seq = %s, audit_head_hash = %s "
                    "WHERE team_id = %s",
                    [(seq, head, team) for team, (seq, head) in self.heads.items()],
                )
                rows_s = time.monotonic() - began
            connection.commit()
            indexed = time.monotonic()
            connection.autocommit = True
            connection.execute("VACUUM ANALYZE")
            # The bulk load's dirty pages written now, not by a checkpoint during the requests.
            connection.execute("CHECKPOINT")
        self.stored = total
        self.events += events
        seconds = time.monotonic() - began
        print(
            f"  stored {count:,} sends, {events:,} audit events in {seconds:.0f} s (rows "
            f"{rows_s:.0f} s, indexes and keys {timing.seconds:.0f} s, vacuum and checkpoint "
            f"{time.monotonic() - indexed:.0f} s; load {os.getloadavg()[0]:.1f})",
            file=sys.stderr,
            flush=True,
        )
        return seconds

    def _fill_chunk(self, cursor: Any, start: int, end: int) -> int:
        """Sends `start` to `end` and theirs; how many audit events."""
        sends: list[tuple[Any, ...]] = []
        notes: list[tuple[Any, ...]] = []
        events: list[tuple[Any, ...]] = []
        for index in range(start, end):
            send, batch_rows = self._send(index)
            sends.append(send)
            notes.extend(batch_rows)
            events.extend(self._events(send))
        _copy(cursor, "sends", _SEND_COLUMNS, sends)
        columns = ("team_id", "notification_id", "send_id", "batch")
        _copy(cursor, "send_notifications", columns, notes)
        _copy(cursor, "audit_events", _EVENT_COLUMNS, events)
        return len(events)

    def _team(self, index: int) -> str:
        # The served workspace gets every k-th send: main_events of the sends' events (100,000
        # at full size, and the few serve writes itself).
        every = self.size.sends * self.size.events_per_send // self.size.main_events
        if index % every == 0:
            return self.main
        return self.teams[1 + index % (len(self.teams) - 1)]

    def _short_id(self, team: str) -> str:
        number = self.counters.get(team, 0)
        self.counters[team] = number + 1
        number = number * 7_368_787 % (32**6)  # spread over the id space, still one per number
        return "".join(_ALPHABET[(number >> (5 * i)) & 31] for i in range(6))

    def _state(self) -> str:
        if self.rng.random() < self.size.scheduled:
            return "scheduled"
        pick = self.rng.random() * sum(share for _, share in _STATES)
        for state, share in _STATES:
            pick -= share
            if pick < 0:
                return state
        return "sent"

    def _send(self, index: int) -> tuple[tuple[Any, ...], list[tuple[Any, ...]]]:
        team, state = self._team(index), self._state()
        created = self.start + timedelta(seconds=index * 365 * 86400 / self.size.sends)
        send_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
        short_id = self._short_id(team)
        due, finished, updated = created + timedelta(minutes=5), None, created
        lease = claimed_by = None
        if state == "scheduled":
            due = self.now + timedelta(days=1 + self.rng.random() * 60)
        elif state == "pending_approval":
            updated = self.now - timedelta(minutes=10)  # not yet expired by the sweeps
        elif state == "sending":
            lease, claimed_by = self.now + timedelta(days=400), "benchmark-elsewhere"
        elif state not in {"draft", "missed"}:
            finished = updated = due + timedelta(seconds=2)
        batches, notes = self._batches(team, send_id, state)
        first = batches[0]["notification_id"] if batches else None
        app_ref = self.main_app if team == self.main else None
        if team == self.main and state == "sent":
            self._target(short_id, batches)
        row = (
            send_id, short_id, team, app_ref, "default", "U0BENCH",
            f'{{"contents": {{"en": "Notification {index}"}}}}', _AUDIENCE, False, due, "UTC",
            state, 0, 0, first, json.dumps(batches) if batches else "[]", "{}", None,
            1 if batches else 0, claimed_by, None, lease,
            finished, None, created, updated,
        )  # fmt: skip
        return row, notes

    def _batches(
        self, team: str, send_id: uuid.UUID, state: str
    ) -> tuple[list[dict[str, Any]], list[tuple[Any, ...]]]:
        if state not in _DELIVERED:
            return [], []
        count = self.rng.randint(2, 4) if self.rng.random() < self.size.batched else 1
        batches = [
            {
                "index": i,
                "idempotency_key": str(send_id),
                "notification_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
                "recipients": 600,
                "error": None,
                "status": None,
                "attempt": 1,
            }
            for i in range(count)
        ]
        return batches, [(team, b["notification_id"], send_id, b["index"]) for b in batches]

    def _target(self, short_id: str, batches: list[dict[str, Any]]) -> None:
        self.targets.short.append(short_id)
        self.targets.first.append(batches[0]["notification_id"])
        if len(batches) > 1:
            self.targets.later.append(batches[-1]["notification_id"])

    def _events(self, send: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        """The send's three events, chained as `storage.audit` chains them (its own hash)."""
        from storage.audit import canonical_hash, canonical_json, canonical_time

        send_id, short_id, team, state, created = send[0], send[1], send[2], send[11], send[24]
        seq, prev = self.heads[team]
        target, details = f"send {short_id}", {"send_id": str(send_id)}
        stored = canonical_json(details)  # as storage.audit stores it, once for the three
        rows = []
        for offset, action in enumerate(("send.created", "send.scheduled", f"send.{state}")):
            seq += 1
            at = created + timedelta(seconds=offset)
            event_id = uuid.UUID(int=self.rng.getrandbits(128), version=4)
            digest = canonical_hash(
                prev, str(event_id), team, seq, canonical_time(at), "U0BENCH", action, target,
                "ok", stored,
            )  # fmt: skip
            rows.append(
                (event_id, team, seq, at, "U0BENCH", action, target, "ok", stored, prev, digest,
                 self.keys.mac(digest), self.keys.primary_key_id)
            )  # fmt: skip
            prev = digest
        self.heads[team] = (seq, prev)
        return rows


_BULK_TABLES = ("sends", "send_notifications", "audit_events")
_KEYS = """
    SELECT conrelid::regclass::text, conname, contype, pg_get_constraintdef(oid)
    FROM pg_constraint
    WHERE contype IN ('p', 'u', 'f')
      AND (conrelid = ANY(%(tables)s::regclass[]) OR confrelid = ANY(%(tables)s::regclass[]))
"""
_INDEXES = """
    SELECT indexname, indexdef FROM pg_indexes
    WHERE schemaname = current_schema() AND tablename = ANY(%(tables)s)
      AND indexname NOT IN (SELECT conname FROM pg_constraint)
"""


@dataclass
class Timing:
    seconds: float = 0.0


@contextlib.contextmanager
def indexes_built_after(connection: Any, tables: Sequence[str]) -> Iterator[Timing]:
    """The indexes, keys and foreign keys of `tables` (and those referring to them) dropped
    for the bulk load and made again after it, as the catalog defines them, in the same
    transaction: one index build instead of a B-tree insert (and, for a foreign key, a
    query) for every row. The schema at the end is the one migrations made."""
    params = {"tables": list(tables)}
    keys = connection.execute(_KEYS, params).fetchall()
    indexes = connection.execute(_INDEXES, params).fetchall()
    order = {"f": 0, "u": 1, "p": 2}  # what depends on a key goes before it
    for table, name, _kind, _definition in sorted(keys, key=lambda key: order[key[2]]):
        connection.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
    for name, _definition in indexes:
        connection.execute(f'DROP INDEX "{name}"')
    timing = Timing()
    yield timing
    began = time.monotonic()
    for table, name, _kind, definition in sorted(keys, key=lambda key: -order[key[2]]):
        connection.execute(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
    for _name, definition in indexes:
        connection.execute(definition)
    timing.seconds = time.monotonic() - began


def _copy(cursor: Any, table: str, columns: Sequence[str], rows: list[tuple[Any, ...]]) -> None:
    with cursor.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)


# ------------------------------------------------------------------ the served app


class ScaleSlack(FakeSlackProcess):
    """The fake Slack, also telling when each reply to a response URL arrived."""

    def replies(self) -> list[tuple[str, float, str]]:
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write("replies\n")
        self.process.stdin.flush()
        return [tuple(item) for item in json.loads(self.process.stdout.readline())]  # type: ignore[misc]


_ARMED = re.compile(r"scheduler started \(worker [^)]*\): (\d+) timers armed")


class Serve:
    """`pushops serve` in its own process; restartable, with its log kept."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = env
        self.workdir = workdir
        self.url = f"http://127.0.0.1:{env['PORT']}/slack/events"
        self.process: subprocess.Popen[Any] | None = None
        self.starts = 0

    async def start(self) -> tuple[float, int]:
        """Start it; the seconds until its timers were armed, and how many."""
        self.starts += 1
        log_path = self.workdir / f"serve-{self.starts}.log"
        log = log_path.open("w")
        began = time.monotonic()
        self.process = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited on
            [*pushops_command(), "serve"], cwd=self.workdir, env=self.env,
            stdout=log, stderr=subprocess.STDOUT,
        )  # fmt: skip
        log.close()
        while time.monotonic() - began < START_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(f"pushops serve exited; see {log_path}")
            found = _ARMED.search(log_path.read_text(errors="replace"))
            if found:
                armed = time.monotonic() - began
                await wait_until_serving(self.url, {"serve": self.process})
                return armed, int(found[1])
            await asyncio.sleep(0.05)
        raise RuntimeError(f"pushops serve armed no timers within {START_TIMEOUT:.0f} s")

    def rss_mb(self) -> float:
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return math.nan

    def cpu(self) -> float:
        assert self.process is not None
        return process_cpu(self.process.pid)

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


# ------------------------------------------------------------------ what the machine did


class Watch:
    """Samples, every SAMPLE_S in a thread of its own, how busy the machine's CPUs were, how
    busy serve was, and what PostgreSQL's backends were doing; `explain` says it for the
    slowest acks of a path, next to the path's median: whether an outlier waited for serve,
    for a CPU, or for the database."""

    SAMPLE_S = 0.01
    ACTIVITY_EVERY = 5  # pg_stat_activity on every 5th sample: its query costs a backend too

    def __init__(self, dsn: str, pid: int) -> None:
        self.dsn = dsn
        self.pid = pid
        # (monotonic, machine busy jiffies, machine total jiffies, serve jiffies)
        self.cpu: list[tuple[float, int, int, int]] = []
        self.database: list[tuple[float, int, str]] = []  # (monotonic, active, what else ran)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Watch:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            count = 0
            while not self._stop.wait(self.SAMPLE_S):
                now = time.monotonic()
                fields = [
                    int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]
                ]
                idle = fields[3] + fields[4]  # idle, iowait
                with contextlib.suppress(OSError):
                    self.cpu.append((now, sum(fields) - idle, sum(fields), _jiffies(self.pid)))
                count += 1
                if count % self.ACTIVITY_EVERY == 0:
                    rows = connection.execute(_ACTIVITY).fetchall()
                    others = sorted({kind for kind, _ in rows if kind != "client backend"})
                    active = sum(1 for kind, _ in rows if kind == "client backend")
                    self.database.append((now, active, ",".join(others)))

    def explain(self, path: Path_) -> list[str]:
        """A line for each ack at or over the path's p99, and one for its median."""
        if not path.acks_ms:
            return []
        p99, p50 = quantile(path.acks_ms, 0.99), quantile(path.acks_ms, 0.5)
        lines = []
        ordered = sorted(zip(path.acks_ms, path.sent_at, strict=True), reverse=True)
        median = min(ordered, key=lambda pair: abs(pair[0] - p50))
        for ack, at in [*[pair for pair in ordered if pair[0] >= p99], median]:
            label = "median" if (ack, at) == median else "slow"
            lines.append(f"{label} {ack:.1f} ms: {self._during(at, at + ack / 1000)}")
        return lines

    def _during(self, start: float, end: float) -> str:
        # The samples around the window (a 10 ms sample is as long as a short ack).
        window = [s for s in self.cpu if start - self.SAMPLE_S <= s[0] <= end + self.SAMPLE_S]
        if len(window) < 2:
            return "no samples"
        first, last = window[0], window[-1]
        total = max(last[2] - first[2], 1)
        cores = os.cpu_count() or 1
        machine = (last[1] - first[1]) / total
        serve = (last[3] - first[3]) * cores / total  # of one core
        database = [d for d in self.database if start - 0.05 <= d[0] <= end + 0.05]
        active = max((d[1] for d in database), default=0)
        others = sorted({kind for d in database for kind in d[2].split(",") if kind})
        return (
            f"CPUs {machine:.0%} busy, serve {serve:.0%} of a core, "
            f"{active} PostgreSQL queries running"
            + (f", also {'/'.join(others)}" if others else "")
        )


_ACTIVITY = """
    SELECT backend_type, wait_event_type FROM pg_stat_activity
    WHERE pid <> pg_backend_pid() AND (state = 'active' AND datname = current_database() OR (
        backend_type <> 'client backend' AND coalesce(wait_event, '') NOT IN (
            'CheckpointerMain', 'AutoVacuumMain', 'BgWriterMain', 'BgWriterHibernate',
            'WalWriterMain', 'LogicalLauncherMain', 'ArchiverMain')))
"""


def _jiffies(pid: int) -> int:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


# ------------------------------------------------------------------ requests


@dataclass
class Path_:
    """One kind of request, and what it gave at one size."""

    name: str
    acks_ms: list[float] = field(default_factory=list)
    answers_ms: list[float] = field(default_factory=list)
    replies: dict[str, int] = field(default_factory=dict)
    lost: int = 0
    sent_at: list[float] = field(default_factory=list)  # monotonic, one per ack in acks_ms
    server_slow: int = 0  # acks serve itself timed over SERVER_SLOW_S (its ack histogram)
    slowest: list[str] = field(default_factory=list)  # what the machine did meanwhile


SERVER_SLOW_S = 0.025  # a bucket bound of pushops_slack_ack_seconds


def quantile(values: Sequence[float], q: float) -> float:
    if not values:
        return math.inf
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _texts(targets: Targets, size: Size, rng: random.Random) -> dict[str, list[str]]:
    """The request texts of each path; cancels take sends the status requests do not."""
    n = size.samples

    def split(ids: list[str]) -> tuple[list[str], list[str]]:
        shuffled = ids[:]
        rng.shuffle(shuffled)
        half = max(1, len(shuffled) // 2)
        return shuffled[:half], shuffled[half:] or shuffled[:half]

    def cycle(ids: list[str]) -> list[str]:
        return [ids[i % len(ids)] for i in range(n)] if ids else []

    paths: dict[str, list[str]] = {}
    for kind in ("short", "first", "later"):
        looked, cancelled = split(getattr(targets, kind))
        paths[f"status {kind}"] = [f"status {ref}" for ref in cycle(looked)]
        paths[f"cancel {kind}"] = [f"cancel {ref}" for ref in cycle(cancelled)]
    unknown = [str(uuid.UUID(int=rng.getrandbits(128), version=4)) for _ in range(n)]
    paths["status unknown"] = [f"status {ref}" for ref in unknown]
    paths["cancel unknown"] = [f"cancel {ref}" for ref in unknown]
    paths["list"] = ["list"] * n
    return paths


async def run_paths(
    serve: Serve, slack: ScaleSlack, texts: dict[str, list[str]], rate: float,
    watch: Watch | None = None,
) -> list[Path_]:  # fmt: skip
    info = slack.info
    results: list[Path_] = []
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(
        connector=connector, timeout=aiohttp.ClientTimeout(total=30)
    ) as session:
        for name, commands in texts.items():
            path = Path_(name)
            slow_before = await _server_slow_acks(session, serve)
            sent: dict[str, float] = {}
            tasks = []
            t0 = time.monotonic() + 0.05
            for i, text in enumerate(commands):
                delay = t0 + i / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                target = uuid.uuid4().hex
                sent[target] = time.monotonic()
                tasks.append(
                    asyncio.create_task(_post(session, serve.url, info, text, target, path))
                )
            await asyncio.gather(*tasks)
            path.server_slow = await _server_slow_acks(session, serve) - slow_before
            await _collect(slack, sent, path)
            if watch is not None:
                path.slowest = watch.explain(path)
            results.append(path)
            print(f"    {_row(path)}", file=sys.stderr, flush=True)
    return results


async def _post(
    session: aiohttp.ClientSession,
    url: str,
    info: dict[str, str],
    text: str,
    target: str,
    path: Path_,
) -> None:
    fields = signing.slash_command(
        text=text,
        response_url=f"{info['base_url']}/response/{target}",
        user_id=info["user_id"],
        team_id=info["team_id"],
    )
    body = signing.form_body(fields)
    headers = signing.signed_headers(body, secret=info["signing_secret"])
    began, at = time.perf_counter(), time.monotonic()
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        if response.status == 200:
            path.acks_ms.append((time.perf_counter() - began) * 1000)
            path.sent_at.append(at)


async def _server_slow_acks(session: aiohttp.ClientSession, serve: Serve) -> int:
    """How many acks serve has timed over SERVER_SLOW_S so far (from its /metrics)."""
    async with session.get(serve.url.rsplit("/slack/", 1)[0] + "/metrics") as response:
        text = await response.text()
    counts = {}
    for found in re.finditer(
        r'^pushops_slack_ack_seconds_(bucket\{le="([^"]+)"\}|count) (\S+)$', text, re.M
    ):
        counts[found[2] or "count"] = float(found[3])
    return int(counts.get("count", 0) - counts.get(repr(SERVER_SLOW_S), 0))


async def _collect(slack: ScaleSlack, sent: dict[str, float], path: Path_) -> None:
    """Each request's answer: the first reply to its response URL (waits up to 60 s)."""
    waiting = dict(sent)
    deadline = time.monotonic() + 60
    while waiting and time.monotonic() < deadline:
        for target, at, text in slack.replies():
            if target in waiting:
                path.answers_ms.append((at - waiting.pop(target)) * 1000)
                words = " ".join(re.sub(r"`[^`]*`|\([^)]*\)", " ", text).split()[:3])
                path.replies[words] = path.replies.get(words, 0) + 1
        if waiting:
            await asyncio.sleep(0.05)
    path.lost = len(waiting)


def _row(path: Path_) -> str:
    return (
        f"{path.name:16} ack p50 {quantile(path.acks_ms, 0.5):6.1f} p99 "
        f"{quantile(path.acks_ms, 0.99):6.1f}  answer p50 {quantile(path.answers_ms, 0.5):7.1f} "
        f"p99 {quantile(path.answers_ms, 0.99):7.1f} ms"
    )


# ------------------------------------------------------------------ audit verify


def audit_verify(
    env: dict[str, str], workdir: Path, team: str | None
) -> tuple[float, int, bool, float]:
    """`pushops audit verify`: wall seconds, events, whether it held, and its CPU seconds
    (on a machine shared by others, the CPU is what the command itself cost)."""
    command = [*pushops_command(), "audit", "verify", *(["--team", team] if team else [])]
    began, cpu = time.monotonic(), _children_cpu()
    done = subprocess.run(
        command, cwd=workdir, env=env, capture_output=True, text=True, check=False
    )
    seconds, cpu = time.monotonic() - began, _children_cpu() - cpu
    found = re.search(r"intact: ([\d,]+) event", done.stdout)
    events = int(found[1].replace(",", "")) if found else 0
    return seconds, events, done.returncode == 0, cpu


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


# ------------------------------------------------------------------ EXPLAIN

REQUESTER = "U0BENCH"  # who asked for every seeded send: whose Home is explained


async def explain_paths(dsn: str, team: str, targets: Targets) -> list[tuple[str, str, list[str]]]:
    """(what, statement, plan) of every query the lookup paths, claims and sweeps run."""
    from sqlalchemy import event

    from bot.delivery.recall import FINISHED, UPCOMING
    from bot.home import HomeBoard
    from bot.timers import DEFAULT_HORIZON
    from storage import claims, queries
    from storage import home as home_queries
    from storage.audit import iter_audit_pages, list_audit_events
    from storage.db import Database

    database = Database.open(dsn)
    captured: list[tuple[str, str, Any]] = []
    label = ["?"]

    def capture(
        conn: Any, cursor: Any, statement: str, params: Any, context: Any, many: bool
    ) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "WITH")):
            captured.append((label[0], statement, params))

    event.listen(database.engine.sync_engine, "before_cursor_execute", capture)
    now = datetime.now(UTC)
    unknown = str(uuid.uuid4())
    try:
        async with database.sessions() as session:
            for what, ref in (
                ("find_send short id", targets.short[0]),
                ("find_send first batch", targets.first[0]),
                ("find_send later batch", (targets.later or targets.first)[0]),
                ("find_send unknown id", unknown),
            ):
                label[0] = what
                await queries.find_send(session=session, team_id=team, ref=ref)
            label[0] = "/push list: upcoming"
            await queries.list_sends(session=session, team_id=team, states=UPCOMING, order="due")
            label[0] = "/push list: recent"
            await queries.list_sends(
                session=session, team_id=team, states=FINISHED, order="finished"
            )
            label[0] = "list_timers (the sweep's, within the timers' horizon)"
            await claims.list_timers(session=session, until=datetime.now(UTC) + DEFAULT_HORIZON)
            label[0] = "Home tab: states of the sends shown"
            await home_queries.send_states(
                session=session, team_id=team, send_ids=[uuid.uuid4() for _ in range(20)]
            )
            label[0] = "list_audit_events"
            await list_audit_events(session=session, team_id=team, limit=20)
            label[0] = "audit verify (one workspace)"
            pages = iter_audit_pages(session=session, team_id=team)
            async with contextlib.aclosing(pages):
                async for _ in pages:
                    break
        label[0] = "Home tab: read"
        await HomeBoard(database).read(team_id=team, user_id=REQUESTER, approver=True)
        factory = database.sessions
        sweeps = {
            "claim_due_sends": claims.claim_due_sends(
                session_factory=factory, now=now, worker_id="explain"
            ),
            "reclaim_stale_sends": claims.reclaim_stale_sends(
                session_factory=factory, now=now, worker_id="explain"
            ),
            "mark_missed_sends": claims.mark_missed_sends(
                session_factory=factory, now=now, grace=timedelta(minutes=10)
            ),
            "expire_pending_approvals": claims.expire_pending_approvals(
                session_factory=factory, now=now, ttl=timedelta(days=1)
            ),
        }
        for what, call in sweeps.items():
            label[0] = what
            await call
    finally:
        event.remove(database.engine.sync_engine, "before_cursor_execute", capture)
        await database.dispose()
    return _plans(dsn, captured)


def _plans(dsn: str, captured: list[tuple[str, str, Any]]) -> list[tuple[str, str, list[str]]]:
    import psycopg
    from sqlalchemy.engine import make_url

    plain = make_url(dsn).set(drivername="postgresql").render_as_string(hide_password=False)
    plans = []
    with psycopg.connect(plain) as connection:
        for what, statement, params in captured:
            rows = connection.execute(f"EXPLAIN {statement}", params).fetchall()
            plans.append((what, " ".join(statement.split())[:160], [row[0] for row in rows]))
        connection.rollback()
    return plans


def seq_scans(plan: list[str]) -> list[str]:
    return [line.strip() for line in plan if re.search(r"Seq Scan on (sends|audit_events)\b", line)]


# ------------------------------------------------------------------ the run


@dataclass
class Stage:
    sends: int
    events: int
    seed_s: float
    armed_s: float
    armed: int
    rss_idle: float
    rss_after: float
    paths: list[Path_]
    verify_one: tuple[float, int, bool, float]
    verify_all: tuple[float, int, bool, float]
    cpu_s: float


async def measure(
    args: argparse.Namespace, size: Size, workdir: Path, db_url: str
) -> tuple[list[Stage], list[Any]]:
    logs = {name: (workdir / f"{name}.log").open("w") for name in ("slack", "onesignal")}
    slack = ScaleSlack(logs["slack"])
    onesignal, onesignal_url = start_fake_onesignal(logs["onesignal"])
    serve: Serve | None = None
    try:
        env = real_env(workdir, slack.info, onesignal_url, db_url)
        env["PUSHOPS_LOG_LEVEL"] = "INFO"
        serve = Serve(env, workdir)
        await serve.start()  # migrates, makes the served workspace and its `default` app
        serve.stop()
        seeder = Seeder(_plain(db_url), slack.info["team_id"], env["PUSHOPS_SECRET_KEY"], size)
        seeder.workspaces()
        stages = []
        for total in (size.small, size.sends):
            print(f"history of {total:,} sends:", file=sys.stderr, flush=True)
            seed_s = seeder.fill(total)
            stages.append(await _stage(args, size, serve, slack, seeder, env, workdir, seed_s))
        plans = await explain_paths(db_url, seeder.main, seeder.targets)
        return stages, plans
    finally:
        if serve is not None:
            serve.stop()
        _stop(onesignal)
        slack.stop()
        for log in logs.values():
            log.close()


async def _stage(
    args: argparse.Namespace, size: Size, serve: Serve, slack: ScaleSlack, seeder: Seeder,
    env: dict[str, str], workdir: Path, seed_s: float,
) -> Stage:  # fmt: skip
    armed_s, armed = await serve.start()
    await asyncio.sleep(2.0)
    idle = serve.rss_mb()
    warm = {"warm-up": ["list", *(f"status {ref}" for ref in seeder.targets.short[-5:])]}
    await run_paths(serve, slack, warm, args.rate)
    cpu = serve.cpu()
    texts = _texts(seeder.targets, size, random.Random(seeder.stored))
    assert serve.process is not None
    with Watch(seeder.dsn, serve.process.pid) as watch:
        paths = await run_paths(serve, slack, texts, args.rate, watch)
    after = serve.rss_mb()
    cpu = serve.cpu() - cpu
    serve.stop()
    names = ("DATABASE_URL", "PUSHOPS_SECRET_KEY", "PUSHOPS_DATA_DIR")
    verify_env = {**base_env(), **{name: env[name] for name in names}}
    baseline = audit_verify(verify_env, workdir, seeder.empty)
    one = _net(audit_verify(verify_env, workdir, seeder.main), baseline)
    every = _net(audit_verify(verify_env, workdir, None), baseline)
    return Stage(
        seeder.stored, seeder.events, seed_s, armed_s, armed, idle, after, paths, one, every, cpu
    )


def _net(
    result: tuple[float, int, bool, float], baseline: tuple[float, int, bool, float]
) -> tuple[float, int, bool, float]:
    """`result` less what the command takes for a workspace without events."""
    seconds, events, ok, cpu = result
    return max(seconds - baseline[0], 1e-3), events, ok, max(cpu - baseline[3], 1e-3)


def _plain(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


# ------------------------------------------------------------------ report


def report(
    stages: list[Stage], plans: list[Any], args: argparse.Namespace, size: Size
) -> list[str]:
    """Print the tables; the targets missed."""
    load = os.getloadavg()
    print("PushOps at scale: a year of history on PostgreSQL")
    print(
        f"  {os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} at "
        f"the end; {size.workspaces:,} workspaces; {size.samples} requests a path at "
        f"{args.rate:g}/s; ack = HTTP response, answer = reply at the response URL; "
        f">25ms@ = acks serve itself timed over 25 ms (from the door to Bolt's response)"
    )
    small, large = stages[0], stages[-1]
    print()
    print(
        f"{'path':16} {'sends':>9} {'ack p50':>8} {'ack p99':>8} {'ans p50':>8} "
        f"{'ans p99':>8} {'>25ms@':>7}  replies"
    )
    for stage in stages:
        for path in stage.paths:
            words = ", ".join(f"{w!r}: {n}" for w, n in sorted(path.replies.items()))
            lost = f", {path.lost} unanswered" if path.lost else ""
            print(
                f"{path.name:16} {stage.sends:>9,} {quantile(path.acks_ms, 0.5):>8.1f} "
                f"{quantile(path.acks_ms, 0.99):>8.1f} {quantile(path.answers_ms, 0.5):>8.1f} "
                f"{quantile(path.answers_ms, 0.99):>8.1f} {path.server_slow:>7}  {words}{lost}"
            )
    print()
    print(
        f"The slowest acks (at or over p99) and a median one, with what the machine did "
        f"meanwhile (sampled every {Watch.SAMPLE_S * 1000:.0f} ms):"
    )
    for stage in stages:
        for path in stage.paths:
            for line in path.slowest:
                print(f"  {path.name:16} {stage.sends:>9,}  {line}")
    print()
    print(
        f"{'sends':>9} {'events':>10} {'seeded s':>9} {'armed s':>8} {'timers':>7} "
        f"{'RSS idle':>9} {'RSS after':>10} {'CPU s':>6}"
    )
    for stage in stages:
        print(
            f"{stage.sends:>9,} {stage.events:>10,} {stage.seed_s:>9.0f} {stage.armed_s:>8.2f} "
            f"{stage.armed:>7,} {stage.rss_idle:>8.0f}M {stage.rss_after:>9.0f}M "
            f"{stage.cpu_s:>6.1f}"
        )
    print()
    print(
        "pushops audit verify (less its cost for a workspace without events: start, keys); "
        "events/s wall, and per CPU second of the command (the figure on a shared machine):"
    )
    for stage in stages:
        for what, (seconds, events, ok, cpu) in (
            ("one workspace", stage.verify_one),
            ("every workspace", stage.verify_all),
        ):
            print(
                f"  {stage.sends:>9,} sends, {what:15}: {events:>9,} events in {seconds:6.1f} s = "
                f"{events / seconds:>9,.0f} events/s; per CPU second {events / cpu:>9,.0f} "
                f"({cpu / events * 100_000:.2f} CPU s per 100,000){'' if ok else ' (FAILED)'}"
            )
    missed = _targets(small, large)
    print()
    print("EXPLAIN at the full size (PostgreSQL):")
    for what, _statement, plan in plans:
        scans = seq_scans(plan)
        print(f"  {what}: {'SEQ SCAN: ' + '; '.join(scans) if scans else 'indexed'}")
    if args.explain is not None:
        with args.explain.open("w") as out:
            for what, statement, plan in plans:
                out.write(f"## {what}\n{statement}\n" + "\n".join(plan) + "\n\n")
        print(f"  plans written to {args.explain}")
    print()
    print("targets:" + ("" if missed else " all met"))
    for line in missed:
        print(f"  MISSED: {line}")
    return missed


def _targets(small: Stage, large: Stage) -> list[str]:
    missed = []
    for before, after in zip(small.paths, large.paths, strict=True):
        for kind, a, b in (
            ("answer", before.answers_ms, after.answers_ms),
            ("ack", before.acks_ms, after.acks_ms),
        ):
            ratio = quantile(b, 0.99) / quantile(a, 0.99)
            if ratio > P99_RATIO:
                missed.append(
                    f"{before.name} {kind} p99 {ratio:.2f}x its value at {small.sends:,} sends"
                )
        if after.lost:
            missed.append(f"{after.name}: {after.lost} requests never answered")
    for _seconds, events, ok, cpu in (large.verify_one, large.verify_all):
        # Per CPU second of the command: wall time on a shared machine measures the others.
        if not ok or events / cpu < VERIFY_RATE:
            missed.append(f"audit verify {events / cpu:,.0f} events per CPU second (ok={ok})")
    if large.rss_idle > IDLE_RSS_MB:
        missed.append(f"idle RSS {large.rss_idle:.0f} MB")
    return missed


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PUSHOPS_BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="a PostgreSQL server: the run gets a fresh database there, dropped afterwards",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny size, to check it runs")
    parser.add_argument("--samples", type=int, help="requests a path (300; --quick 8)")
    parser.add_argument("--rate", type=float, default=25.0, help="requests a second")
    parser.add_argument("--explain", type=Path, metavar="FILE", help="write every plan there")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    size = QUICK if args.quick else FULL
    if args.samples:
        size = Size(**{**size.__dict__, "samples": args.samples})
    workdir = Path(tempfile.mkdtemp(prefix="pushops-scale-"))
    try:
        with postgres_database(args.database_url) as url:
            assert url is not None
            stages, plans = asyncio.run(measure(args, size, workdir, url))
        report(stages, plans, args, size)
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
