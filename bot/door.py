"""The door of `/slack/events`: a request is bounded, verified and new before anything reads it.

Bolt verifies signatures too, but only after it has parsed the body, and a timestamp that is
not an integer makes its verifier raise, which sends the request down the error path that
answers through whatever `response_url` the unverified body names. So here, before Bolt:

1. the body is read with a size cap (`MAX_BODY`: 413 above it) and a deadline
   (`BODY_TIMEOUT`: 408), so a huge or a slow body cannot hold the process;
2. the signature must hold (`is_signed`): any failure, however malformed the request, is a
   bare 401: no reply, no outbound call, no listener, and the body is never logged;
3. a verified payload naming a `response_url` off Slack's own hosts is refused (400):
   whatever it says, PushOps posts nowhere else (`bot.slack_http.is_slack_response_url`);
4. a verified request already acted on (the same `trigger_id`, or `event_id` for events,
   Slack's own retries included) is answered 200 and not acted on again (`SeenRequests`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final
from urllib.parse import parse_qs

from slack_sdk.signature import SignatureVerifier
from sqlalchemy.exc import SQLAlchemyError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import PlainTextResponse, Response
from starlette.types import Message, Receive

from bot.slack_http import is_slack_response_url
from storage.db import Database, WriteBusy, limited_lock_wait
from storage.models import utcnow
from storage.requests import KEEP, forget_requests, remember_request

log = logging.getLogger(__name__)

MAX_BODY: Final = 1024 * 1024
"""Bytes a request body may have. Slack's own payloads (a view with its state, a command of
4,000 characters) stay far below; anything above is refused before it is read."""

BODY_TIMEOUT: Final = 10.0
"""Seconds a client has to send the whole body once its headers arrived."""

REMEMBER_WAIT: Final = 0.25
"""Seconds remembering a request may wait for another writer (SQLite has one at a time).
Past that the request goes on without the replay check, and its own writes meet the busy
database and answer for it: a busy database must not turn Slack away at the door."""

PRUNE_EVERY: Final = timedelta(minutes=1)
"""How often request keys older than `storage.requests.KEEP` are deleted (on the door's
clock, the one the keys are stamped with)."""

_TIMESTAMP: Final = re.compile(r"[0-9]{1,12}")  # Slack's: whole seconds since the epoch
_MAX_KEY: Final = 150  # a trigger_id or event_id is far shorter; longer is not Slack's


class Refused(Exception):
    """The request does not get past the door: `status` is the whole answer."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def response(self) -> Response:
        """The bare answer: a status and a word, never anything from the request."""
        headers = {"Connection": "close"} if self.status in (408, 413) else None
        return PlainTextResponse(self.reason, status_code=self.status, headers=headers)


async def read_body(
    request: Request, *, limit: int = MAX_BODY, within: float = BODY_TIMEOUT
) -> bytes:
    """The whole body, at most `limit` bytes, within `within` s; raises `Refused`."""
    declared = request.headers.get("content-length")
    if declared is not None:
        if not declared.isdigit():
            raise Refused(400, "bad content-length")
        if int(declared) > limit:
            raise Refused(413, "request body too large")
    chunks: list[bytes] = []
    size = 0
    try:
        async with asyncio.timeout(within):
            async for chunk in request.stream():
                size += len(chunk)
                if size > limit:
                    raise Refused(413, "request body too large")
                chunks.append(chunk)
    except TimeoutError:
        raise Refused(408, "request body too slow") from None
    except ClientDisconnect:
        raise Refused(400, "request body incomplete") from None
    return b"".join(chunks)


