"""Telling a burst in Slack: 1,000 sends due in the same minute, with a log channel, under
Slack's rate limits.

    .venv/bin/python benchmarks/slack_outbox.py [--sends 1000] [--requesters 50]
        [--window 60] [--speed 1] [--max-wait 2400]

`pushops worker` runs as it does in production, in a process of its own, on a fresh SQLite
file holding `--sends` scheduled sends due evenly within `--window` seconds, spread over
`--requesters` people, in a workspace with a log channel. The fake OneSignal
(tests/fakes/onesignal) and the fake Slack (tests/fakes/slack) run in child processes; the
fake Slack enforces Slack's documented limits (tests/fakes/slack_limits.py) at real speed, or
`--speed` times faster (PushOps paces itself at Slack's real rates either way).

Measured from the fake Slack's side, from the moment the last send was due:
- the time until every requester was told that each of their sends went out (in a DM of its
  own, "`7K3M9Q` … was sent", or in a digest naming it, "… went out"), and until the log
  channel showed every send's final state;
- Slack Web API calls per send, by method, and the 429s received; calls repeated before the
  Retry-After of their 429 ran out (Slack's patience, not to be tried; 0 expected).

Baselines: the log channel takes about one message a second (`chat.postMessage` per channel),
so bringing `--sends` log messages to their final state takes at least `--sends` seconds of
Slack's time: the ratio to that floor says how close PushOps runs to the limit. The calls per
send are set beside one message each (a log post, a DM: `conversations.open` and
`chat.postMessage`: 3 calls), what PushOps spent before it had an outbox.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import multiprocessing
import os
import re
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402
from pydantic import SecretStr  # noqa: E402

from benchmarks.scheduler import FakeProcess  # noqa: E402
from storage import workspaces  # noqa: E402
from storage.audit import AuditKeys  # noqa: E402
from storage.crypto import KeyRing, generate_key  # noqa: E402
from storage.db import Database  # noqa: E402
from storage.migrations import upgrade  # noqa: E402
from storage.models import Send, SendState, utcnow  # noqa: E402
from tests.fakes import signing  # noqa: E402
from tests.fakes.slack import DEFAULT_BOT_TOKEN, DEFAULT_TEAM_ID, RESPONSE_URL, FakeSlack  # noqa: E402
from tests.fakes.slack_limits import SLACK_LIMITS  # noqa: E402

LOG_CHANNEL = "C0PUSHLOG"
LEAD = 20.0  # seconds between storing the sends and the first falling due: the worker starts
NAIVE_CALLS = 3.0  # a log post and a DM (conversations.open, chat.postMessage) per send
_CODE = re.compile(r"`([0-9A-Z]{6})`")
_FINAL = re.compile(r"^`([0-9A-Z]{6})` \(OneSignal `[^`]+`\) was sent")


# --- the fake Slack, in a child process ---------------------------------------------------------


def _serve_slack(pipe: Any, speed: float, requesters: list[str]) -> None:
    """The child process: a fake Slack under Slack's limits; answers progress until "stop"."""
    fake = FakeSlack()
    fake.start()
    fake.limit(SLACK_LIMITS.scaled(speed=speed))
    for user in requesters:
        fake.add_user(user)
    pipe.send(fake.api_url)
    while (asked := pipe.recv()) != "stop":
        pipe.send(_progress(fake, set(asked)))
    fake.stop()


def _progress(fake: FakeSlack, ids: set[str]) -> dict[str, Any]:
    """When each send was first told to its requester and its log message made final."""
    told: dict[str, float] = {}
    final: dict[str, float] = {}
    calls: Counter[str] = Counter()
    limited: Counter[str] = Counter()
    for call in fake.calls:
        if call.method == RESPONSE_URL:
            continue
        if call.status == 429:
            limited[call.method] += 1
            continue
        calls[call.method] += 1
        text = str(call.args.get("text") or "")
        channel = str(call.args.get("channel") or "")
        if channel.startswith("D") and ("was sent" in text or "went out" in text):
            for short_id in ids.intersection(_CODE.findall(text)):
                told.setdefault(short_id, call.at)
        elif channel == LOG_CHANNEL and (found := _FINAL.match(text)):
            final.setdefault(found.group(1), call.at)
    return {
        "told": told,
        "final": final,
        "calls": dict(calls),
        "limited": dict(limited),
        "early": len(fake.early_retries),
    }


