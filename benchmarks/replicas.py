"""Replicas: 1, 2 and 4 `pushops worker` processes on one PostgreSQL, 20,000 sends due in 20 s.

    .venv/bin/python benchmarks/replicas.py [--workers 1,2,4] [--workspaces 1,100]
        [--sends 20000] [--window 20] [--lead 20]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

For each count of workers and of workspaces: a fresh database on the server at
--database-url (dropped afterwards) holds the workspaces, each with an app that is the fake
OneSignal's (tests/fakes/onesignal, in a child process of its own, as in
benchmarks/scheduler.py), and `--sends` sends dealt among them in turn, due evenly across a
`--window`-second window that opens `--lead` seconds after they are stored (the workers
start and arm their timers meanwhile). The workers are real `pushops worker` processes,
started as an operator would. One workspace is every send appending to one audit chain; a
hosted deployment serves many.

Reported per run: sends delivered per second (from the window's opening to the last
request at the fake), lateness (request at the fake minus due time) p50/p99/max, CPU per
send of the workers (all of them) and of their PostgreSQL backends, from the window's
opening to the end, and exactly once: notifications the fake holds, idempotency keys seen
twice, sends recorded sent. Then where the workers' connections spent that time, read
from PostgreSQL itself (pg_stat_activity sampled every 20 ms, wall time being unreliable on
a loaded machine): running a statement, waiting for a lock (on the workspace row that heads
an audit chain, or another), waiting for the disk, or in a transaction while the worker's
Python works between statements. The load average is printed beside them: the machine's two
cores are shared.

Target (issue 16): 2 workers deliver at least 1.5x what one does, when the CPU allows it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ack_latency import (  # noqa: E402
    _stop,
    base_env,
    postgres_database,
    process_cpu,
    pushops_command,
)
from benchmarks.scheduler import (  # noqa: E402
    TEAM,
    FakeProcess,
    _app,
    _count,
    _due_times,
    _percentile,
    _store,
)
from storage import workspaces  # noqa: E402
from storage.audit import AuditKeys  # noqa: E402
from storage.crypto import KeyRing, generate_key  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrations import upgrade  # noqa: E402
from storage.models import SendState, utcnow  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
START_TIMEOUT = 120.0
TARGET_SPEEDUP = 1.5
_ARMED = re.compile(r"scheduler started \(worker [^)]*\): (\d+) timers armed")


WORKER_APP = "pushops-replicas-worker"
"""The application name the workers' connections carry: what the sampler looks at."""
SAMPLE_EVERY = 0.02
# (what a sampled connection is doing, as reported) in the order printed.
_HEAD_STATEMENT = re.compile(
    r"\s*(UPDATE workspaces|SELECT workspaces\.team_id, workspaces\.audit_head)", re.I
)
ACTIVITIES = ("running", "head lock", "other lock", "disk", "in transaction", "other")


def _activity(state: str | None, wait_type: str | None, wait: str | None, query: str) -> str:
    """What one row of pg_stat_activity says its connection is doing."""
    if state == "idle in transaction":
        return "in transaction"  # the worker's Python between two statements of a transaction
    if state != "active":
        return "other"
    if wait_type == "Lock":
        # The audit chain's head is its workspace's row: an append's first statement locks it
        # (an UPDATE of one head, or a SELECT ... FOR NO KEY UPDATE of several).
        return "head lock" if _HEAD_STATEMENT.match(query) else "other lock"
    if wait_type == "IO" or (wait_type == "LWLock" and (wait or "").startswith("WAL")):
        return "disk"
    if wait_type is None or wait_type == "Client":
        return "running"  # on a CPU, or its answer on its way to the worker
    return "other"


@dataclass
class Activity:
    """The workers' connections as PostgreSQL saw them, sampled: average connections in each
    activity, and the CPU seconds of their backends."""

    samples: int = 0
    seen: Counter[str] = field(default_factory=Counter)
    backend_cpu: float = 0.0
    lock_waits: Counter[str] = field(default_factory=Counter)

    def average(self, activity: str) -> float:
        return self.seen[activity] / self.samples if self.samples else 0.0


