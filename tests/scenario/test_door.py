"""The door of `/slack/events`, through the real uvicorn server as `pushops serve` runs it: a
request that does not verify gets a bare 401 and causes nothing; bodies are bounded in size and
time; replies go only to Slack's hosts; a replayed request is acted on once."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import sqlalchemy as sa

from bot import const
from storage.models import SlackRequest, utcnow
from storage.requests import KEEP
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID, DEFAULT_USER_ID
from tests.plugins.slack import default_services
from tests.scenario.sendkit import FAST, SEGMENT, creates, only_send, serve_sending, settings


class Listener:
    """A TCP server on 127.0.0.1 that counts the connections anyone opens to it."""

    def __init__(self) -> None:
        self.connections = 0
        self.url = ""
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> Listener:
        async def seen(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            self.connections += 1
            writer.close()

        self._server = await asyncio.start_server(seen, "127.0.0.1", 0)
        port = self._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    async with Listener() as running:
        yield running


def _command_body(response_url: str, text: str = "help") -> str:
    fields = signing.slash_command(
        text=text, response_url=response_url, user_id=DEFAULT_USER_ID, team_id=DEFAULT_TEAM_ID
    )
    return signing.form_body(fields)


def _action_body(response_url: str) -> str:
    payload = signing.block_actions(
        action_id=const.ACTION_DISMISS,
        user_id=DEFAULT_USER_ID,
        team_id=DEFAULT_TEAM_ID,
        response_url=response_url,
        value="x",
    )
    return signing.interactive_body(payload)


async def _settle() -> None:
    """Give any work after an answer the time it would need to reach a listener."""
    await asyncio.sleep(0.3)


# --- 1. nothing happens for a request that does not verify ----------------------------------


@pytest.mark.parametrize("timestamp", ["abc", "1796401692.5", "", "0x10", "1e9", "-5"])
@pytest.mark.parametrize("shape", ["command", "action"])
async def test_a_malformed_timestamp_gets_401_and_nothing_reaches_the_response_url(
    pushops, listener, timestamp, shape
):
    body = _command_body(listener.url) if shape == "command" else _action_body(listener.url)
    headers = {
        "X-Slack-Request-Timestamp": timestamp,
        "X-Slack-Signature": "v0=" + "0" * 64,
        "Content-Type": signing.FORM,
    }

    response = await pushops.http.post("/slack/events", content=body, headers=headers)
    await _settle()

    assert response.status_code == 401
    assert listener.connections == 0


MALFORMED_UNSIGNED: list[tuple[str, bytes, str]] = [
    ("empty", b"", signing.FORM),
    ("payload without json", b"payload=%7Bnot-json", signing.FORM),
    ("payload not an object", b"payload=%5B1%2C2%5D", signing.FORM),
    ("payload empty", b"payload=", signing.FORM),
    ("not utf-8", b"\xff\xfe\xfa command=/push", signing.FORM),
    ("json with a form type", b'{"type": "event_callback"}', signing.FORM),
    ("form with a json type", b"command=%2Fpush&text=help", signing.JSON),
    ("json not an object", b"[1, 2, 3]", signing.JSON),
    ("json broken", b'{"type": ', signing.JSON),
    ("deep json", b"[" * 5000 + b"]" * 5000, signing.JSON),
    ("url verification", b'{"type": "url_verification", "challenge": "x"}', signing.JSON),
    ("no content type", b"command=%2Fpush&text=help", ""),
    ("nul bytes", b"command=%00%00&text=%00", signing.FORM),
    ("repeated fields", b"command=%2Fpush&command=%2Fother&text=a&text=b", signing.FORM),
    ("huge field", b"text=" + b"a" * 200_000, signing.FORM),
]


@pytest.mark.parametrize(("name", "body", "content_type"), MALFORMED_UNSIGNED)
async def test_malformed_unsigned_bodies_get_401_not_500(pushops, name, body, content_type):
    headers = {"Content-Type": content_type} if content_type else {}

    response = await pushops.http.post("/slack/events", content=body, headers=headers)

    assert response.status_code == 401, name


async def test_a_signed_body_that_is_not_slacks_shape_gets_400(pushops):
    body = "payload=%7Bnot-json"

    response = await pushops.post_signed(body)

    assert response.status_code == 400


# --- replies only to Slack's hosts ----------------------------------------------------------


@pytest.mark.parametrize("shape", ["command", "action"])
async def test_a_verified_payload_naming_a_response_url_off_slacks_hosts_gets_no_post_there(
    pushops, listener, shape
):
    body = _command_body(listener.url) if shape == "command" else _action_body(listener.url)

    response = await pushops.post_signed(body)
    await _settle()

    assert response.status_code == 400
    assert listener.connections == 0


# --- bounded requests -------------------------------------------------------------------------


@contextlib.asynccontextmanager
async def _raw_connection(base_url: str) -> AsyncIterator[tuple[Any, Any]]:
    parts = urlsplit(base_url)
    reader, writer = await asyncio.open_connection(parts.hostname, parts.port)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def _closed_within(reader: asyncio.StreamReader, seconds: float) -> tuple[float, bytes]:
    """Read until the server closes the connection; (seconds it took, what it answered)."""
    started = time.monotonic()
    answer = b""
    async with asyncio.timeout(seconds):
        while chunk := await reader.read(65_536):
            answer += chunk
    return time.monotonic() - started, answer


async def _answer_to(base_url: str, *parts: bytes) -> bytes:
    """Send `parts` on a fresh connection, then read the answer until the server closes it.

    (A client still sending when the server closes would get a reset, not the answer: the
    tests send what the server reads before it answers, then listen.)
    """
    async with _raw_connection(base_url) as (reader, writer):
        for part in parts:
            writer.write(part)
            await writer.drain()
        _, answer = await _closed_within(reader, 5.0)
    return answer


async def test_a_body_over_one_megabyte_gets_413_and_the_log_stays_small(pushops, caplog):
    caplog.set_level(logging.DEBUG)
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Content-Length: %d\r\n\r\n" % (2 * 1024 * 1024)
    )

    answer = await _answer_to(pushops.base_url, head, b"text=" + b"BIGBODY" * 4000)

    assert answer.startswith(b"HTTP/1.1 413")
    assert "BIGBODY" not in caplog.text
    assert len(caplog.text) < 5_000


async def test_a_body_over_one_megabyte_gets_413_without_a_content_length(pushops):
    head = (
        b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"%x\r\n%s\r\n" % (65_536, b"a" * 65_536)

    answer = await _answer_to(pushops.base_url, head, *[chunk] * 17)  # just over 1 MB

    assert answer.startswith(b"HTTP/1.1 413")


async def test_a_half_sent_body_is_answered_408_and_closed_within_the_timeout(
    serve_pushops, slack_settings
):
    async with (
        serve_pushops(slack_settings, body_timeout=0.5) as running,
        _raw_connection(running.base_url) as (reader, writer),
    ):
        writer.write(
            b"POST /slack/events HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 1000\r\n\r\ncommand=%2Fpu"
        )
        await writer.drain()

        took, answer = await _closed_within(reader, 5.0)

    assert answer.startswith(b"HTTP/1.1 408")
    assert took < 2.0


async def test_half_sent_headers_are_closed_within_the_timeout(serve_pushops, slack_settings):
    async with (
        serve_pushops(slack_settings, header_timeout=0.5) as running,
        _raw_connection(running.base_url) as (reader, writer),
    ):
        writer.write(b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Ty")
        await writer.drain()

        took, answer = await _closed_within(reader, 5.0)

    assert answer == b""
    assert took < 2.0


async def test_a_keep_alive_connection_gets_the_header_deadline_again_after_a_response(
    serve_pushops, slack_settings
):
    async with (
        serve_pushops(slack_settings, header_timeout=0.5) as running,
        _raw_connection(running.base_url) as (reader, writer),
    ):
        writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        await writer.drain()
        first = await reader.readuntil(b'{"status":"ok"}')
        writer.write(b"GET /healthz HTTP/1.1\r\nHo")  # then nothing more
        await writer.drain()

        took, _ = await _closed_within(reader, 5.0)

    assert first.startswith(b"HTTP/1.1 200")
    assert took < 2.0


async def test_a_slow_client_does_not_hold_up_a_signed_command(serve_pushops, slack_settings):
    async with serve_pushops(slack_settings, body_timeout=5.0) as running:
        stalled = [_raw_connection(running.base_url) for _ in range(50)]
        async with contextlib.AsyncExitStack() as stack:
            for connection in stalled:
                _, writer = await stack.enter_async_context(connection)
                writer.write(
                    b"POST /slack/events HTTP/1.1\r\nHost: x\r\nContent-Length: 900\r\n\r\nx"
                )
            started = time.monotonic()
            sent = await running.post_command("help")
            took = time.monotonic() - started

    assert sent.response is not None and sent.response.status_code == 200
    assert took < 2.0


# --- replays do nothing twice ------------------------------------------------------------------


@pytest.fixture
async def sending(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def _replayed(app: Any, body: str, times: int, content_type: str = signing.FORM) -> list[int]:
    headers = signing.signed_headers(body, secret=app.secret, content_type=content_type)
    statuses = []
    for _ in range(times):
        response = await app.http.post("/slack/events", content=body, headers=headers)
        statuses.append(response.status_code)
    return statuses


async def test_a_replayed_slash_command_sends_one_notification(sending, fake_onesignal, fake_slack):
    response_url = fake_slack.new_response_url()
    body = _command_body(response_url, f'send --yes --segment "{SEGMENT}" Hello')

    statuses = await _replayed(sending, body, 3)

    assert statuses == [200, 200, 200]
    await fake_slack.wait_for_reply(response_url)
    await _settle()
    assert len(creates(fake_onesignal)) == 1
    assert len(fake_slack.replies(response_url)) == 1


async def test_a_replayed_button_click_acts_once(sending, fake_onesignal, fake_slack, database):
    preview = await sending.post_command(f'send --segment "{SEGMENT}" Hello')
    await preview.reply()
    send = await only_send(database)
    clicked = fake_slack.new_response_url()
    payload = signing.block_actions(
        action_id=const.ACTION_SEND_CONFIRM,
        user_id=DEFAULT_USER_ID,
        team_id=DEFAULT_TEAM_ID,
        response_url=clicked,
        value=str(send.id),
    )

    statuses = await _replayed(sending, signing.interactive_body(payload), 3)

    assert statuses == [200, 200, 200]
    await fake_slack.wait_for_reply(clicked)
    await _settle()
    assert len(creates(fake_onesignal)) == 1
    assert len(fake_slack.replies(clicked)) == 1


async def test_an_event_retried_by_slack_is_handled_once(sending, caplog):
    envelope = signing.event_callback({"type": "app_uninstalled"}, team_id=DEFAULT_TEAM_ID)
    body = signing.event_body(envelope)
    first = await sending.post_signed(body, content_type=signing.JSON)
    headers = signing.signed_headers(body, secret=sending.secret, content_type=signing.JSON)
    headers["X-Slack-Retry-Num"] = "1"
    headers["X-Slack-Retry-Reason"] = "http_timeout"

    retried = await sending.http.post("/slack/events", content=body, headers=headers)

    assert (first.status_code, retried.status_code) == (200, 200)
    handled = [r for r in caplog.records if "Slack sent app_uninstalled" in r.getMessage()]
    assert len(handled) == 1


@pytest.mark.postgres
async def test_a_replay_sent_to_another_replica_sends_nothing_more(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    response_url = fake_slack.new_response_url()
    body = _command_body(response_url, f'send --yes --segment "{SEGMENT}" Hello')
    async with (
        serve_sending(serve_pushops, config, database, keyring) as one,
        serve_sending(serve_pushops, config, database, keyring) as two,
    ):
        statuses = await asyncio.gather(_replayed(one, body, 2), _replayed(two, body, 2))
        assert [s for pair in statuses for s in pair] == [200, 200, 200, 200]
        await fake_slack.wait_for_reply(response_url)
        await _settle()
    assert len(creates(fake_onesignal)) == 1
    assert len(fake_slack.replies(response_url)) == 1


@pytest.mark.postgres
async def test_a_click_replayed_to_another_replica_acts_once(
    serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path
):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    clicked = fake_slack.new_response_url()
    async with (
        serve_sending(serve_pushops, config, database, keyring) as one,
        serve_sending(serve_pushops, config, database, keyring) as two,
    ):
        await (await one.post_command(f'send --segment "{SEGMENT}" Hello')).reply()
        send = await only_send(database)
        payload = signing.block_actions(
            action_id=const.ACTION_SEND_CONFIRM,
            user_id=DEFAULT_USER_ID,
            team_id=DEFAULT_TEAM_ID,
            response_url=clicked,
            value=str(send.id),
        )
        body = signing.interactive_body(payload)

        statuses = await asyncio.gather(_replayed(one, body, 2), _replayed(two, body, 2))

        assert [s for pair in statuses for s in pair] == [200, 200, 200, 200]
        await fake_slack.wait_for_reply(clicked)
        await _settle()
    assert len(creates(fake_onesignal)) == 1
    assert len(fake_slack.replies(clicked)) == 1


# --- no request body in any log line --------------------------------------------------------

BODY_MARK = "BODYMARK7f3a"  # recognisable wherever a log line would carry the body


def _marked_command(response_url: str) -> str:
    return _command_body(response_url, f"send --yes --segment {BODY_MARK} {BODY_MARK}")


@pytest.mark.parametrize(
    "case",
    [
        "bad signature",
        "stale signature",
        "malformed timestamp",
        "unsigned malformed body",
        "signed malformed body",
        "signed, response_url off Slack's hosts",
    ],
)
async def test_a_refused_request_leaves_no_trace_of_its_body_in_the_log(
    pushops, fake_slack, listener, caplog, case
):
    caplog.set_level(logging.DEBUG)
    body = _marked_command(fake_slack.new_response_url())
    headers = signing.signed_headers(body, secret=pushops.secret)
    expected = 401
    if case == "bad signature":
        headers = signing.signed_headers(body, secret="not-the-signing-secret")
    elif case == "stale signature":
        headers = signing.signed_headers(body, secret=pushops.secret, timestamp=1_700_000_000)
    elif case == "malformed timestamp":
        headers["X-Slack-Request-Timestamp"] = f"{BODY_MARK}.5"
    elif case == "unsigned malformed body":
        body = f"payload=%7B{BODY_MARK}"
        headers = {"Content-Type": signing.FORM}
    elif case == "signed malformed body":
        body = f"payload=%7B{BODY_MARK}"
        headers = signing.signed_headers(body, secret=pushops.secret)
        expected = 400
    else:
        body = _marked_command(listener.url)
        headers = signing.signed_headers(body, secret=pushops.secret)
        expected = 400

    response = await pushops.http.post("/slack/events", content=body, headers=headers)
    await _settle()

    assert response.status_code == expected
    assert BODY_MARK not in response.text
    assert BODY_MARK not in caplog.text
    assert not [r for r in caplog.records if BODY_MARK in repr(r.args) or r.exc_info]


# --- how long replay keys are kept ------------------------------------------------------------


class TurnedClock:
    """A wall clock (UTC) that moves only when the test turns it."""

    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self) -> datetime:
        return self.now


async def _keys(database: Any) -> set[str]:
    async with database.sessions() as session:
        return set(await session.scalars(sa.select(SlackRequest.key)))


async def test_a_replay_key_outlasts_the_signature_window_and_then_goes(
    fake_slack, fake_onesignal, database, keyring, tmp_path, serve_pushops
):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    services = default_services(config, database, keyring, policy=FAST, sweep_interval=0.5)
    services.clock = clock = TurnedClock()
    response_url = fake_slack.new_response_url()
    body = _command_body(response_url, f'send --yes --segment "{SEGMENT}" Hello')
    trigger = "trigger:" + parse_qs(body)["trigger_id"][0]
    async with serve_pushops(config, services=services) as app:
        first = await _replayed(app, body, 1)
        await fake_slack.wait_for_reply(response_url)
        clock.now += timedelta(minutes=4, seconds=59)  # Slack's signature still holds

        replayed = await _replayed(app, body, 1)  # and the door prunes on the way
        await _settle()

        assert (first, replayed) == ([200], [200])
        assert len(creates(fake_onesignal)) == 1
        assert len(fake_slack.replies(response_url)) == 1
        assert trigger in await _keys(database)

        clock.now += KEEP - timedelta(minutes=4, seconds=58)  # past KEEP: no signature holds
        later = await app.post_command("help")
        await later.reply()

    kept = await _keys(database)
    assert trigger not in kept
    assert len(kept) == 1  # the later command's own key