class SlackProcess:
    """The fake Slack in a child process; its call times are `time.monotonic()` readings,
    the system's clock on Linux, the same in every process."""

    def __init__(self, speed: float, requesters: list[str]) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipe, child = context.Pipe()
        self._process = context.Process(
            target=_serve_slack, args=(child, speed, requesters), daemon=True
        )

    def __enter__(self) -> SlackProcess:
        self._process.start()
        self.api_url: str = self._pipe.recv()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._pipe.send("stop")
        self._process.join(timeout=10)

    def progress(self, ids: list[str]) -> dict[str, Any]:
        """See `_progress`."""
        self._pipe.send(ids)
        answer: dict[str, Any] = self._pipe.recv()
        return answer


# --- the sends ------------------------------------------------------------------------------------


async def _database(path: Path, keyring: KeyRing) -> Database:
    database = Database.open(f"sqlite:///{path}", audit_keys=AuditKeys.from_keyring(keyring))
    await upgrade(database.engine)
    return database


async def _store(
    database: Database, keyring: KeyRing, fake: FakeProcess, args: argparse.Namespace
) -> tuple[list[str], float]:
    """The workspace, its app and log channel, and the sends; their short ids and the
    monotonic time the last falls due."""
    async with database.sessions.begin() as session:
        await workspaces.ensure_workspace(session=session, team_id=DEFAULT_TEAM_ID, name="bench")
        await workspaces.update_workspace(
            session=session, team_id=DEFAULT_TEAM_ID, actor="U0BENCH", log_channel_id=LOG_CHANNEL
        )
        app = await workspaces.add_app(
            session=session,
            keyring=keyring,
            team_id=DEFAULT_TEAM_ID,
            name="default",
            onesignal_app_id=fake.app_id,
            api_key=SecretStr(fake.rest_api_key),
            added_by="U0BENCH",
        )
    first = utcnow() + timedelta(seconds=LEAD)
    requesters = _requesters(args.requesters)
    rows = [
        {
            "id": uuid.uuid4(),
            "short_id": f"B{i:05d}",
            "team_id": DEFAULT_TEAM_ID,
            "app_ref": app.id,
            "app_name": app.name,
            "requester_id": requesters[i % len(requesters)],
            "content": {"title": f"Release {i}", "message": f"Burst {i}"},
            "audience": {"segments": ["Subscribed Users"]},
            "state": SendState.SCHEDULED,
            "due_at": first + timedelta(seconds=args.window * i / args.sends),
        }
        for i in range(args.sends)
    ]
    async with database.sessions.begin() as session:
        for start in range(0, len(rows), 1000):
            await session.execute(sa.insert(Send), rows[start : start + 1000])
    last_due = rows[-1]["due_at"]
    return [str(row["short_id"]) for row in rows], time.monotonic() + (
        last_due - utcnow()
    ).total_seconds()


def _requesters(count: int) -> list[str]:
    return [f"U0REQ{n:04d}" for n in range(count)]


async def _count_sent(database: Database) -> int:
    async with database.sessions() as session:
        query = sa.select(sa.func.count()).select_from(Send).where(Send.state == SendState.SENT)
        return int(await session.scalar(query) or 0)


# --- the worker -----------------------------------------------------------------------------------


def _environment(
    database_path: Path, key: str, fake: FakeProcess, slack: SlackProcess, workdir: Path
) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "ONESIGNAL_", "PUSHOPS_", "DATABASE_URL"))
    }
    env.update(
        DATABASE_URL=f"sqlite:///{database_path}",
        PUSHOPS_SECRET_KEY=key,
        PUSHOPS_DATA_DIR=str(workdir / "data"),
        PUSHOPS_MISFIRE_GRACE="3600",
        ONESIGNAL_API_URL=fake.url,
        SLACK_BOT_TOKEN=DEFAULT_BOT_TOKEN,
        SLACK_SIGNING_SECRET=signing.DEFAULT_SIGNING_SECRET,
        SLACK_API_URL=slack.api_url,
    )
    return env


@contextlib.asynccontextmanager
async def _worker(env: dict[str, str], log: Path) -> Any:
    with log.open("a") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", "worker", env=env, stdout=out, stderr=out, cwd=ROOT
        )
    try:
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(process.wait(), 30)
            except TimeoutError:
                process.kill()
                await process.wait()


# --- the run --------------------------------------------------------------------------------------


