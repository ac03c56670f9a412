"""The brake under load: `/push cancel` and a Cancel button while 10,000 sends go out.

    .venv/bin/python benchmarks/brake.py [--layout single|serve+worker|both] [--sends 10000]
        [--window 10] [--brakes 20] [--each]
        [--database-url postgresql://postgres@127.0.0.1:5432/postgres]

Two layouts, each on a fresh PostgreSQL database at --database-url, with the fake Slack
(benchmarks/servers/fake_slack.py) and the fake OneSignal (in a child process, as in
benchmarks/scheduler.py); `--layout both` (the default) runs one after the other and reports
both:
- `single`: one `pushops serve` does everything: answers Slack and, with its own scheduler,
  delivers the burst and tells Slack of each send;
- `serve+worker`: the production layout (compose.yaml, docs/operations.md): `pushops serve`
  and one `pushops worker` on the same database, started with the same settings, the worker
  first. The brakes go to serve. Both schedulers arm the burst's timers, and each send is
  delivered by whichever claims it first (serve keeps a scheduler in production too): the
  report says how many each delivered, and which process stopped each brake's send.
The scheduler benchmark's burst, `--sends` sends due evenly within `--window` s, is stored
before the processes start (they arm them at their start). While they go out, `--brakes`
times each of four kinds of brake, spread over the window, are signed requests to serve's
`/slack/events`:
- `/push cancel ID` of a scheduled send due 0.5 s later (it must not go out);
- `/push cancel ID` of a send of the burst due 0.3 s before (out already, or going out:
  PushOps must ask OneSignal to cancel it);
- the Cancel button of `/push list` (a click) on sends of each kind.

Reported for each layout: the ack (HTTP response) p50/p99 of each kind; the brake's effect:
a send stopped before it went out (never created at the fake, recorded cancelled), or the
time from the request to OneSignal's DELETE of its notification, p50/p99/max, and how many
within 1 s; with `--each`, every brake on a line of its own (its send, ack, effect, the
process that claimed the send and the one that asked OneSignal to cancel it, read from the
audit log); and, from the same run, the burst's lateness (due -> request at the fake), exactly
once, which process delivered how many sends, and the CPU the PushOps processes used from the
window's opening until every send was recorded, per send of the burst.
Targets (issue 16): ack p99 <= 250 ms; every brake effective within 1 s.

The lead's figures: `.venv/bin/python benchmarks/brake.py --layout both --each` on a quiet
machine (about 4 minutes); the load average is printed with each layout.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.ack_latency import (  # noqa: E402
    _stop,
    base_env,
    free_port,
    generate_key,
    postgres_database,
    process_cpu,
    pushops_command,
)
from benchmarks.scale import _ARMED, START_TIMEOUT, ScaleSlack, Serve, quantile  # noqa: E402
from benchmarks.scheduler import FakeProcess, _store  # noqa: E402
from bot import const  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.models import AuditEvent, OneSignalApp, Send, SendState, utcnow  # noqa: E402
from tests.fakes import signing  # noqa: E402

DEFAULT_SERVER = "postgresql://postgres@127.0.0.1:5432/postgres"
LEAD = 20.0  # seconds from storing the burst to its window: serve starts within
ACK_TARGET_MS = 250.0
EFFECT_TARGET_S = 1.0
SETTLE_LIMIT = 600.0  # seconds after the window for every send to be recorded (a loaded machine)
KINDS = ("command, before due", "command, after due", "button, before due", "button, after due")
LAYOUTS = ("single", "serve+worker")


@dataclass
class Brake:
    kind: str
    send: Send
    at: float = 0.0  # time.monotonic() when the request left
    ack_ms: float | None = None


@dataclass
class Outcome:
    kind: str
    acks_ms: list[float] = field(default_factory=list)
    stopped_before: int = 0  # never created at OneSignal
    deleted_s: list[float] = field(default_factory=list)  # request -> DELETE at the fake
    neither: int = 0


@dataclass
class Effect:
    """What became of one brake: its send stopped before it went out, or OneSignal's DELETE
    `delete_s` after the request (None: neither); the processes (`serve`, `worker`) that
    claimed its send and that asked OneSignal to cancel it, from the audit log."""

    brake: Brake
    stopped_before: bool
    delete_s: float | None
    claimed_by: str
    cancelled_by: str


class Worker:
    """`pushops worker` in its own process, with its log kept."""

    def __init__(self, env: dict[str, str], workdir: Path) -> None:
        self.env = {name: value for name, value in env.items() if name != "PORT"}
        self.log_path = workdir / "worker.log"
        self.process: subprocess.Popen[Any] | None = None

    async def start(self) -> int:
        """Start it; how many timers it armed."""
        with self.log_path.open("w") as log:
            self.process = subprocess.Popen(  # noqa: ASYNC220 - started once, then polled
                [*pushops_command(), "worker"], cwd=self.log_path.parent, env=self.env,
                stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        began = time.monotonic()
        while time.monotonic() - began < START_TIMEOUT:
            if self.process.poll() is not None:
                raise RuntimeError(f"pushops worker exited; see {self.log_path}")
            found = _ARMED.search(self.log_path.read_text(errors="replace"))
            if found:
                return int(found[1])
            await asyncio.sleep(0.05)
        raise RuntimeError(f"pushops worker armed no timers within {START_TIMEOUT:.0f} s")

    def cpu(self) -> float:
        return process_cpu(self.process.pid) if self.process is not None else 0.0

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)


def _env(slack: dict[str, str], fake: FakeProcess, db: str, workdir: Path) -> dict[str, str]:
    return {
        **base_env(),
        "SLACK_BOT_TOKEN": slack["bot_token"],
        "SLACK_SIGNING_SECRET": slack["signing_secret"],
        "SLACK_API_URL": slack["api_url"],
        "ONESIGNAL_API_URL": fake.url,
        "ONESIGNAL_APP_ID": fake.app_id,
        "ONESIGNAL_API_KEY": fake.rest_api_key,
        "PUSHOPS_DATA_DIR": str(workdir / "data"),
        "DATABASE_URL": db,
        "PUSHOPS_SECRET_KEY": generate_key(workdir),
        "PUSHOPS_LOG_LEVEL": "INFO",
        "HOST": "127.0.0.1",
        "PORT": str(free_port()),
    }


async def _default_app(database: Database, team: str) -> OneSignalApp:
    async with database.sessions() as session:
        query = sa.select(OneSignalApp).where(OneSignalApp.team_id == team)
        return (await session.scalars(query)).one()


async def _sends(database: Database) -> dict[str, Send]:
    async with database.sessions() as session:
        return {send.short_id: send for send in await session.scalars(sa.select(Send))}


def _plan(sends: dict[str, Send], args: argparse.Namespace) -> list[tuple[float, Brake]]:
    """(when, brake): each brake's moment, from the window's opening, in order."""
    victims = sorted((s for s in sends.values() if s.short_id.startswith("V")), key=_due)
    burst = sorted((s for s in sends.values() if s.short_id.startswith("B")), key=_due)
    opens = _due(burst[0])
    plan: list[tuple[float, Brake]] = []
    for kind_index, kind in enumerate(KINDS):
        for i in range(args.brakes):
            slot = (i * len(KINDS) + kind_index) / (args.brakes * len(KINDS))
            when = 0.5 + slot * (args.window - 1.0)
            if kind.endswith("before due"):
                send = victims[kind_index // 2 * args.brakes + i]
            else:  # the burst's send due 0.3 s before the request
                send = min(burst, key=lambda s, w=when: abs(_due(s) - opens - (w - 0.3)))
            plan.append((when, Brake(kind, send)))
    return sorted(plan, key=lambda item: item[0])


def _due(send: Send) -> float:
    assert send.due_at is not None
    return send.due_at.timestamp()


async def _fire(
    session: aiohttp.ClientSession, url: str, slack: dict[str, str], brake: Brake
) -> None:
    response_url = f"{slack['base_url']}/response/{uuid.uuid4().hex}"
    if brake.kind.startswith("command"):
        fields = signing.slash_command(
            text=f"cancel {brake.send.short_id}",
            response_url=response_url,
            user_id=slack["user_id"],
            team_id=slack["team_id"],
        )
        body = signing.form_body(fields)
    else:
        payload = signing.block_actions(
            action_id=const.ACTION_LIST_CANCEL,
            user_id=slack["user_id"],
            team_id=slack["team_id"],
            response_url=response_url,
            value=str(brake.send.id),
        )
        body = signing.interactive_body(payload)
    headers = signing.signed_headers(body, secret=slack["signing_secret"])
    brake.at = time.monotonic()
    began = time.perf_counter()
    async with session.post(url, data=body, headers=headers) as response:
        await response.read()
        if response.status == 200:
            brake.ack_ms = (time.perf_counter() - began) * 1000


async def _brake_during_burst(
    serve: Serve, slack: dict[str, str], plan: list[tuple[float, Brake]], opens: datetime
) -> None:
    wall_to_mono = time.monotonic() - time.time()
    start = opens.timestamp() + wall_to_mono
    tasks = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for when, brake in plan:
            delay = start + when - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            tasks.append(asyncio.create_task(_fire(session, serve.url, slack, brake)))
        await asyncio.gather(*tasks)


async def run(args: argparse.Namespace, layout: str, workdir: Path) -> dict[str, Any]:
    """One layout's run, on a database, fakes and processes of its own, in `workdir`."""
    log = (workdir / "slack.log").open("w")
    slack = ScaleSlack(log)
    serve: Serve | None = None
    worker: Worker | None = None
    try:
        with postgres_database(args.database_url) as url, FakeProcess() as fake:
            assert url is not None
            env = _env(slack.info, fake, url, workdir)
            serve = Serve(env, workdir)
            await serve.start()  # migrates; makes the workspace and its `default` app
            serve.stop()
            worker = Worker(env, workdir) if layout == "serve+worker" else None
            database = Database.open(url)
            try:
                found = await _measure(args, serve, worker, slack, fake, database)
            finally:
                await database.dispose()
            return {**found, "layout": layout}
    finally:
        if worker is not None:
            worker.stop()
        if serve is not None:
            serve.stop()
        slack.stop()
        log.close()


