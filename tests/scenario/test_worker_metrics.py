"""`pushops worker --metrics-port`: a real worker process counts what it delivers where
Prometheus scrapes it, answers health and readiness, and stops cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
import time
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from bot.cli import main
from storage.models import utcnow
from tests.bot.deliverykit import insert_due, seeded_app
from tests.scenario.processes import environment, free_port
from tests.scenario.prometheus import value

pytestmark = pytest.mark.slow


async def _worker(env: dict, log: Path, *args: str) -> asyncio.subprocess.Process:
    with log.open("a") as out:
        return await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "worker",
            *args,
            env=env,
            stdout=out,
            stderr=out,
            cwd=log.parent,
        )


async def _scrape_until_sent(url: str, process: asyncio.subprocess.Process, log: Path) -> str:
    deadline = time.monotonic() + 30
    async with httpx.AsyncClient(base_url=url) as http:
        while time.monotonic() < deadline:
            if process.returncode is not None:
                raise AssertionError("worker exited; see " + str(log))
            try:
                text = (await http.get("/metrics")).text
            except httpx.TransportError:
                text = ""
            if value(text, "pushops_send_outcomes_total", state="sent", app="main"):
                return text
            await asyncio.sleep(0.2)
    raise AssertionError("nothing counted; see " + str(log))


async def test_a_worker_serves_the_metrics_of_what_it_delivered(
    database, storage_factory, secret_key, fake_onesignal, tmp_path
):
    app = await seeded_app(storage_factory, fake_onesignal)
    (send_id,) = await insert_due(database, app, 1, utcnow() + timedelta(seconds=1))
    env = {**environment(database, secret_key, fake_onesignal, tmp_path), "HOST": "127.0.0.1"}
    port = free_port()
    log = tmp_path / "worker.log"

    process = await _worker(env, log, "--metrics-port", str(port))
    try:
        text = await _scrape_until_sent(f"http://127.0.0.1:{port}", process, log)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            health = await http.get("/healthz")
            ready = await http.get("/readyz")
    finally:
        process.send_signal(signal.SIGTERM)
        async with asyncio.timeout(20):
            code = await process.wait()

    requests = "pushops_onesignal_requests_total"
    assert value(text, requests, operation="create_notification", status="200") == 1.0
    # Read from the database (kept a few seconds: it may predate the delivery).
    assert value(text, "pushops_sends_scheduled") in (0.0, 1.0)
    assert health.status_code == 200 and ready.status_code == 200
    assert code == 0
    output = log.read_text()
    assert f"metrics, health and readiness on http://127.0.0.1:{port}" in output
    assert "Traceback" not in output and fake_onesignal.app.rest_api_key not in output
    assert len(fake_onesignal.notifications) == 1


async def test_a_taken_metrics_port_stops_the_worker_with_one_line(
    database, secret_key, fake_onesignal, tmp_path
):
    env = {**environment(database, secret_key, fake_onesignal, tmp_path), "HOST": "127.0.0.1"}
    log = tmp_path / "worker.log"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        process = await _worker(env, log, "--metrics-port", str(port))
        async with asyncio.timeout(30):
            code = await process.wait()

    output = log.read_text()
    assert code == 1
    assert f"PushOps worker cannot start: cannot listen on 127.0.0.1:{port}" in output
    assert "Give --metrics-port a free port." in output
    assert "Traceback" not in output


def test_a_metrics_port_that_is_no_port_is_refused(capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["worker", "--metrics-port", "http"])

    assert stopped.value.code == 2
    assert "'http' is not a port (1 to 65535)" in capsys.readouterr().err