class Sampler:
    """Samples pg_stat_activity of the workers' connections every `SAMPLE_EVERY` seconds in a
    thread of its own, from `start` to `stop`; notes each backend's CPU (Linux /proc, the
    server being on this machine) at both ends."""

    def __init__(self, url: str) -> None:
        from sqlalchemy.engine import make_url

        self._dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.activity = Activity()
        self._cpu_at_start: dict[int, float] = {}
        self._pids: set[int] = set()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> Activity:
        self._stopping.set()
        self._thread.join(timeout=10)
        self.activity.backend_cpu = sum(
            _cpu_or_zero(pid) - self._cpu_at_start.get(pid, 0.0) for pid in self._pids
        )
        return self.activity

    def _run(self) -> None:
        import psycopg

        with psycopg.connect(self._dsn, autocommit=True) as connection:
            first = True
            while not self._stopping.is_set():
                rows = connection.execute(
                    "SELECT pid, state, wait_event_type, wait_event, query FROM pg_stat_activity"
                    " WHERE application_name = %s AND datname = current_database()",
                    (WORKER_APP,),
                ).fetchall()
                self._note(rows, first)
                first = False
                self._stopping.wait(SAMPLE_EVERY)

    def _note(self, rows: list[tuple[Any, ...]], first: bool) -> None:
        activity = self.activity
        activity.samples += 1
        for pid, state, wait_type, wait, query in rows:
            if pid not in self._pids:
                self._pids.add(pid)
                # A backend started later began at no CPU at all.
                self._cpu_at_start[pid] = _cpu_or_zero(pid) if first else 0.0
            seen = _activity(state, wait_type, wait, query or "")
            activity.seen[seen] += 1
            if seen.endswith("lock"):
                activity.lock_waits[f"{wait}: {' '.join((query or '').split())[:60]}"] += 1


def _cpu_or_zero(pid: int) -> float:
    try:
        return process_cpu(pid)
    except OSError:  # gone, or another user's process this one may not read
        return 0.0


@dataclass
class Run:
    workers: int
    workspaces: int
    count: int
    notifications: int
    requests: int
    duplicate_keys: int
    recorded: int
    seconds: float
    p50: float
    p99: float
    max: float
    cpu_ms: float
    load: tuple[float, float, float]
    activity: Activity = field(default_factory=Activity)

    @property
    def backend_cpu_ms(self) -> float:
        return self.activity.backend_cpu / self.count * 1000

    @property
    def rate(self) -> float:
        return self.count / self.seconds if self.seconds else 0.0

    @property
    def exactly_once(self) -> bool:
        return self.notifications == self.requests == self.recorded == self.count and not (
            self.duplicate_keys
        )


def _worker_env(url: str, key: str, onesignal_url: str, workdir: Path) -> dict[str, str]:
    return {
        **base_env(),
        "DATABASE_URL": _named(url),
        "PUSHOPS_SECRET_KEY": key,
        "PUSHOPS_DATA_DIR": str(workdir / "data"),
        "ONESIGNAL_API_URL": onesignal_url,
        "PUSHOPS_LOG_LEVEL": "INFO",
    }


def _named(url: str) -> str:
    """`url` with the application name the sampler knows the workers' connections by."""
    from sqlalchemy.engine import make_url

    named = make_url(url).update_query_dict({"application_name": WORKER_APP})
    return named.render_as_string(hide_password=False)


