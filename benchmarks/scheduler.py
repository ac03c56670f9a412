"""The scheduler: 10,000 sends and 1,000 series' occurrences due inside 10 s, and re-arming
10,000 timers after a restart.

    .venv/bin/python benchmarks/scheduler.py [--sends 10000] [--series 1000] [--window 10]
        [--database-url URL]

One PushOps process, as the issue asks: a `Deliverer` with its `Scheduler`, built as
`pushops serve` builds them (the default `DeliveryPolicy`: 50 OneSignal calls in flight,
one pooled client), delivers over loopback to the fake OneSignal (tests/fakes/onesignal),
which runs in a child process of its own, as OneSignal runs elsewhere: served from a
thread of this process, its CPU would be charged to PushOps's event loop through the GIL.
The database is a fresh SQLite file unless --database-url names another (an empty
PostgreSQL database, say). Once the scheduler has started, the garbage collector is set
as `pushops serve` and `pushops worker` set it (bot/collector.py); `--no-freeze` leaves it
at Python's defaults.

Burst: `--sends` scheduled sends, due evenly across a `--window`-second window that opens
a few seconds after they are stored, and `--series` recurring sends (every hour) whose next
occurrence is due in the same window, each made into a send of its own by the scheduler's
sweep (`storage.series.materialise_due`) under a key derived from the series and the
occurrence time; the scheduler is started (arming every timer) and the run waits until each
send, occurrences included, is recorded `sent`. Lateness of a send = when its request
reached the fake minus its due time. Also counted: notifications the fake holds, and
requests per idempotency key (a duplicate would show as a key seen twice). CPU per send is
that of PushOps (all its threads), of which its event loop's thread, and the fake's
process; the time Python's garbage collector ran during the burst, and its longest
pause, are shown too (both are on the path of every send in this one process).

Restart: `--sends` sends scheduled within the timers' horizon (`bot.timers.DEFAULT_HORIZON`:
a process arms timers only for sends due that soon, and its sweep arms the later ones as they
come within it); a fresh scheduler (as after a restart) is timed from `start()` to its
return, when every timer is armed.

Targets (issue 4): p99 lateness < 1 s, re-arming < 5 s, exactly `--sends` + `--series`
notifications, each occurrence once under its derived key.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import logging
import multiprocessing
import os
import resource
import statistics
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from bot import collector  # noqa: E402
from bot.delivery import Deliverer  # noqa: E402
from bot.notifier import Notifier, NullNotifier  # noqa: E402
from bot.onesignal import make_http_client  # noqa: E402
from bot.onesignal_clients import OneSignalClients  # noqa: E402
from bot.scheduling import Scheduler  # noqa: E402
from bot.settings import Settings  # noqa: E402
from bot.timers import DEFAULT_HORIZON, Timers  # noqa: E402
from storage import workspaces  # noqa: E402
from storage.audit import AuditKeys  # noqa: E402
from storage.crypto import KeyRing, generate_key  # noqa: E402
from storage.db import Database, display_url  # noqa: E402
from storage.migrations import upgrade  # noqa: E402
from storage.models import (  # noqa: E402
    OneSignalApp,
    Send,
    SendState,
    Series,
    SeriesApproval,
    SeriesState,
    utcnow,
)
from storage.series import occurrence_id  # noqa: E402
from tests.fakes.onesignal import FakeOneSignal  # noqa: E402

TEAM = "T0BENCH"
LEAD = 4.0  # seconds between storing the burst and its window opening
TARGET_P99 = 1.0
TARGET_REARM = 5.0
DEFAULT_GC_THRESHOLDS = gc.get_threshold()


def _serve_fake(pipe: Any) -> None:
    """The child process: serve a fake OneSignal; answer "report" (and "deletes") until
    told "stop"."""
    with FakeOneSignal() as fake:
        fake.record_requests = True
        pipe.send((fake.url, fake.app.id, fake.app.rest_api_key))
        while (asked := pipe.recv()) != "stop":
            if asked == "deletes":
                deleted = fake.requests_to("DELETE", "/notifications/")
                pipe.send([(request.path.rsplit("/", 1)[-1], request.time) for request in deleted])
                continue
            posted = fake.requests_to("POST", "/notifications")
            arrivals = [(request.json["idempotency_key"], request.time) for request in posted]
            pipe.send((arrivals, len(fake.notifications), _process_cpu()))


class FakeProcess:
    """The fake OneSignal in a child process. Its request times are `time.monotonic()`
    readings: on Linux that clock is the system's, the same in both processes."""

    def __init__(self) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(target=_serve_fake, args=(child,), daemon=True)

    def __enter__(self) -> FakeProcess:
        self._process.start()
        self.url, self.app_id, self.rest_api_key = self._pipe.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)

    def report(self) -> tuple[list[tuple[str, float]], int, float]:
        """Every create request's (idempotency key, arrival), notifications held, CPU s."""
        self._pipe.send("report")
        arrivals, notifications, cpu = self._pipe.recv()
        return arrivals, notifications, cpu

    def deletes(self) -> list[tuple[str, float]]:
        """Every cancel request's (notification id, arrival)."""
        self._pipe.send("deletes")
        found: list[tuple[str, float]] = self._pipe.recv()
        return found