async def _measure(
    args: argparse.Namespace, serve: Serve, worker: Worker | None, slack: ScaleSlack,
    fake: FakeProcess, db: Database,
) -> dict[str, Any]:  # fmt: skip
    app = await _default_app(db, slack.info["team_id"])
    opens = utcnow() + timedelta(seconds=LEAD)
    dues = [opens + timedelta(seconds=args.window * i / args.sends) for i in range(args.sends)]
    await _store(db, app, dues, "B")
    victims = [
        opens + timedelta(seconds=0.5 + (args.window - 1.0) * i / (2 * args.brakes))
        for i in range(2 * args.brakes)
    ]  # placeholders: each is moved to 0.5 s after its brake below
    await _store(db, app, victims, "V")
    plan = _plan(await _sends(db), args)
    await _due_after_brake(db, plan, opens)
    worker_armed = await worker.start() if worker is not None else 0
    armed_s, armed = await serve.start()
    if utcnow() > opens:
        print("  the timers were armed only after the window opened", file=sys.stderr)
    pids = {serve.process.pid: "serve"} if serve.process is not None else {}
    if worker is not None and worker.process is not None:
        pids[worker.process.pid] = "worker"
    cpu = _cpu(serve, worker)
    await _brake_during_burst(serve, slack.info, plan, opens)
    ended = await _wait_settled(db, args.window + SETTLE_LIMIT)
    cpu_s = _cpu(serve, worker) - cpu
    found = await _results(args, plan, fake, db, pids)
    return {
        **found, "armed_s": armed_s, "armed": (armed, worker_armed), "cpu_s": cpu_s,
        "ended": ended,
    }  # fmt: skip


def _cpu(serve: Serve, worker: Worker | None) -> float:
    """CPU seconds of the PushOps processes so far."""
    return serve.cpu() + (worker.cpu() if worker is not None else 0.0)


async def _due_after_brake(db: Database, plan: list[tuple[float, Brake]], opens: datetime) -> None:
    """Each scheduled victim due 0.5 s after the brake that stops it."""
    async with db.sessions.begin() as session:
        for when, brake in plan:
            if brake.kind.endswith("before due"):
                due = opens + timedelta(seconds=when + 0.5)
                await session.execute(
                    sa.update(Send).where(Send.id == brake.send.id).values(due_at=due)
                )
                brake.send.due_at = due


async def _wait_settled(db: Database, limit_s: float) -> int:
    """Until no send is scheduled or sending any more (polled: serve records them), or
    `limit_s`; how many had ended then (the CPU measured until then is theirs)."""
    deadline = time.monotonic() + limit_s
    while True:
        async with db.sessions() as session:
            query = sa.select(Send.state, sa.func.count()).group_by(Send.state)
            counts = dict((await session.execute(query)).tuples().all())
        left = counts.get(SendState.SCHEDULED, 0) + counts.get(SendState.SENDING, 0)
        if not left or time.monotonic() > deadline:
            return sum(counts.values()) - left
        await asyncio.sleep(0.5)