async def _start_workers(count: int, env: dict[str, str], workdir: Path) -> list[Any]:
    logs = [workdir / f"worker-{n}.log" for n in range(count)]
    processes = []
    for path in logs:
        with path.open("w") as log:
            processes.append(
                subprocess.Popen(  # noqa: ASYNC220 - started once each, then polled
                    [*pushops_command(), "worker"],
                    cwd=workdir,
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
    began = time.monotonic()
    while time.monotonic() - began < START_TIMEOUT:
        for process, path in zip(processes, logs, strict=True):
            if process.poll() is not None:
                raise RuntimeError(f"a worker exited; see {path}")
        if all(_ARMED.search(path.read_text(errors="replace")) for path in logs):
            return processes
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the workers did not start within {START_TIMEOUT:.0f} s")


def _team(index: int) -> str:
    return TEAM if index == 0 else f"{TEAM}{index:04d}"


async def _seed(
    database: Database, keyring: KeyRing, fake: FakeProcess, args: argparse.Namespace,
    spread: int, opens: Any,
) -> None:  # fmt: skip
    """The workspaces, each with the fake's app, and the sends dealt among them in turn."""
    dues = [opens + timedelta(seconds=args.window * i / args.sends) for i in range(args.sends)]
    for index in range(spread):
        async with database.sessions.begin() as session:
            await workspaces.ensure_workspace(session=session, team_id=_team(index), name="bench")
        app = await _app(database, keyring, fake, _team(index))
        await _store(database, app, dues[index::spread], "W")


async def one_run(args: argparse.Namespace, workers: int, spread: int, workdir: Path) -> Run:
    key = generate_key()
    keyring = KeyRing.from_text(key)
    with postgres_database(args.database_url) as url, FakeProcess() as fake:
        assert url is not None
        database = Database.open(url, audit_keys=AuditKeys.from_keyring(keyring))
        processes: list[Any] = []
        try:
            await upgrade(database.engine)
            # Stored first: a worker arms the timers it finds at its start (it would see sends
            # stored later only at its next sweep).
            opens = utcnow() + timedelta(seconds=args.lead)
            await _seed(database, keyring, fake, args, spread, opens)
            processes = await _start_workers(
                workers, _worker_env(url, key, fake.url, workdir), workdir
            )
            if utcnow() > opens:
                print(f"  the workers were armed only {utcnow() - opens} after the window opened",
                      file=sys.stderr)  # fmt: skip
            await asyncio.sleep(max(0.0, (opens - utcnow()).total_seconds()))
            sampler = Sampler(url)
            sampler.start()
            cpu = sum(process_cpu(p.pid) for p in processes)
            await _wait_sent(database, args.sends, args.window + args.lead + 180)
            cpu = sum(process_cpu(p.pid) for p in processes) - cpu
            activity = sampler.stop()
            load = os.getloadavg()
            arrivals, notifications, _ = fake.report()
            dues_at = await _due_times(database)
            sent = await _count(database, SendState.SENT)
            run = _run(workers, args.sends, arrivals, notifications, dues_at, sent, opens, cpu,
                       load)  # fmt: skip
            run.workspaces, run.activity = spread, activity
            return run
        finally:
            for process in processes:
                _stop(process)
            await database.dispose()


async def _wait_sent(database: Database, count: int, limit_s: float) -> None:
    """Until `count` sends are recorded sent (other processes record them: polled)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if await _count(database, SendState.SENT) >= count:
            return
        await asyncio.sleep(0.5)


def _run(
    workers: int, count: int, arrivals: list[tuple[str, float]], notifications: int,
    dues: dict[str, float], recorded: int, opens: Any, cpu: float,
    load: tuple[float, float, float],
) -> Run:  # fmt: skip
    wall_offset = time.time() - time.monotonic()  # the fake stamps time.monotonic()
    keys = Counter(key for key, _ in arrivals)
    late = [at + wall_offset - dues[key] for key, at in arrivals if key in dues]
    last = max((at + wall_offset for _, at in arrivals), default=opens.timestamp())
    return Run(
        workers=workers,
        workspaces=1,
        count=count,
        notifications=notifications,
        requests=len(arrivals),
        duplicate_keys=sum(1 for seen in keys.values() if seen > 1),
        recorded=recorded,
        seconds=max(last - opens.timestamp(), 1e-3),
        p50=_percentile(late, 0.5) if late else float("nan"),
        p99=_percentile(late, 0.99) if late else float("nan"),
        max=max(late) if late else float("nan"),
        cpu_ms=cpu / count * 1000,
        load=load,
    )


def report(runs: list[Run], args: argparse.Namespace) -> int:
    print(
        f"Replicas: `pushops worker` x N on one PostgreSQL, {args.sends:,} sends due within "
        f"{args.window:g} s, the fake OneSignal in its own process ({os.cpu_count()} cores)"
    )
    print(
        f"{'workers':>7} {'spaces':>6} {'sends/s':>8} {'late p50':>9} {'late p99':>9} "
        f"{'late max':>9} {'CPU/send':>9} {'PG/send':>8} {'notifs':>7} {'dup keys':>8} "
        f"{'sent':>7} {'once':>5}  load average"
    )
    for run in runs:
        print(
            f"{run.workers:>7} {run.workspaces:>6} {run.rate:>8.0f} {run.p50 * 1000:>7.0f}ms "
            f"{run.p99 * 1000:>7.0f}ms {run.max * 1000:>7.0f}ms {run.cpu_ms:>7.2f}ms "
            f"{run.backend_cpu_ms:>6.2f}ms {run.notifications:>7,} {run.duplicate_keys:>8} "
            f"{run.recorded:>7,} {'yes' if run.exactly_once else 'NO':>5}"
            f"  {run.load[0]:.2f} {run.load[1]:.2f} {run.load[2]:.2f}"
        )
    _report_activity(runs)
    for spread in dict.fromkeys(run.workspaces for run in runs):
        one = next((r for r in runs if r.workers == 1 and r.workspaces == spread), None)
        two = next((r for r in runs if r.workers == 2 and r.workspaces == spread), None)
        if one is not None and two is not None:
            speedup = two.rate / one.rate if one.rate else 0.0
            print(f"{spread} workspace(s): 2 workers deliver {speedup:.2f}x what one does "
                  f"(target {TARGET_SPEEDUP:g}x)")  # fmt: skip
    return 0 if all(run.exactly_once for run in runs) else 1


def _report_activity(runs: list[Run]) -> None:
    print()
    print("The workers' connections as PostgreSQL saw them (average connections, sampled):")
    print(f"{'workers':>7} {'spaces':>6} " + " ".join(f"{a:>14}" for a in ACTIVITIES))
    for run in runs:
        averages = " ".join(f"{run.activity.average(a):>14.3f}" for a in ACTIVITIES)
        print(f"{run.workers:>7} {run.workspaces:>6} {averages}")
    for run in runs:
        for what, seen in run.activity.lock_waits.most_common(3):
            share = seen / run.activity.samples if run.activity.samples else 0.0
            print(f"  {run.workers} worker(s), {run.workspaces} workspace(s): {share:.3f} "
                  f"waiting on {what}")  # fmt: skip


def _workers(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("give counts of workers, like 1,2,4")
    return counts


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=_workers, default=[1, 2, 4])
    parser.add_argument(
        "--workspaces", type=_workers, default=[1, 100],
        help="counts of workspaces the sends are dealt among, like 1,100",
    )  # fmt: skip
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument(
        "--lead", type=float, default=20.0,
        help="seconds from storing the sends to the window opening: the workers start within",
    )  # fmt: skip
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PUSHOPS_BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="a PostgreSQL server: each run gets a fresh database there, dropped afterwards",
    )
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    runs = []
    for spread in args.workspaces:
        for workers in args.workers:
            workdir = Path(tempfile.mkdtemp(prefix="pushops-replicas-"))
            try:
                runs.append(await one_run(args, workers, spread, workdir))
                print(f"  {workers} workers, {spread} workspace(s) done", file=sys.stderr,
                      flush=True)  # fmt: skip
            finally:
                shutil.rmtree(workdir, ignore_errors=True)
    return report(runs, args)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