def is_signed(verifier: SignatureVerifier, headers: Mapping[str, str], body: bytes) -> bool:
    """Whether Slack signed `body` within the last five minutes (never raises)."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not _TIMESTAMP.fullmatch(timestamp) or not signature.startswith("v0="):
        return False
    return verifier.is_valid(body=body, timestamp=timestamp, signature=signature)


def response_urls(payload: dict[str, Any]) -> list[str]:
    """Every `response_url` a payload names (commands and clicks; a form's `response_urls`)."""
    found = [payload.get("response_url")]
    listed = payload.get("response_urls")
    if isinstance(listed, list):
        found += [item.get("response_url") for item in listed if isinstance(item, dict)]
    return [str(url) for url in found if url is not None]


def replay_key(payload: dict[str, Any]) -> str | None:
    """What identifies a verified request across replays: its trigger or event id.

    None for requests that carry neither (a URL verification, an options load): those do
    nothing twice anyway. Raises `Refused(400)` for an id that is not Slack's shape.
    """
    if payload.get("type") == "event_callback":
        return _key("event", payload.get("event_id"))
    return _key("trigger", payload.get("trigger_id"))


def parse_payload(headers: Mapping[str, str], body: bytes) -> dict[str, Any]:
    """The request's payload: a JSON body, a form's `payload` field, or the form's fields.

    Raises `Refused(400)` for a body that is none of these.
    """
    try:
        text = body.decode("utf-8")
        if headers.get("content-type", "").startswith("application/json"):
            parsed: Any = json.loads(text)
        else:
            form = parse_qs(text, keep_blank_values=True)
            parsed = (
                json.loads(form["payload"][0])
                if "payload" in form
                else {name: values[0] for name, values in form.items()}
            )
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "malformed body") from None
    if not isinstance(parsed, dict):
        raise Refused(400, "malformed body")
    return parsed


def _key(kind: str, value: Any) -> str | None:
    if not isinstance(value, str) or not value:
        return None
    if len(value) > _MAX_KEY:
        raise Refused(400, "malformed body")
    return f"{kind}:{value}"


class SeenRequests:
    """The keys of verified requests already acted on, in the database shared by replicas."""

    def __init__(
        self, database: Database, *, clock: Callable[[], datetime] = utcnow, keep: timedelta = KEEP
    ) -> None:
        self._database = database
        self._clock = clock
        self._keep = keep
        self._pruned: datetime | None = None

    async def first_time(self, key: str) -> bool:
        """Record `key`; False when a request with that key was acted on already.

        True, with a warning logged, when the database cannot record it now (see
        `REMEMBER_WAIT`): the request's own work then meets the database's trouble.
        """
        now = self._clock()
        try:
            with limited_lock_wait(REMEMBER_WAIT):
                async with self._database.sessions.begin() as session:
                    first = await remember_request(session=session, key=key, now=now)
                    if self._prune_due(now):
                        self._pruned = now
                        await forget_requests(session=session, before=now - self._keep)
        except (WriteBusy, SQLAlchemyError) as error:
            log.warning(
                "could not record a Slack request (%s); it is handled without the replay check",
                type(error).__name__,
            )
            return True
        return first

    def _prune_due(self, now: datetime) -> bool:
        """Whether `PRUNE_EVERY` has passed since the last pruning (or the clock went back)."""
        return self._pruned is None or not self._pruned <= now < self._pruned + PRUNE_EVERY


@dataclass
class SlackDoor:
    """What `/slack/events` checks before Bolt sees a request (see the module docstring).

    Attributes:
        signing_secret: SLACK_SIGNING_SECRET; empty refuses every request.
        seen: where acted-on requests are remembered (None: no replay check, for a process
            without a database).
        api_url: SLACK_API_URL, whose origin counts as Slack's (a fake Slack in tests).
        limit, timeout: the body's size cap and deadline.
    """

    signing_secret: str
    seen: SeenRequests | None
    api_url: str
    limit: int = MAX_BODY
    timeout: float = BODY_TIMEOUT

    def __post_init__(self) -> None:
        self._verifier = SignatureVerifier(self.signing_secret) if self.signing_secret else None

    async def admit(self, request: Request) -> Request:
        """The request, its body read and verified, ready for Bolt; raises `Refused`."""
        body = await read_body(request, limit=self.limit, within=self.timeout)
        if self._verifier is None or not is_signed(self._verifier, request.headers, body):
            raise Refused(401, "invalid request signature")
        payload = parse_payload(request.headers, body)
        if not all(is_slack_response_url(url, self.api_url) for url in response_urls(payload)):
            log.warning("refused a signed request naming a response_url off Slack's hosts")
            raise Refused(400, "response_url is not Slack's")
        key = replay_key(payload)
        if key is not None and self.seen is not None and not await self.seen.first_time(key):
            log.info("ignored a repeat of a Slack request already acted on (%s)", key.split(":")[0])
            raise Refused(200, "")
        return Request(request.scope, receive=_replaying(body))


def _replaying(body: bytes) -> Receive:
    """An ASGI `receive` that hands over `body` once, as if the client had just sent it."""
    sent = False

    async def receive() -> Message:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive
