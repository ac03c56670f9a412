"""Our OneSignal client against the official SDK: create_notification calls per second.

    .venv/bin/python benchmarks/onesignal_client.py [--calls 2000] [--in-flight 50]

One fake OneSignal (tests/fakes/onesignal) runs in its own process for the whole run; each
client runs in a fresh process of its own, so each side's import time and peak memory
(maximum resident set size) are its own. Each side makes `--calls` create_notification
calls one after another, then `--calls` with `--in-flight` at once: ours as asyncio tasks
sharing one client, the SDK (`onesignal-python-api`, the `bench` extra) from that many
threads sharing one ApiClient, whose urllib3 pool is sized to the threads so it is not
starved. "ours" is `OneSignalClient` on the pool of `make_http_client`, which it drives
through aiohttp directly; references: ours through httpx's request layer on that same
aiohttp pool (the pool given an event hook: the path every call took before the direct
one), ours on a plain `httpx.AsyncClient` (httpcore, why the pool is aiohttp's), and a bare
aiohttp loop with no client library at all, the ceiling the fake allows.
Each figure is the best of ROUNDS rounds in that process, calls per second and CPU time
per call of the client's process (user + system, all its threads): the CPU is what a busy
process like the scheduler pays per notification, and depends less on the machine's load.
Target (issue 2): ours >= 1.0x the SDK sequentially and >= 2x with 50 in flight.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Fixed, made-up credentials of the fake's seeded app, known to every process of the run.
APP_ID = "b3f1c0de-0000-4000-8000-00000000be4c"
REST_KEY = "os_v2_app_benchmark"
ORG_KEY = "os_v2_org_benchmark"
WARMUP = 100
# Best of a few rounds: the machine may be shared, and the best round is the least disturbed.
ROUNDS = 3
SIDES = {
    "ours": "ours (pool, aiohttp directly)",
    "ours-httpx": "ours via httpx layer on the pool",
    "ours-httpcore": "ours on plain httpx (httpcore)",
    "sdk": "official SDK (urllib3, threads)",
    "raw-aiohttp": "bare aiohttp, no client library",
}


def payload(app_id: str) -> dict[str, Any]:
    return {
        "app_id": app_id,
        "contents": {"en": "Release 2.0 is out"},
        "headings": {"en": "News"},
        "included_segments": ["Active Users"],
    }


# ------------------------------------------------------------------ worker processes


def worker(side: str, url: str, calls: int, in_flight: int) -> dict[str, Any]:
    """Run one side in this (fresh) process; returns its figures."""
    started = time.perf_counter()
    run = _SIDE_RUNNERS[side]()
    import_seconds = time.perf_counter() - started
    (sequential, sequential_cpu), (concurrent, concurrent_cpu) = run(url, calls, in_flight)
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "side": side,
        "import_ms": import_seconds * 1000,
        "sequential": calls / sequential,
        "concurrent": calls / concurrent,
        "sequential_cpu_ms": sequential_cpu / calls * 1000,
        "concurrent_cpu_ms": concurrent_cpu / calls * 1000,
        "peak_mib": peak_kib / 1024,
    }


Timing = tuple[float, float]  # (elapsed seconds, CPU seconds) of one round


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _best(rounds: list[Timing]) -> Timing:
    """The fastest round's time, and the least CPU of any round (the least disturbed)."""
    return min(elapsed for elapsed, _ in rounds), min(cpu for _, cpu in rounds)


def _ours(transport: str) -> Callable[[str, int, int], tuple[Timing, Timing]]:
    import httpx  # noqa: F401  (part of our import cost either way)

    from bot.onesignal import OneSignalClient

    async def main(url: str, calls: int, in_flight: int) -> tuple[Timing, Timing]:
        async with (
            _http_client(transport) as http,
            OneSignalClient(rest_api_key=REST_KEY, base_url=url, http_client=http) as client,
        ):

            async def send() -> None:
                created = await client.create_notification(payload(APP_ID))
                assert created.id

            return await _drive_async(send, calls, in_flight)

    return lambda url, calls, in_flight: asyncio.run(main(url, calls, in_flight))