async def _database(url: str | None, workdir: Path, keyring: KeyRing) -> Database:
    target = url or f"sqlite:///{workdir / 'bench.db'}"
    database = Database.open(target, audit_keys=AuditKeys.from_keyring(keyring))
    await upgrade(database.engine)
    return database


async def _app(
    database: Database, keyring: KeyRing, fake: FakeProcess, team: str = TEAM
) -> OneSignalApp:
    from pydantic import SecretStr

    async with database.sessions.begin() as session:
        return await workspaces.add_app(
            session=session,
            keyring=keyring,
            team_id=team,
            name="bench",
            onesignal_app_id=fake.app_id,
            api_key=SecretStr(fake.rest_api_key),
            added_by="U0BENCH",
        )


async def _store(database: Database, app: OneSignalApp, dues: list[datetime], tag: str) -> None:
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "short_id": f"{tag}{i:05d}",
            "team_id": app.team_id,
            "app_ref": app.id,
            "app_name": app.name,
            "requester_id": "U0BENCH",
            "content": {"message": f"burst {i}"},
            "audience": {"segments": ["Subscribed Users"]},
            "state": SendState.SCHEDULED,
            "due_at": due,
        }
        for i, due in enumerate(dues)
    ]
    async with database.sessions.begin() as session:
        for start in range(0, len(rows), 1000):
            await session.execute(sa.insert(Send), rows[start : start + 1000])


async def _store_series(database: Database, app: OneSignalApp, dues: list[datetime]) -> None:
    """Series every hour whose next occurrence is at each of `dues`, in one statement."""
    rows: list[dict[str, Any]] = [
        {
            "id": uuid.uuid4(),
            "short_id": f"S{i:05d}",
            "team_id": TEAM,
            "app_ref": app.id,
            "app_name": app.name,
            "requester_id": "U0BENCH",
            "content": {"message": f"series {i}"},
            "audience": {"segments": ["Subscribed Users"]},
            "rule": {
                "every": "interval",
                "zone": "UTC",
                "start": due.isoformat(),
                "interval": 3600,
            },
            "timezone": "UTC",
            "next_at": due,
            "state": SeriesState.ACTIVE,
            "approval": SeriesApproval.NOT_NEEDED,
            "slack_messages": {},
        }
        for i, due in enumerate(dues)
    ]
    if rows:
        async with database.sessions.begin() as session:
            await session.execute(sa.insert(Series), rows)


async def _occurrence_keys(database: Database) -> tuple[int, int]:
    """(occurrences made, of which under the key derived from their series and time)."""
    async with database.sessions() as session:
        rows = (
            await session.execute(
                sa.select(Send.id, Send.series_id, Send.occurrence_at).where(
                    Send.series_id.is_not(None)
                )
            )
        ).all()
    derived = sum(1 for row in rows if row.id == occurrence_id(row.series_id, row.occurrence_at))
    return len(rows), derived


async def _count(database: Database, state: SendState) -> int:
    async with database.sessions() as session:
        query = sa.select(sa.func.count()).select_from(Send).where(Send.state == state)
        return int(await session.scalar(query) or 0)


async def _due_times(database: Database) -> dict[str, float]:
    async with database.sessions() as session:
        rows = await session.execute(sa.select(Send.id, Send.due_at))
        return {str(row.id): row.due_at.timestamp() for row in rows}


