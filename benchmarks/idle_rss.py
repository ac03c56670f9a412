"""How much memory `pushops serve` holds once idle, on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/idle_rss.py [--rounds 1] [--settle 5]
        [--postgres postgresql://postgres@127.0.0.1:5432/postgres] [--env NAME=VALUE ...]

`pushops serve` is started against the fake Slack (benchmarks/servers/fake_slack.py) and the
fake OneSignal, on a fresh SQLite file and on a fresh PostgreSQL database (interleaved, one
after the other, --rounds times). Once it answers a signed request and /readyz, it is left
alone for --settle seconds, then its VmRSS is read from /proc/<pid>/status, with the part of
it that is anonymous memory (the heap, stacks, arenas: RssAnon) and the part mapped from files
(shared libraries, RssFile), and how many threads it runs. --env adds a variable to serve's
environment (e.g. MALLOC_ARENA_MAX=2), to compare what it changes. Each database is migrated
(`pushops db upgrade`) before serve starts, as a served one is at every start but its first
(serve then only reads the revision, and loads no Alembic). The same figure is what
benchmarks/scale.py calls idle RSS (it measures it after filling the database; this one needs
no fill, as nothing of serve's idle memory grows with history). Target: at most 100 MB.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # benchmarks.ack_latency, when run as benchmarks/idle_rss.py

from benchmarks.ack_latency import (  # noqa: E402
    FakeSlackProcess,
    _stop,
    postgres_database,
    pushops_command,
    real_env,
    start_fake_onesignal,
    start_server,
    wait_until_serving,
)

TARGET_MB = 100.0
FIELDS = ("VmRSS", "RssAnon", "RssFile", "Threads")


def status(pid: int) -> dict[str, float]:
    """VmRSS, RssAnon and RssFile in MB, and Threads, of process `pid`."""
    found: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in FIELDS:
            number = float(value.split()[0])
            found[name] = number if name == "Threads" else number / 1024
    return found


async def idle_serve(
    workdir: Path, slack: dict[str, str], onesignal_url: str, db: str, extra: dict[str, str],
    settle: float,
) -> dict[str, float]:  # fmt: skip
    """Start serve on `db`, wait until it serves and is ready, let it settle, read its memory."""
    env = {**real_env(workdir, slack, onesignal_url, db), **extra}
    # Migrated first, as a served database is: serve then only reads the revision.
    await asyncio.to_thread(
        subprocess.run, [*pushops_command(), "db", "upgrade"], cwd=workdir, env=env, check=True,
        capture_output=True,
    )  # fmt: skip
    with (workdir / "serve.log").open("a") as log:
        process = start_server([*pushops_command(), "serve"], env, workdir, log)
        try:
            url = f"http://127.0.0.1:{env['PORT']}"
            await wait_until_serving(f"{url}/slack/events", {"serve": process})
            await asyncio.to_thread(_wait_ready, f"{url}/readyz", process)
            await asyncio.sleep(settle)
            return status(process.pid)
        finally:
            _stop(process)


def _wait_ready(url: str, process: subprocess.Popen[Any]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError("pushops serve exited; see serve.log")
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not answer 200 within 60 s")


async def main_async(args: argparse.Namespace) -> int:
    extra = dict(item.split("=", 1) for item in args.env)
    with tempfile.TemporaryDirectory(prefix="pushops-idle-rss-") as tmp:
        workdir = Path(tmp)
        logs = {name: (workdir / f"{name}.log").open("w") for name in ("slack", "onesignal")}
        fake_slack = FakeSlackProcess(logs["slack"])
        onesignal, onesignal_url = start_fake_onesignal(logs["onesignal"])
        rows: list[tuple[str, dict[str, float]]] = []
        try:
            for round_ in range(args.rounds):
                for name in ("sqlite", "postgresql"):
                    run_dir = workdir / f"{name}-{round_}"
                    run_dir.mkdir()
                    if name == "sqlite":
                        db = f"sqlite:///{run_dir / 'pushops.db'}"
                        figures = await idle_serve(
                            run_dir, fake_slack.info, onesignal_url, db, extra, args.settle
                        )
                    else:
                        with postgres_database(args.postgres) as pg:
                            assert pg is not None
                            figures = await idle_serve(
                                run_dir, fake_slack.info, onesignal_url, pg, extra, args.settle
                            )
                    rows.append((name, figures))
                    print(_row(name, figures), flush=True)
        except Exception:
            _show_logs(workdir)
            raise
        finally:
            _stop(onesignal)
            fake_slack.stop()
            for log in logs.values():
                log.close()
    worst = max(figures["VmRSS"] for _, figures in rows)
    verdict = "met" if worst <= TARGET_MB else "NOT met"
    print(f"target: idle RSS <= {TARGET_MB:.0f} MB on both databases: {verdict} ({worst:.1f} MB)")
    return 0


def _show_logs(workdir: Path) -> None:
    for path in workdir.rglob("serve.log"):
        sys.stderr.write(path.read_text()[-4000:])


def _row(name: str, figures: dict[str, float]) -> str:
    return (
        f"{name:<11} idle RSS {figures['VmRSS']:6.1f} MB  (anonymous {figures['RssAnon']:5.1f}, "
        f"files {figures['RssFile']:5.1f})  threads {figures['Threads']:.0f}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1, help="runs on each database")
    parser.add_argument("--settle", type=float, default=5.0, help="seconds idle before reading")
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server on which a fresh database is made (and dropped)",
    )
    parser.add_argument(
        "--env", action="append", default=[], metavar="NAME=VALUE", help="add to serve's env"
    )
    return asyncio.run(main_async(parser.parse_args(argv)))


if __name__ == "__main__":
    sys.exit(main())