def _http_client(transport: str) -> Any:
    import httpx

    from bot.onesignal import make_http_client

    if transport == "httpcore":
        limits = httpx.Limits(max_connections=100, max_keepalive_connections=100)
        return httpx.AsyncClient(limits=limits)
    http = make_http_client()
    if transport == "pool-httpx":

        async def hook(response: httpx.Response) -> None:
            """Present, so OneSignalClient sends through httpx for the hook to see."""

        http.event_hooks["response"].append(hook)
    return http


def _raw_aiohttp() -> Callable[[str, int, int], tuple[Timing, Timing]]:
    import aiohttp

    async def main(url: str, calls: int, in_flight: int) -> tuple[Timing, Timing]:
        headers = {"Authorization": f"Key {REST_KEY}"}
        connector = aiohttp.TCPConnector(limit=100)
        async with aiohttp.ClientSession(connector=connector, headers=headers) as session:

            async def send() -> None:
                body = {**payload(APP_ID), "idempotency_key": str(uuid.uuid4())}
                async with session.post(url + "/notifications", json=body) as response:
                    assert (await response.json())["id"]

            return await _drive_async(send, calls, in_flight)

    return lambda url, calls, in_flight: asyncio.run(main(url, calls, in_flight))


async def _drive_async(
    send: Callable[[], Any], calls: int, in_flight: int
) -> tuple[Timing, Timing]:
    async def lane(count: int) -> None:
        for _ in range(count):
            await send()

    await lane(WARMUP)
    sequential: list[Timing] = []
    concurrent: list[Timing] = []
    for _ in range(ROUNDS):
        started, cpu = time.perf_counter(), _cpu()
        await lane(calls)
        sequential.append((time.perf_counter() - started, _cpu() - cpu))
        started, cpu = time.perf_counter(), _cpu()
        await asyncio.gather(*(lane(n) for n in _split(calls, in_flight)))
        concurrent.append((time.perf_counter() - started, _cpu() - cpu))
    return _best(sequential), _best(concurrent)


def _sdk() -> Callable[[str, int, int], tuple[Timing, Timing]]:
    import onesignal
    import urllib3
    from onesignal.api import default_api
    from onesignal.model.language_string_map import LanguageStringMap
    from onesignal.model.notification import Notification

    def run(url: str, calls: int, in_flight: int) -> tuple[Timing, Timing]:
        config = onesignal.Configuration(host=url, rest_api_key=REST_KEY)
        config.connection_pool_maxsize = in_flight
        # A pooled connection idle past the fake's keep-alive (5 s) can be closed just as
        # urllib3 reuses it, which a loaded machine makes likely: urllib3 re-sends a POST
        # only when told to. Ours retries create_notification on such a drop by itself.
        config.retries = urllib3.util.Retry(total=3, allowed_methods=None)
        with onesignal.ApiClient(config) as api_client:
            api = default_api.DefaultApi(api_client)

            def send() -> None:
                body = payload(APP_ID)
                notification = Notification(
                    app_id=body["app_id"],
                    contents=LanguageStringMap(en=body["contents"]["en"]),
                    headings=LanguageStringMap(en=body["headings"]["en"]),
                    included_segments=body["included_segments"],
                )
                assert api.create_notification(notification).id

            return _drive_threads(send, calls, in_flight)

    return run


def _drive_threads(send: Callable[[], None], calls: int, in_flight: int) -> tuple[Timing, Timing]:
    def lane(count: int, barrier: threading.Barrier | None = None) -> None:
        if barrier is not None:
            barrier.wait()
        for _ in range(count):
            send()

    lane(WARMUP)
    sequential: list[Timing] = []
    concurrent: list[Timing] = []
    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        for _ in range(ROUNDS):
            started, cpu = time.perf_counter(), _cpu()
            lane(calls)
            sequential.append((time.perf_counter() - started, _cpu() - cpu))
            barrier = threading.Barrier(in_flight + 1)
            futures = [pool.submit(lane, n, barrier) for n in _split(calls, in_flight)]
            barrier.wait()
            started, cpu = time.perf_counter(), _cpu()
            for future in futures:
                future.result()
            concurrent.append((time.perf_counter() - started, _cpu() - cpu))
    return _best(sequential), _best(concurrent)