class Delivered(NullNotifier):
    """Counts delivered sends; `all` is set once `expected` were recorded as sent."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.count = 0
        self.all = asyncio.Event()

    async def send_delivered(self, send: Send) -> None:
        self.count += 1
        if self.count >= self.expected:
            self.all.set()


def _services(
    database: Database, keyring: KeyRing, settings: Settings, http: Any, notifier: Notifier
) -> tuple[Deliverer, Scheduler]:
    clients = OneSignalClients(http, settings.onesignal_api_url)
    deliverer = Deliverer(
        database=database,
        keyring=keyring,
        clients=clients,
        settings=settings,
        timers=Timers(),
        notifier=notifier,
    )
    return deliverer, Scheduler(database=database, deliverer=deliverer, settings=settings)


def _process_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _thread_cpu(native_id: int | None) -> float:
    """CPU seconds of one thread of this process (Linux), 0 where unknown."""
    try:
        fields = Path(f"/proc/self/task/{native_id}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class GcWatch:
    """Time spent in garbage collection while it is on: total, longest pause, collections."""

    def __init__(self) -> None:
        self.total = self.longest = 0.0
        self.collections = [0, 0, 0]
        self._started = 0.0

    def __enter__(self) -> GcWatch:
        gc.callbacks.append(self._callback)
        return self

    def __exit__(self, *exc_info: object) -> None:
        gc.callbacks.remove(self._callback)

    def _callback(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        pause = time.perf_counter() - self._started
        self.total += pause
        self.longest = max(self.longest, pause)
        self.collections[info["generation"]] += 1


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def burst(
    database: Database,
    keyring: KeyRing,
    fake: FakeProcess,
    count: int,
    window: float,
    *,
    series: int = 0,
    freeze: bool = True,
) -> dict[str, Any]:
    """`count` sends and `series` series' occurrences due across `window` seconds: lateness
    at the fake, and what it holds."""
    app = await _app(database, keyring, fake)
    opens = utcnow() + timedelta(seconds=LEAD)
    dues = [opens + timedelta(seconds=window * i / count) for i in range(count)]
    await _store(database, app, dues, "B")
    await _store_series(
        database,
        app,
        [opens + timedelta(seconds=window * (i + 0.5) / series) for i in range(series)],
    )
    total = count + series
    settings = Settings(_env_file=None, onesignal_api_url=fake.url)
    http = make_http_client()
    delivered = Delivered(total)
    deliverer, scheduler = _services(database, keyring, settings, http, delivered)
    cpu, fake_cpu = _process_cpu(), fake.report()[2]
    loop_thread = threading.get_native_id()
    loop_cpu = _thread_cpu(loop_thread)
    began = time.perf_counter()
    with GcWatch() as collections:
        await scheduler.start()
        armed_in = time.perf_counter() - began
        if freeze:
            collector.settle()  # as pushops serve and worker, once their services started
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(delivered.all.wait(), timeout=window + LEAD + 120)
    recorded_after = (utcnow() - dues[-1]).total_seconds()
    loop_cpu = _thread_cpu(loop_thread) - loop_cpu
    cpu = _process_cpu() - cpu
    arrivals, notifications, fake_end_cpu = fake.report()
    fake_cpu = fake_end_cpu - fake_cpu
    await scheduler.stop()
    await deliverer.aclose()
    await http.aclose()
    gc.unfreeze()
    gc.set_threshold(*DEFAULT_GC_THRESHOLDS)
    made, derived = await _occurrence_keys(database)
    return _lateness(arrivals, notifications, await _due_times(database), total) | {
        "occurrences": made,
        "derived_keys": derived,
        "armed_in": armed_in,
        "recorded": await _count(database, SendState.SENT),
        "recorded_after": recorded_after,
        "cpu_ms": cpu / total * 1000,
        "loop_cpu_ms": loop_cpu / total * 1000,
        "fake_cpu_ms": fake_cpu / total * 1000,
        "gc": collections,
    }


def _lateness(
    arrivals: list[tuple[str, float]], notifications: int, dues: dict[str, float], count: int
) -> dict[str, Any]:
    # The fake stamps arrivals with time.monotonic(), the same clock in both processes.
    wall_offset = time.time() - time.monotonic()
    keys = Counter(key for key, _ in arrivals)
    late = [at + wall_offset - dues[key] for key, at in arrivals if key in dues]
    return {
        "notifications": notifications,
        "requests": len(arrivals),
        "duplicate_keys": sum(1 for seen in keys.values() if seen > 1),
        "p50": statistics.median(late) if late else float("nan"),
        "p99": _percentile(late, 0.99) if late else float("nan"),
        "max": max(late) if late else float("nan"),
        "early": sum(1 for value in late if value < 0),
        "count": count,
    }


async def restart(
    database: Database, keyring: KeyRing, fake: FakeProcess, count: int
) -> dict[str, Any]:
    """`count` sends due within the timers' horizon, from a minute ahead; how long a fresh
    scheduler takes to arm every timer."""
    async with database.sessions() as session:
        app = await workspaces.get_app(session=session, team_id=TEAM, name="bench")
    assert app is not None
    ahead = utcnow() + timedelta(minutes=1)
    spread = (DEFAULT_HORIZON - timedelta(minutes=2)) / max(count, 1)  # all due within it
    await _store(database, app, [ahead + spread * i for i in range(count)], "R")
    settings = Settings(_env_file=None, onesignal_api_url=fake.url)
    http = make_http_client()
    deliverer, scheduler = _services(database, keyring, settings, http, NullNotifier())
    began = time.perf_counter()
    await scheduler.start()
    elapsed = time.perf_counter() - began
    armed = scheduler.armed
    await scheduler.stop()
    await deliverer.aclose()
    await http.aclose()
    return {"rearm": elapsed, "armed": armed}


async def main(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.WARNING)
    keyring = KeyRing.from_text(generate_key())
    with tempfile.TemporaryDirectory() as workdir, FakeProcess() as fake:
        database = await _database(args.database_url, Path(workdir), keyring)
        try:
            async with database.sessions.begin() as session:
                await workspaces.ensure_workspace(session=session, team_id=TEAM, name="bench")
            first = await burst(
                database,
                keyring,
                fake,
                args.sends,
                args.window,
                series=args.series,
                freeze=not args.no_freeze,
            )
            second = await restart(database, keyring, fake, args.sends)
        finally:
            await database.dispose()
    backend = "a SQLite file" if args.database_url is None else display_url(args.database_url)
    return report(first, second, args, backend)


def report(first: dict[str, Any], second: dict[str, Any], args: argparse.Namespace, db: str) -> int:
    """Print the figures beside their targets; 0 when every target is met."""
    count = args.sends + args.series
    gc_watch: GcWatch = first["gc"]
    gc_pauses = f"{gc_watch.longest * 1000:.0f} ms / " + ",".join(map(str, gc_watch.collections))
    rows = [
        ("lateness p50 (due -> request at fake)", f"{first['p50'] * 1000:.0f} ms", ""),
        ("lateness p99", f"{first['p99'] * 1000:.0f} ms", f"< {TARGET_P99 * 1000:.0f} ms"),
        ("lateness max", f"{first['max'] * 1000:.0f} ms", ""),
        ("requests sent before due", str(first["early"]), "0"),
        ("notifications at the fake", f"{first['notifications']:,}", f"exactly {count:,}"),
        ("requests / keys seen twice", f"{first['requests']:,} / {first['duplicate_keys']}", ""),
        (
            "series occurrences made / under derived keys",
            f"{first['occurrences']:,} / {first['derived_keys']:,}",
            f"exactly {args.series:,}",
        ),
        ("sends recorded sent (occurrences included)", f"{first['recorded']:,}", f"{count:,}"),
        ("  all recorded, after the last was due", f"{first['recorded_after']:.1f} s", ""),
        ("timers armed at start (burst)", f"{first['armed_in']:.2f} s", ""),
        ("CPU per send: PushOps (all its threads)", f"{first['cpu_ms']:.2f} ms", ""),
        ("  of which its event loop's thread", f"{first['loop_cpu_ms']:.2f} ms", ""),
        ("CPU per send: the fake OneSignal (its process)", f"{first['fake_cpu_ms']:.2f} ms", ""),
        ("garbage collection during the burst", f"{gc_watch.total:.2f} s", ""),
        ("  longest pause / gen0,1,2 collections", gc_pauses, ""),
        (f"restart: {second['armed']:,} timers armed in", f"{second['rearm']:.2f} s", "< 5 s"),
    ]
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"Scheduler benchmark: {args.sends:,} sends and {args.series:,} series' occurrences "
        f"due within {args.window:g} s, on {db}"
    )
    gc_set = (
        "Python's defaults" if args.no_freeze else "as pushops serve sets it (bot/collector.py)"
    )
    print(f"  ({os.cpu_count()} CPUs, load average {load} at the end; garbage collector {gc_set};")
    print("   the fake OneSignal in a child process)")
    width = max(len(name) for name, _, _ in rows)
    for name, value, target in rows:
        print(f"  {name:<{width}}  {value:>14}  {('target ' + target) if target else ''}")
    met = (
        first["p99"] < TARGET_P99
        and second["rearm"] < TARGET_REARM
        and second["armed"] == args.sends
        and first["notifications"] == count
        and first["duplicate_keys"] == 0
        and first["occurrences"] == first["derived_keys"] == args.series
        and first["early"] == 0
    )
    print("All targets met." if met else "Some target was missed.")
    return 0 if met else 1


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=10_000)
    parser.add_argument("--series", type=int, default=1_000)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--database-url", help="default: a fresh SQLite file")
    parser.add_argument(
        "--no-freeze", action="store_true", help="leave the garbage collector at its defaults"
    )
    return parser.parse_args()


if __name__ == "__main__":
    raise SystemExit(asyncio.run(main(_arguments())))