async def _results(
    args: argparse.Namespace, plan: list[tuple[float, Brake]], fake: FakeProcess, db: Database,
    pids: dict[int, str],
) -> dict[str, Any]:  # fmt: skip
    arrivals, notifications, _ = fake.report()
    deletes = fake.deletes()
    sends = await _sends(db)
    claims, cancels, delivered = await _who(db, pids)
    created = Counter(key for key, _ in arrivals)
    deleted: dict[str, float] = {}
    for notification_id, at in deletes:
        deleted.setdefault(notification_id, at)
    outcomes = {kind: Outcome(kind) for kind in KINDS}
    effects = []
    for _, brake in plan:
        outcome = outcomes[brake.kind]
        if brake.ack_ms is not None:
            outcome.acks_ms.append(brake.ack_ms)
        now = sends[brake.send.short_id]
        stopped = str(now.id) not in created and now.state == SendState.CANCELLED
        delete_s = None
        if stopped:
            outcome.stopped_before += 1
        elif now.notification_id in deleted:
            delete_s = deleted[now.notification_id] - brake.at
            outcome.deleted_s.append(delete_s)
        else:
            outcome.neither += 1
        short = brake.send.short_id
        effects.append(
            Effect(brake, stopped, delete_s, claims.get(short, "-"), cancels.get(short, "-"))
        )
    wall = time.time() - time.monotonic()
    dues = {str(s.id): _due(s) for s in sends.values() if s.short_id.startswith("B")}
    late = [at + wall - dues[key] for key, at in arrivals if key in dues]
    return {
        "outcomes": list(outcomes.values()),
        "effects": effects,
        "late": late,
        "notifications": notifications,
        "duplicates": sum(1 for seen in created.values() if seen > 1),
        "sent": sum(1 for s in sends.values() if s.state == SendState.SENT),
        "cancelled": sum(1 for s in sends.values() if s.state == SendState.CANCELLED),
        "delivered": delivered,
        "load": os.getloadavg(),
    }


async def _who(
    db: Database, pids: dict[int, str]
) -> tuple[dict[str, str], dict[str, str], Counter[str]]:
    """From the audit log, by short id: the process that (last) claimed each send, and the
    one that asked OneSignal to cancel it (serve answering a brake is the Slack user who
    sent it); and how many sends each process recorded sent."""
    query = sa.select(AuditEvent.actor, AuditEvent.action, AuditEvent.target).where(
        AuditEvent.action.in_(["send.sending", "send.cancel_at_onesignal", "send.sent"])
    )
    claims: dict[str, str] = {}
    cancels: dict[str, str] = {}
    delivered: Counter[str] = Counter()
    async with db.sessions() as session:
        for actor, action, target in await session.execute(query.order_by(AuditEvent.seq)):
            short = target.removeprefix("send ")
            process = _process(actor, pids)
            if action == "send.sending":
                claims[short] = process
            elif action == "send.sent":
                delivered[process] += 1
            else:
                cancels[short] = process
    return claims, cancels, delivered


def _process(actor: str, pids: dict[int, str]) -> str:
    """`serve` or `worker` for a process's actor (`worker:host:pid:random`); a Slack user's
    actions are serve's, which answered them."""
    if not actor.startswith("worker:"):
        return "serve"
    parts = actor.split(":")
    pid = int(parts[2]) if len(parts) > 2 and parts[2].isdigit() else -1
    return pids.get(pid, actor)