async def run(args: argparse.Namespace) -> dict[str, Any]:
    """Store the sends, start the worker, wait until all is told or `--max-wait` ran out."""
    key = generate_key()
    keyring = KeyRing.from_text(key)
    requesters = _requesters(args.requesters)
    with (
        tempfile.TemporaryDirectory() as tmp,
        FakeProcess() as fake,
        SlackProcess(args.speed, requesters) as slack,
    ):
        workdir = Path(tmp)
        path = workdir / "bench.db"
        database = await _database(path, keyring)
        try:
            ids, last_due = await _store(database, keyring, fake, args)
            env = _environment(path, key, fake, slack, workdir)
            async with _worker(env, workdir / "worker.log") as worker:
                progress = await _wait(slack, ids, last_due, args.max_wait, worker)
            sent = await _count_sent(database)
            if worker.returncode not in (0, None, -signal.SIGTERM):
                print((workdir / "worker.log").read_text()[-4000:], file=sys.stderr)
        finally:
            await database.dispose()
    return {"progress": progress, "sent": sent, "last_due": last_due, "ids": ids}


async def _wait(
    slack: SlackProcess, ids: list[str], last_due: float, max_wait: float, worker: Any
) -> dict[str, Any]:
    deadline = last_due + max_wait
    shown = 0.0
    while True:
        progress = slack.progress(ids)
        done = len(progress["told"]) == len(ids) and len(progress["final"]) == len(ids)
        now = time.monotonic()
        if done or now > deadline or worker.returncode is not None:
            return progress
        if now - shown >= 30:
            shown = now
            print(
                f"  … {now - last_due:+.0f} s: {len(progress['told'])} told, "
                f"{len(progress['final'])} log messages final, "
                f"{sum(progress['limited'].values())} 429s",
                file=sys.stderr,
            )
        await asyncio.sleep(2)


def report(result: dict[str, Any], args: argparse.Namespace) -> int:
    """Print the figures beside their baselines; 0 when everything was told."""
    progress, count, last_due = result["progress"], args.sends, result["last_due"]
    told, final = progress["told"], progress["final"]
    calls: dict[str, int] = progress["calls"]
    limited: dict[str, int] = progress["limited"]
    total = sum(calls.values())
    told_after = max(told.values()) - last_due if told else float("nan")
    final_after = max(final.values()) - last_due if final else float("nan")
    floor = count / args.speed  # one log message a second in one channel
    speed = "real speed" if args.speed == 1 else f"{args.speed:g}x real speed"
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"Slack outbox benchmark: {count:,} sends due within {args.window:g} s, "
        f"{args.requesters} requesters, a log channel; Slack's limits at {speed}"
    )
    print(f"  ({os.cpu_count()} CPUs, load average {load} at the end; pushops worker, the fake")
    print("   Slack and the fake OneSignal each in a process of its own)")
    rows = [
        ("sends recorded sent", f"{result['sent']:,}", f"{count:,}"),
        ("sends told to their requester", f"{len(told):,}", f"{count:,}"),
        ("  the last, after the last send was due", f"{told_after:.1f} s", ""),
        ("log messages in their final state", f"{len(final):,}", f"{count:,}"),
        ("  the last, after the last send was due", f"{final_after:.1f} s", ""),
        (
            "  ratio to Slack's floor (1 message/s/channel)",
            f"{final_after / floor:.2f}" if final else "-",
            f"floor {floor:,.0f} s",
        ),
        (
            "Slack calls per send (taken)",
            f"{total / count:.2f}",
            f"one message each: {NAIVE_CALLS:.0f} (ratio {total / count / NAIVE_CALLS:.2f})",
        ),
    ]
    rows += [
        (f"  {method}", f"{n / count:.2f}", f"{n:,} calls") for method, n in sorted(calls.items())
    ]
    rows.append(("429s received", f"{sum(limited.values()):,}", _by_method(limited)))
    rows.append(("calls repeated before their Retry-After", str(progress["early"]), "0"))
    width = max(len(name) for name, _, _ in rows)
    for name, value, note in rows:
        print(f"  {name:<{width}}  {value:>10}  {note}")
    complete = len(told) == count and len(final) == count and result["sent"] == count
    print("Everything was told." if complete else "Something was not told.")
    return 0 if complete and progress["early"] == 0 else 1


def _by_method(counts: dict[str, int]) -> str:
    return ", ".join(f"{method} {n:,}" for method, n in sorted(counts.items()))


def _arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sends", type=int, default=1000)
    parser.add_argument("--requesters", type=int, default=50)
    parser.add_argument("--window", type=float, default=60.0, help="seconds the sends fall due in")
    parser.add_argument("--speed", type=float, default=1.0, help="Slack's limits this much faster")
    parser.add_argument(
        "--max-wait", type=float, default=2400.0, help="seconds after the last due, at most"
    )
    return parser.parse_args()


if __name__ == "__main__":
    arguments = _arguments()
    raise SystemExit(report(asyncio.run(run(arguments)), arguments))
