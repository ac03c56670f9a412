"""Replicas: 1, 2 and 4 `pushops worker` processes on one PostgreSQL, 20,000 sends due in 20 s.

    .venv/bin/python benchmarks/replicas.py [--workers 1,2,4] [--sends 20000] [--window 20]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

For each count of workers: a fresh database on the server at --database-url (dropped
afterwards) holds one workspace whose app is the fake OneSignal's (tests/fakes/onesignal,
in a child process of its own, as in benchmarks/scheduler.py) and `--sends` sends due
evenly across a `--window`-second window that opens once every worker has armed its timers.
The workers are real `pushops worker` processes, started as an operator would.

Reported per count: sends delivered per second (from the window's opening to the last
request at the fake), lateness (request at the fake minus due time) p50/p99/max, the
workers' CPU per send (all of them, from the window's opening to the end), and exactly
once: notifications the fake holds, idempotency keys seen twice, sends recorded sent.
The load average is printed beside them: the machine's two cores are shared.

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
import time
from collections import Counter
from dataclasses import dataclass
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
LEAD = 20.0  # seconds from storing the sends to the window opening: the workers start within
START_TIMEOUT = 120.0
TARGET_SPEEDUP = 1.5
_ARMED = re.compile(r"scheduler started \(worker [^)]*\): (\d+) timers armed")


@dataclass
class Run:
    workers: int
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
        "DATABASE_URL": url,
        "PUSHOPS_SECRET_KEY": key,
        "PUSHOPS_DATA_DIR": str(workdir / "data"),
        "ONESIGNAL_API_URL": onesignal_url,
        "PUSHOPS_LOG_LEVEL": "INFO",
    }


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


async def one_run(args: argparse.Namespace, workers: int, workdir: Path) -> Run:
    key = generate_key()
    keyring = KeyRing.from_text(key)
    with postgres_database(args.database_url) as url, FakeProcess() as fake:
        assert url is not None
        database = Database.open(url, audit_keys=AuditKeys.from_keyring(keyring))
        processes: list[Any] = []
        try:
            await upgrade(database.engine)
            async with database.sessions.begin() as session:
                await workspaces.ensure_workspace(session=session, team_id=TEAM, name="bench")
            app = await _app(database, keyring, fake)
            # Stored first: a worker arms the timers it finds at its start (it would see sends
            # stored later only at its next sweep).
            opens = utcnow() + timedelta(seconds=LEAD)
            window = args.window
            dues = [opens + timedelta(seconds=window * i / args.sends) for i in range(args.sends)]
            await _store(database, app, dues, "W")
            processes = await _start_workers(
                workers, _worker_env(url, key, fake.url, workdir), workdir
            )
            if utcnow() > opens:
                print(f"  the workers were armed only {utcnow() - opens} after the window opened",
                      file=sys.stderr)  # fmt: skip
            cpu = sum(process_cpu(p.pid) for p in processes)
            await _wait_sent(database, args.sends, args.window + LEAD + 180)
            cpu = sum(process_cpu(p.pid) for p in processes) - cpu
            load = os.getloadavg()
            arrivals, notifications, _ = fake.report()
            dues_at = await _due_times(database)
            sent = await _count(database, SendState.SENT)
            return _run(workers, args.sends, arrivals, notifications, dues_at, sent, opens, cpu,
                        load)  # fmt: skip
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
        f"{'workers':>7} {'sends/s':>8} {'late p50':>9} {'late p99':>9} {'late max':>9} "
        f"{'CPU/send':>9} {'notifs':>7} {'dup keys':>8} {'sent':>7} {'once':>5}  load average"
    )
    for run in runs:
        print(
            f"{run.workers:>7} {run.rate:>8.0f} {run.p50 * 1000:>7.0f}ms {run.p99 * 1000:>7.0f}ms "
            f"{run.max * 1000:>7.0f}ms {run.cpu_ms:>7.2f}ms {run.notifications:>7,} "
            f"{run.duplicate_keys:>8} {run.recorded:>7,} {'yes' if run.exactly_once else 'NO':>5}"
            f"  {run.load[0]:.2f} {run.load[1]:.2f} {run.load[2]:.2f}"
        )
    one = next((r for r in runs if r.workers == 1), None)
    two = next((r for r in runs if r.workers == 2), None)
    if one is not None and two is not None:
        speedup = two.rate / one.rate if one.rate else 0.0
        print(f"2 workers deliver {speedup:.2f}x what one does (target {TARGET_SPEEDUP:g}x)")
    return 0 if all(run.exactly_once for run in runs) else 1


def _workers(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError("give counts of workers, like 1,2,4")
    return counts


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=_workers, default=[1, 2, 4])
    parser.add_argument("--sends", type=int, default=20_000)
    parser.add_argument("--window", type=float, default=20.0)
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PUSHOPS_BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="a PostgreSQL server: each run gets a fresh database there, dropped afterwards",
    )
    return parser.parse_args(argv)


async def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    runs = []
    for workers in args.workers:
        workdir = Path(tempfile.mkdtemp(prefix="pushops-replicas-"))
        try:
            runs.append(await one_run(args, workers, workdir))
            print(f"  {workers} workers done", file=sys.stderr, flush=True)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
    return report(runs, args)


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main()))