def report(found: dict[str, Any], args: argparse.Namespace) -> bool:
    """Print one layout's figures; whether its targets were met with exactly once."""
    load = found["load"]
    processes = (
        "one `pushops serve`"
        if found["layout"] == "single"
        else "`pushops serve` (the brakes) and one `pushops worker`"
    )
    print(
        f"\nLayout {found['layout']}: {args.sends:,} sends due within {args.window:g} s through "
        f"{processes} on PostgreSQL; {args.brakes} brakes of each kind "
        f"({os.cpu_count()} cores, load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f})"
    )
    print(
        f"{'brake':20} {'ack p50':>8} {'ack p99':>8} {'stopped':>8} {'DELETE p50':>11} "
        f"{'p99':>7} {'max':>7} {'<=1 s':>6} {'neither':>8}"
    )
    met = True
    for o in found["outcomes"]:
        within = o.stopped_before + sum(1 for s in o.deleted_s if s <= EFFECT_TARGET_S)
        total = o.stopped_before + len(o.deleted_s) + o.neither
        print(
            f"{o.kind:20} {quantile(o.acks_ms, 0.5):>6.0f}ms {quantile(o.acks_ms, 0.99):>6.0f}ms "
            f"{o.stopped_before:>8} {_s(quantile(o.deleted_s, 0.5)):>11} "
            f"{_s(quantile(o.deleted_s, 0.99)):>7} {_s(max(o.deleted_s, default=0.0)):>7} "
            f"{f'{within}/{total}':>6} {o.neither:>8}"
        )
        met &= quantile(o.acks_ms, 0.99) <= ACK_TARGET_MS and within == total
    if args.each:
        _report_each(found["effects"])
    late = found["late"]
    armed, worker_armed = found["armed"]
    by = ", ".join(f"{name} {count:,}" for name, count in sorted(found["delivered"].items()))
    print(
        f"burst: lateness p50 {quantile(late, 0.5) * 1000:.0f} ms, p99 "
        f"{quantile(late, 0.99) * 1000:.0f} ms, max {max(late, default=0) * 1000:.0f} ms; "
        f"{found['notifications']:,} notifications, {found['duplicates']} keys seen twice, "
        f"{found['sent']:,} sent ({by}) and {found['cancelled']:,} cancelled; serve armed "
        f"{armed:,} timers in {found['armed_s']:.1f} s from its start"
        + (f", the worker {worker_armed:,}" if found["layout"] != "single" else "")
    )
    ended = found["ended"]
    unfinished = "" if ended >= args.sends else f" (only {ended:,} had ended: the time ran out)"
    print(
        f"CPU of the PushOps processes from the window's opening until every send was "
        f"recorded{unfinished}: {found['cpu_s']:.1f} s, "
        f"{found['cpu_s'] / max(1, ended) * 1000:.2f} ms per send"
    )
    print("stopped: never created at OneSignal; DELETE: request -> OneSignal's cancel (s)")
    print(f"targets: ack p99 <= {ACK_TARGET_MS:.0f} ms, every brake effective within 1 s: "
          f"{'met' if met else 'MISSED'}")  # fmt: skip
    return met and not found["duplicates"]


def _report_each(effects: list[Effect]) -> None:
    print(f"  {'brake':20} {'send':6} {'ack':>7} {'effect':>22} {'claimed by':>10} "
          f"{'cancel by':>9}")  # fmt: skip
    for effect in effects:
        brake = effect.brake
        ack = f"{brake.ack_ms:.0f}ms" if brake.ack_ms is not None else "none"
        if effect.stopped_before:
            what = "stopped before sent"
        elif effect.delete_s is not None:
            what = f"DELETE after {effect.delete_s:.2f} s"
        else:
            what = "NEITHER"
        print(
            f"  {brake.kind:20} {brake.send.short_id:6} {ack:>7} {what:>22} "
            f"{effect.claimed_by:>10} {effect.cancelled_by:>9}"
        )


def _s(value: float) -> str:
    return "-" if value in (0.0, float("inf")) else f"{value:.2f}"


def _arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="Both layouts in one run, every brake shown: "
        "benchmarks/brake.py --layout both --each",
    )
    parser.add_argument(
        "--layout",
        choices=[*LAYOUTS, "both"],
        default="both",
        help="single: one `pushops serve` delivers and answers; serve+worker: the production "
        "layout, `pushops serve` answering the brakes beside one `pushops worker`, both "
        "delivering; both (default): one after the other, in one run",
    )
    parser.add_argument("--sends", type=int, default=10_000)
    parser.add_argument("--window", type=float, default=10.0)
    parser.add_argument("--brakes", type=int, default=20, help="brakes of each kind")
    parser.add_argument(
        "--each", action="store_true", help="every brake's outcome on a line of its own"
    )
    parser.add_argument(
        "--database-url",
        default=os.environ.get("PUSHOPS_BENCH_DATABASE_URL", DEFAULT_SERVER),
        help="a PostgreSQL server: each layout gets a fresh database there, dropped afterwards",
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _arguments(argv)
    layouts = LAYOUTS if args.layout == "both" else (args.layout,)
    workdir = Path(tempfile.mkdtemp(prefix="pushops-brake-"))
    try:
        print(
            f"The brake under load ({', '.join(layouts)}): `/push cancel` and the Cancel "
            "button while a burst goes out"
        )
        met = True
        for layout in layouts:
            place = workdir / layout.replace("+", "-")
            place.mkdir()
            found = asyncio.run(run(args, layout, place))
            met &= report(found, args)
        return 0 if met else 1
    finally:
        if args.keep:
            print(f"logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