def _split(calls: int, lanes: int) -> list[int]:
    return [calls // lanes + (1 if n < calls % lanes else 0) for n in range(lanes)]


_SIDE_RUNNERS: dict[str, Callable[[], Callable[[str, int, int], tuple[Timing, Timing]]]] = {
    "ours": lambda: _ours("pool"),
    "ours-httpx": lambda: _ours("pool-httpx"),
    "ours-httpcore": lambda: _ours("httpcore"),
    "sdk": _sdk,
    "raw-aiohttp": _raw_aiohttp,
}


# ------------------------------------------------------------------------ the driver


def start_fake() -> tuple[subprocess.Popen[str], str]:
    """The fake OneSignal in a process of its own (its own core, its own GIL)."""
    command = [
        sys.executable, "-m", "tests.fakes.onesignal", "--port", "0", "--users", "0",
        "--app-id", APP_ID, "--rest-api-key", REST_KEY, "--org-key", ORG_KEY,
    ]  # fmt: skip
    fake = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    assert fake.stdout is not None
    for line in fake.stdout:
        if found := re.search(r"Fake OneSignal at (\S+)", line):
            return fake, found.group(1)
    raise SystemExit("the fake OneSignal did not start")


def run_side(side: str, url: str, calls: int, in_flight: int) -> dict[str, Any]:
    command = [
        sys.executable, str(Path(__file__).resolve()), "--worker", side, "--url", url,
        "--calls", str(calls), "--in-flight", str(in_flight),
    ]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{side} failed:\n{done.stderr}")
    return dict(json.loads(done.stdout.strip().splitlines()[-1]))


def report(results: dict[str, dict[str, Any]], calls: int, in_flight: int) -> None:
    print(f"\n{calls} create_notification calls against the fake OneSignal, each side")
    header = (
        f"{'sequential/s':>14}{f'{in_flight} in flight/s':>18}{'CPU ms/call seq':>17}"
        f"{f'CPU ms/call {in_flight}':>16}{'import ms':>11}{'peak MiB':>10}"
    )
    print(f"{'side':<36}{header}")
    for side, label in SIDES.items():
        r = results[side]
        print(
            f"{label:<36}{r['sequential']:>14.0f}{r['concurrent']:>18.0f}"
            f"{r['sequential_cpu_ms']:>17.3f}{r['concurrent_cpu_ms']:>16.3f}"
            f"{r['import_ms']:>11.0f}{r['peak_mib']:>10.1f}"
        )
    ours, sdk, ceiling = results["ours"], results["sdk"], results["raw-aiohttp"]
    seq = ours["sequential"] / sdk["sequential"]
    conc = ours["concurrent"] / sdk["concurrent"]
    print(
        f"\nours / SDK: sequential {seq:.2f}x (target >= 1.0x), "
        f"{in_flight} in flight {conc:.2f}x (target >= 2x)"
    )
    print(
        f"ours / bare aiohttp (the fake's ceiling for a Python client): "
        f"sequential {ours['sequential'] / ceiling['sequential']:.2f}x, "
        f"{in_flight} in flight {ours['concurrent'] / ceiling['concurrent']:.2f}x"
    )
    layer = results["ours-httpx"]
    print(
        f"ours / ours through the httpx layer: {in_flight} in flight "
        f"{ours['concurrent'] / layer['concurrent']:.2f}x, CPU per call "
        f"{ours['concurrent_cpu_ms']:.3f} vs {layer['concurrent_cpu_ms']:.3f} ms"
    )
    print(
        f"ours / ours on plain httpx (httpcore), {in_flight} in flight: "
        f"{ours['concurrent'] / results['ours-httpcore']['concurrent']:.2f}x"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--in-flight", type=int, default=50)
    parser.add_argument("--worker", choices=sorted(SIDES), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(args.worker, args.url, args.calls, args.in_flight)))
        return 0
    fake, url = start_fake()
    try:
        print(f"fake OneSignal at {url} (own process); {os.cpu_count()} CPUs")
        results = {}
        for side in SIDES:
            results[side] = run_side(side, url, args.calls, args.in_flight)
            print(f"  {SIDES[side]}: done", flush=True)
    finally:
        fake.terminate()
        fake.wait(timeout=10)
    report(results, args.calls, args.in_flight)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
