"""A fake Slack on 127.0.0.1: Web API, response_url endpoints and a Socket Mode websocket.

One server per test session (uvicorn in a thread), reset before each test. It records every
call with its arguments and token and answers like Slack does, including its errors
(`invalid_auth`, `user_not_found`, `channel_not_found`...). Tests seed workspaces and users,
then wait for the calls the app makes after its ack:

    call = await fake_slack.wait_for("chat.postMessage")
    reply = await fake_slack.wait_for_reply(response_url)

Every message and view is checked against Block Kit's limits (`tests.fakes.blockkit`) and
refused as Slack refuses it: `invalid_blocks` (HTTP 200, `ok: false`) for chat methods,
`invalid_arguments` for views, HTTP 400 `invalid_blocks` for a response_url post. Each
refusal is kept in `refusals`; the `fake_slack` fixture fails a test that left any behind
(a test that means to send an invalid payload takes them with `take_refusals()`).

Rate limits are off unless a test turns them on: `fake_slack.limit(SLACK_LIMITS)` (from
`tests.fakes.slack_limits`, maybe `.scaled(...)` to run in seconds) answers 429 with
`Retry-After` over Slack's documented limits per method tier per workspace and per channel for
`chat.postMessage`. `rate_limited` lists the calls so answered; a call repeated before its
`Retry-After` ran out is an early retry, and the `fake_slack` fixture fails a test with any.

Socket Mode: `apps.connections.open` hands out a ws:// URL of this server; a test pushes an
envelope to the connected app with `await fake_slack.push_envelope(...)` and awaits its ack.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import json
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import parse_qsl

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from tests.fakes import blockkit
from tests.fakes.slack_limits import EarlyRetry, Limiter, RateLimits

DEFAULT_TEAM_ID = "T0PUSHOPS"
DEFAULT_TEAM_NAME = "PushOps Test"
DEFAULT_BOT_TOKEN = "xoxb-1-fake-bot-token"
DEFAULT_BOT_USER_ID = "U0BOT"
DEFAULT_APP_TOKEN = "xapp-1-A0PUSHOPS-fake-app-token"
DEFAULT_USER_ID = "U0ALICE"
DEFAULT_CLIENT_ID = "1111.2222"
DEFAULT_CLIENT_SECRET = "fake-client-secret-abcdef"

RESPONSE_URL = "response_url"
"""The method name under which posts to a response_url are recorded."""

# Arguments that the SDK sends as JSON strings inside form bodies.
_JSON_ARGS = ("blocks", "attachments", "view", "metadata", "files")
MAX_UPLOAD = 1024 * 1024 * 1024  # Slack takes files up to 1 GB
_RESPONSE_URL_USES = 5  # Slack accepts five posts per response_url


@dataclass(frozen=True)
class Call:
    """One request the app made: the method (or RESPONSE_URL), its arguments and token."""

    method: str
    args: dict[str, Any]
    token: str | None = None
    target: str | None = None  # the response_url's id for RESPONSE_URL calls
    peer: str = ""  # the app's end of the connection ("host:port"): one per pooled connection
    status: int = 200  # the HTTP status of the answer: 429 when rate limited
    at: float = field(default_factory=time.monotonic)  # when it was answered


@dataclass(frozen=True)
class Refusal:
    """A message or view the fake refused: the method, Slack's error code, what was wrong."""

    method: str
    error: str
    problems: tuple[str, ...]

    def __str__(self) -> str:
        return f"{self.method} refused with {self.error}: {blockkit.dumps_problems(self.problems)}"


@dataclass
class Workspace:
    """A workspace the fake knows, with its bot token."""

    team_id: str
    name: str
    bot_token: str
    bot_user_id: str = DEFAULT_BOT_USER_ID
    bot_id: str = "B0BOT"
    enterprise_id: str | None = None
    org_wide: bool = False  # installed for the whole Grid org: its token serves every workspace


@dataclass
class User:
    """A Slack user as `users.info` returns it."""

    id: str
    team_id: str
    name: str
    real_name: str
    tz: str = "Europe/Berlin"
    tz_label: str = "Central European Time"
    tz_offset: int = 3600
    is_admin: bool = False
    is_owner: bool = False
    # Guests, as Slack flags them: a multi-channel guest is restricted; a single-channel guest
    # is both restricted and ultra-restricted (`guest()` makes either).
    is_restricted: bool = False
    is_ultra_restricted: bool = False
    is_bot: bool = False
    deleted: bool = False
    email: str | None = None

    def to_api(self) -> dict[str, Any]:
        """The `user` object of `users.info`."""
        return {
            "id": self.id,
            "team_id": self.team_id,
            "name": self.name,
            "real_name": self.real_name,
            "deleted": self.deleted,
            "tz": self.tz,
            "tz_label": self.tz_label,
            "tz_offset": self.tz_offset,
            "is_admin": self.is_admin,
            "is_owner": self.is_owner,
            "is_primary_owner": self.is_owner,
            "is_restricted": self.is_restricted,
            "is_ultra_restricted": self.is_ultra_restricted,
            "is_bot": self.is_bot,
            "profile": {
                "real_name": self.real_name,
                "display_name": self.name,
                **({"email": self.email} if self.email else {}),
            },
        }


@dataclass
class Fault:
    """A prepared failure for the next `times` calls of a method."""

    error: str
    times: int
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    where: Callable[[dict[str, Any]], bool] | None = None  # only calls with these arguments


@dataclass
class Upload:
    """A file of Slack's upload flow: asked for (files.getUploadURLExternal), its bytes
    posted to the upload URL, then shared (files.completeUploadExternal)."""

    file_id: str
    team_id: str
    filename: str
    length: int
    content: bytes | None = None
    title: str = ""
    channel_id: str | None = None
    initial_comment: str = ""
    completed: bool = False


@dataclass
class _State:
    calls: list[Call] = field(default_factory=list)
    workspaces: dict[str, Workspace] = field(default_factory=dict)  # by bot token
    users: dict[str, User] = field(default_factory=dict)
    usergroups: dict[str, tuple[str, list[str]]] = field(default_factory=dict)
    app_tokens: set[str] = field(default_factory=set)
    faults: dict[str, Fault] = field(default_factory=dict)
    views: dict[str, dict[str, Any]] = field(default_factory=dict)
    homes: dict[tuple[str, str], str] = field(default_factory=dict)  # (team, user) -> view id
    messages: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    uploads: dict[str, Upload] = field(default_factory=dict)  # by file id
    response_uses: dict[str, int] = field(default_factory=dict)
    oauth_codes: dict[str, Workspace] = field(default_factory=dict)
    oauth_client: tuple[str, str] = (DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    tickets: set[str] = field(default_factory=set)
    delays: dict[str, float] = field(default_factory=dict)
    acks: dict[str, dict[str, Any]] = field(default_factory=dict)
    refusals: list[Refusal] = field(default_factory=list)
    limiter: Limiter | None = None


class FakeSlack:
    """The fake Slack server; start() once, reset() per test."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = _State()
        self._counter = itertools.count(1)
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._socket: WebSocket | None = None
        self.port = 0
        self.reset()

    # --- lifecycle ------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT` (no trailing slash)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """What SLACK_API_URL should be set to."""
        return f"{self.base_url}/api/"

    def start(self) -> None:
        """Serve on a free port in a background thread; returns once it accepts requests."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self._asgi(), log_level="warning", lifespan="off", ws="websockets-sansio"
        )
        self._server = uvicorn.Server(config)

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            assert self._server is not None
            loop.run_until_complete(self._server.serve(sockets=[sock]))
            loop.close()

        self._thread = threading.Thread(target=run, name="fake-slack", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the fake Slack did not start")
            time.sleep(0.005)

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def reset(self) -> None:
        """Forget every call and seeded object; seed the default workspace and user."""
        with self._lock:
            self._state = _State()
            self._state.app_tokens.add(DEFAULT_APP_TOKEN)
        self._socket = None  # a connection left by an earlier test's app is no longer ours
        self.add_workspace(DEFAULT_TEAM_ID, name=DEFAULT_TEAM_NAME, bot_token=DEFAULT_BOT_TOKEN)
        self.add_user(DEFAULT_USER_ID, name="alice", real_name="Alice Admin", is_admin=True)

    # --- seeding ----------------------------------------------------------------------------

    def add_workspace(
        self,
        team_id: str,
        *,
        bot_token: str,
        name: str = "Another Workspace",
        bot_user_id: str = DEFAULT_BOT_USER_ID,
        enterprise_id: str | None = None,
    ) -> Workspace:
        """A workspace whose `bot_token` the fake accepts."""
        workspace = Workspace(
            team_id=team_id,
            name=name,
            bot_token=bot_token,
            bot_user_id=bot_user_id,
            enterprise_id=enterprise_id,
        )
        with self._lock:
            self._state.workspaces[bot_token] = workspace
        return workspace

    def add_user(self, user_id: str, *, team_id: str = DEFAULT_TEAM_ID, **fields: Any) -> User:
        """A user `users.info` knows; fields: name, real_name, tz, tz_offset, is_admin..."""
        fields.setdefault("name", user_id.lower())
        fields.setdefault("real_name", fields["name"].title())
        user = User(id=user_id, team_id=team_id, **fields)
        with self._lock:
            self._state.users[user_id] = user
        return user

    def add_guest(
        self, user_id: str, *, single_channel: bool = False, team_id: str = DEFAULT_TEAM_ID
    ) -> User:
        """A guest: multi-channel (`is_restricted`), or single-channel (`is_ultra_restricted`
        too, as Slack sets both)."""
        return self.add_user(
            user_id, team_id=team_id, is_restricted=True, is_ultra_restricted=single_channel
        )

    def add_usergroup(
        self, group_id: str, users: list[str], *, team_id: str = DEFAULT_TEAM_ID
    ) -> None:
        """A user group whose members `usergroups.users.list` returns."""
        with self._lock:
            self._state.usergroups[group_id] = (team_id, list(users))

    def revoke(self, bot_token: str) -> None:
        """Make `bot_token` invalid from now on (as after an uninstall)."""
        with self._lock:
            self._state.workspaces.pop(bot_token, None)

    def fail(
        self,
        method: str,
        error: str,
        *,
        times: int = 1,
        status: int = 200,
        headers: dict[str, str] | None = None,
        where: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """The next `times` calls of `method` (whose arguments match `where`, when given)
        answer `{"ok": false, "error": error}`.

        With status 429, add `headers={"Retry-After": "1"}` as Slack does. For RESPONSE_URL
        the answer is `error` as plain text with `status` (Slack says 404 `expired_url`).
        """
        with self._lock:
            self._state.faults[method] = Fault(error, times, status, headers or {}, where)

    def delay(self, method: str, seconds: float) -> None:
        """Answer `method` (or RESPONSE_URL) only after `seconds`, from now on."""
        with self._lock:
            self._state.delays[method] = seconds

    def limit(self, limits: RateLimits | None) -> None:
        """Hold Web API calls to `limits` (`tests.fakes.slack_limits.SLACK_LIMITS`, maybe
        scaled) from now on, answering 429 with `Retry-After` over them; None lifts them.
        Off after every reset."""
        with self._lock:
            self._state.limiter = Limiter(limits) if limits is not None else None

    def issue_oauth_code(
        self,
        team_id: str,
        *,
        team_name: str = "Installed Workspace",
        bot_token: str | None = None,
        enterprise_id: str | None = None,
        org_wide: bool = False,
    ) -> str:
        """A code that `oauth.v2.access` exchanges for an installation in `team_id`, a
        workspace of the Enterprise Grid org `enterprise_id` when given; with `org_wide`, an
        installation for the whole org (`team_id` is then the org's id)."""
        code = "code-" + uuid.uuid4().hex
        token = bot_token or f"xoxb-{team_id}-{uuid.uuid4().hex[:12]}"
        workspace = Workspace(
            team_id=team_id,
            name=team_name,
            bot_token=token,
            enterprise_id=enterprise_id,
            org_wide=org_wide,
        )
        with self._lock:
            self._state.oauth_codes[code] = workspace
        return code

    def new_response_url(self) -> str:
        """A fresh response_url served by the fake."""
        return f"{self.base_url}/response/{uuid.uuid4().hex}"

    # --- inspection ---------------------------------------------------------------------------

    @property
    def calls(self) -> list[Call]:
        """Every recorded call, oldest first (a copy)."""
        with self._lock:
            return list(self._state.calls)

    def calls_to(self, method: str, *, where: Callable[[Call], bool] | None = None) -> list[Call]:
        """The recorded calls of one method (RESPONSE_URL for response_url posts)."""
        return [c for c in self.calls if c.method == method and (where is None or where(c))]

    @property
    def rate_limited(self) -> list[Call]:
        """The calls answered 429 (`ratelimited`), oldest first."""
        return [c for c in self.calls if c.status == 429]

    @property
    def early_retries(self) -> list[EarlyRetry]:
        """Calls repeated before the `Retry-After` of their 429 ran out (see `limit`)."""
        with self._lock:
            limiter = self._state.limiter
            return list(limiter.early_retries) if limiter is not None else []

    def messages_in(self, channel: str) -> list[dict[str, Any]]:
        """The messages posted in `channel`, as they now read (after updates), oldest first."""
        with self._lock:
            found = [(ts, m) for (c, ts), m in self._state.messages.items() if c == channel]
        return [dict(message) for _, message in sorted(found, key=lambda item: float(item[0]))]

    @property
    def refusals(self) -> list[Refusal]:
        """Every message or view refused for breaking Block Kit's rules, oldest first."""
        with self._lock:
            return list(self._state.refusals)

    def take_refusals(self) -> list[Refusal]:
        """The refusals so far, forgotten from now on (for tests that send invalid payloads)."""
        with self._lock:
            taken, self._state.refusals = self._state.refusals, []
        return taken

    def view(self, view_id: str) -> dict[str, Any] | None:
        """The view the fake holds under `view_id` (as last opened, updated or pushed)."""
        with self._lock:
            return self._state.views.get(view_id)

    def home(self, user_id: str, team_id: str = DEFAULT_TEAM_ID) -> dict[str, Any] | None:
        """The Home tab last published for `user_id` in `team_id`."""
        with self._lock:
            view_id = self._state.homes.get((team_id, user_id))
            return self._state.views.get(view_id) if view_id else None

    def check_view_answer(self, answer: Any, view: dict[str, Any]) -> None:
        """Check the app's answer to the submission of `view` (the HTTP body of its ack, or a
        Socket Mode ack's payload) as Slack does; a refusal is kept in `refusals`.

        An answer Slack takes changes what it shows: `update` replaces the view (same id),
        `push` stacks a new view on it (at most two on a modal opened by the app, and an
        `external_id` used once), `clear` closes the whole modal.
        """
        problems = blockkit.response_action_problems(answer, view)
        if not problems and isinstance(answer, dict):
            problems = self._show_answer(answer, str(view.get("id") or ""))
        if problems:
            self._refuse("view_submission", ("invalid_response_action", problems))

    def _show_answer(self, answer: dict[str, Any], view_id: str) -> list[str]:
        """Show what the answer to the submission of `view_id` asks for; its problems."""
        action = answer.get("response_action")
        with self._lock:
            views = self._state.views
            if action not in ("update", "push", "clear"):
                return []
            current = views.get(view_id)
            if current is None:  # a view the test made up rather than opened: its own root
                if action == "clear":
                    return []
                current = views[view_id] = {"id": view_id, "type": "modal", "blocks": []}
            if action == "clear":
                root = current.get("root_view_id") or view_id
                for vid in [v for v, shown in views.items() if _in_stack(shown, v, root)]:
                    del views[vid]
                return []
            return self._stack_view(answer["view"], current, view_id, push=action == "push")

    def _stack_view(
        self, view: dict[str, Any], current: dict[str, Any], view_id: str, *, push: bool
    ) -> list[str]:
        """Store `view` over `current` (update) or on top of it (push); called locked."""
        external_id = view.get("external_id")
        if external_id and any(
            v.get("external_id") == external_id and (push or vid != view_id)
            for vid, v in self._state.views.items()
        ):
            return [f"/view/external_id: {external_id!r} is used by another view"]
        root = current.get("root_view_id") or view_id
        if push and _depth(self._state.views, view_id) >= _MODAL_STACK:
            return [f"/response_action: a modal holds at most {_MODAL_STACK} views"]
        new_id = "V" + uuid.uuid4().hex[:10].upper() if push else view_id
        self._state.views[new_id] = {
            **view,
            "id": new_id,
            "team_id": current.get("team_id"),
            "hash": f"{time.time():.6f}",
            "state": {"values": {}},
            "root_view_id": root,
            "previous_view_id": view_id if push else current.get("previous_view_id"),
        }
        return []

    def view_by_external_id(self, external_id: str) -> tuple[str, dict[str, Any]] | None:
        """(view id, view) of the view shown under `external_id`, if any."""
        with self._lock:
            return next(
                ((vid, v) for vid, v in self._state.views.items()
                 if v.get("external_id") == external_id),
                None,
            )  # fmt: skip

    def close_view(self, view_id: str) -> dict[str, Any] | None:
        """The person closes the view on top (its close button: "Back" on a pushed view);
        the view under it, shown again as it was, or None when the modal is gone."""
        with self._lock:
            closed = self._state.views.pop(view_id, None)
            previous = (closed or {}).get("previous_view_id")
            return self._state.views.get(previous) if previous else None

    def check_ack_message(self, payload: dict[str, Any]) -> None:
        """Check a message the app answered in an ack (Socket Mode) as Slack does."""
        invalid = _reply_error(payload)
        if invalid is not None:
            self._refuse("ack", invalid)

    def replies(self, response_url: str) -> list[dict[str, Any]]:
        """The bodies posted to one response_url, oldest first."""
        target = response_url.rstrip("/").rsplit("/", 1)[-1]
        return [c.args for c in self.calls_to(RESPONSE_URL) if c.target == target]

    async def wait_for(
        self,
        method: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109 - the natural spelling for tests
        count: int = 1,
        where: Callable[[Call], bool] | None = None,
    ) -> Call:
        """The `count`-th recorded call of `method` (matching `where`), once it happened."""
        deadline = time.monotonic() + timeout
        # Polled: calls are recorded on the fake's own thread and event loop.
        while (call := self._nth(method, count, where, deadline, timeout)) is None:  # noqa: ASYNC110
            await asyncio.sleep(0.005)
        return call

    async def wait_for_reply(
        self,
        response_url: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
        count: int = 1,
    ) -> dict[str, Any]:
        """The `count`-th body posted to `response_url`."""
        target = response_url.rstrip("/").rsplit("/", 1)[-1]
        call = await self.wait_for(
            RESPONSE_URL, timeout=timeout, count=count, where=lambda c: c.target == target
        )
        return call.args

    def _nth(
        self,
        method: str,
        count: int,
        where: Callable[[Call], bool] | None,
        deadline: float,
        timeout: float,
    ) -> Call | None:
        """The `count`-th matching call, None while there is none yet; fails past `deadline`."""
        found = self.calls_to(method, where=where)
        if len(found) >= count:
            return found[count - 1]
        if time.monotonic() > deadline:
            raise AssertionError(self._timeout_message(method, count, timeout))
        return None

    def _timeout_message(self, method: str, count: int, timeout: float) -> str:
        seen = ", ".join(c.method for c in self.calls) or "nothing"
        return f"no call #{count} to {method} within {timeout} s; the fake saw: {seen}"

    # --- Socket Mode ------------------------------------------------------------------------

    async def wait_socket_connected(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Return once an app is connected over Socket Mode."""
        deadline = time.monotonic() + timeout
        while self._socket is None:
            if time.monotonic() > deadline:
                raise AssertionError("no app connected over Socket Mode")
            await asyncio.sleep(0.005)

    async def push_envelope(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool = False
    ) -> str:
        """Send an envelope (slash_commands, interactive, events_api) to the connected app."""
        await self.wait_socket_connected()
        envelope_id = str(uuid.uuid4())
        message = {
            "envelope_id": envelope_id,
            "type": kind,
            "payload": payload,
            "accepts_response_payload": accepts_response_payload,
            "retry_attempt": 0,
            "retry_reason": "",
        }
        ws, loop = self._socket, self._loop
        assert ws is not None and loop is not None
        future = asyncio.run_coroutine_threadsafe(ws.send_text(json.dumps(message)), loop)
        await asyncio.wrap_future(future)
        return envelope_id

    async def wait_ack(
        self,
        envelope_id: str,
        *,
        timeout: float = 5.0,  # noqa: ASYNC109
    ) -> dict[str, Any]:
        """The app's acknowledgement of an envelope (`{"envelope_id": ..., "payload"?: ...}`)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                ack = self._state.acks.get(envelope_id)
            if ack is not None:
                return ack
            if time.monotonic() > deadline:
                raise AssertionError(f"no ack of envelope {envelope_id} within {timeout} s")
            await asyncio.sleep(0.005)

    # --- the server -------------------------------------------------------------------------

    def _asgi(self) -> Starlette:
        return Starlette(
            routes=[
                Route("/api/{method}", self._api, methods=["GET", "POST"]),
                Route("/response/{target}", self._response_url, methods=["POST"]),
                Route("/upload/{file_id}", self._upload, methods=["POST"]),
                WebSocketRoute("/link/", self._websocket),
            ]
        )

    async def _api(self, request: Request) -> Response:
        method = request.path_params["method"]
        args = await _read_args(request)
        token = _bearer(request) or args.pop("token", None)
        await self._maybe_delay(method)
        answer = self._rate_limit(method, args, token) or self._answer(method, request, args, token)
        with self._lock:  # recorded once answered: a test that sees the call sees its effect
            call = Call(method=method, args=args, token=token, status=answer.status_code)
            self._state.calls.append(call)
        return answer

    def _rate_limit(self, method: str, args: dict[str, Any], token: str | None) -> Response | None:
        """Slack's 429 when `limit` is on and the call goes over it; None otherwise."""
        workspace = self._workspace(token)
        with self._lock:
            limiter = self._state.limiter
            if limiter is None or workspace is None or token is None:
                return None
            retry_after = limiter.admit(workspace.team_id, token, method, args)
        if retry_after is None:
            return None
        return JSONResponse(
            {"ok": False, "error": "ratelimited"},
            status_code=429,
            headers={"Retry-After": str(retry_after)},
        )

    def _answer(
        self, method: str, request: Request, args: dict[str, Any], token: str | None
    ) -> Response:
        refused = self._refuse(method, _payload_error(method, args))
        if refused is not None:
            return JSONResponse(refused)
        with self._lock:
            fault = self._take_fault(method, args)
        if fault is not None:
            return JSONResponse(
                {"ok": False, "error": fault.error}, status_code=fault.status, headers=fault.headers
            )
        handler = _METHODS.get(method)
        if handler is None:
            return JSONResponse({"ok": False, "error": "unknown_method"}, status_code=404)
        return JSONResponse(handler(self, request, args, token))

    async def _maybe_delay(self, method: str) -> None:
        with self._lock:
            seconds = self._state.delays.get(method, 0.0)
        if seconds:
            await asyncio.sleep(seconds)

    def _refuse(self, method: str, found: tuple[str, list[str]] | None) -> dict[str, Any] | None:
        """Slack's answer refusing an invalid payload (kept in `refusals`); None when valid."""
        if found is None:
            return None
        error, problems = found
        with self._lock:
            self._state.refusals.append(Refusal(method, error, tuple(problems)))
        if method.startswith("views."):
            messages = [f"[ERROR] {p}" for p in problems]
            return {"ok": False, "error": error, "response_metadata": {"messages": messages}}
        return {"ok": False, "error": error, "errors": problems}

    def _take_fault(self, method: str, args: dict[str, Any]) -> Fault | None:
        fault = self._state.faults.get(method)
        if fault is None or (fault.where is not None and not fault.where(args)):
            return None
        fault.times -= 1
        if fault.times <= 0:
            del self._state.faults[method]
        return fault

    async def _upload(self, request: Request) -> Response:
        """The upload URL: takes the file's bytes once, as files.getUploadURLExternal said."""
        body = await request.body()
        with self._lock:
            upload = self._state.uploads.get(request.path_params["file_id"])
            if upload is None or upload.content is not None:
                return Response("not found", status_code=404)
            upload.content = body
        return Response(f"OK - {len(body)}", media_type="text/plain")

    def shared_files(self, channel_id: str | None = None) -> list[Upload]:
        """Files shared by files.completeUploadExternal (in `channel_id` only, if given)."""
        with self._lock:
            done = [u for u in self._state.uploads.values() if u.completed]
        return [u for u in done if channel_id is None or u.channel_id == channel_id]

    async def _response_url(self, request: Request) -> Response:
        target = request.path_params["target"]
        await self._maybe_delay(RESPONSE_URL)
        try:
            body = json.loads(await request.body() or b"{}")
        except json.JSONDecodeError:
            return PlainTextResponse("invalid_payload", status_code=400)
        invalid = _reply_error(body)
        with self._lock:
            uses = self._state.response_uses.get(target, 0) + 1
            self._state.response_uses[target] = uses
            peer = f"{request.client.host}:{request.client.port}" if request.client else ""
            self._state.calls.append(Call(method=RESPONSE_URL, args=body, target=target, peer=peer))
        if invalid is not None:
            self._refuse(RESPONSE_URL, invalid)
            return PlainTextResponse(invalid[0], status_code=400)
        with self._lock:
            fault = self._take_fault(RESPONSE_URL, body)
        if fault is not None:
            return PlainTextResponse(fault.error, status_code=fault.status)
        if uses > _RESPONSE_URL_USES:
            return PlainTextResponse("used_url", status_code=404)
        return PlainTextResponse("ok")

    async def _websocket(self, ws: WebSocket) -> None:
        ticket = ws.query_params.get("ticket", "")
        with self._lock:
            known = ticket in self._state.tickets
        if not known:
            await ws.close(code=4001)
            return
        await ws.accept()
        await ws.send_text(json.dumps({"type": "hello", "num_connections": 1}))
        self._socket = ws
        try:
            while True:
                ack = json.loads(await ws.receive_text())
                with self._lock:
                    self._state.acks[str(ack.get("envelope_id"))] = ack
        except WebSocketDisconnect:
            pass
        finally:
            if self._socket is ws:
                self._socket = None

    # --- Web API methods ----------------------------------------------------------------------

    def _workspace(self, token: str | None) -> Workspace | None:
        with self._lock:
            return self._state.workspaces.get(token or "")

    def _next_ts(self) -> str:
        return f"{int(time.time())}.{next(self._counter):06d}"


_MODAL_STACK = 3  # a modal opened by the app, and at most two views pushed on it


def _in_stack(view: dict[str, Any], view_id: str, root: str) -> bool:
    return view_id == root or view.get("root_view_id") == root


def _depth(views: dict[str, dict[str, Any]], view_id: str) -> int:
    """How many views the modal showing `view_id` stacks, up to it."""
    depth = 0
    current: str | None = view_id
    while current is not None and current in views:
        depth += 1
        current = views[current].get("previous_view_id")
    return depth


def _auth_error(token: str | None) -> dict[str, Any]:
    return {"ok": False, "error": "not_authed" if not token else "invalid_auth"}


def _bot_method(
    func: Callable[[FakeSlack, Workspace, dict[str, Any]], dict[str, Any]],
) -> Callable[[FakeSlack, Request, dict[str, Any], str | None], dict[str, Any]]:
    """A Web API method that needs a valid bot token."""

    def method(
        fake: FakeSlack, _: Request, args: dict[str, Any], token: str | None
    ) -> dict[str, Any]:
        workspace = fake._workspace(token)
        if workspace is None:
            return _auth_error(token)
        return func(fake, workspace, args)

    return method


def _auth_test(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    result: dict[str, Any] = {
        "ok": True,
        "url": f"https://{ws.team_id.lower()}.slack.test/",
        "team": ws.name,
        "user": "pushops",
        "team_id": ws.team_id,
        "user_id": ws.bot_user_id,
        "bot_id": ws.bot_id,
        "is_enterprise_install": ws.org_wide,
    }
    if ws.enterprise_id:
        result["enterprise_id"] = ws.enterprise_id
    return result


def _post_message(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    channel = args.get("channel")
    if not channel:
        return {"ok": False, "error": "channel_not_found"}
    if not (args.get("text") or args.get("blocks") or args.get("attachments")):
        return {"ok": False, "error": "no_text"}
    ts = fake._next_ts()
    message = {"type": "message", "ts": ts, "text": args.get("text", ""), "bot_id": ws.bot_id}
    if "blocks" in args:
        message["blocks"] = args["blocks"]
    with fake._lock:
        fake._state.messages[(str(channel), ts)] = message
    return {"ok": True, "channel": channel, "ts": ts, "message": message}


def _post_ephemeral(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    if not args.get("channel"):
        return {"ok": False, "error": "channel_not_found"}
    if not args.get("user"):
        return {"ok": False, "error": "user_not_in_channel"}
    return {"ok": True, "message_ts": fake._next_ts()}


def _update(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    key = (str(args.get("channel")), str(args.get("ts")))
    with fake._lock:
        message = fake._state.messages.get(key)
        if message is None:
            return {"ok": False, "error": "message_not_found"}
        message.update({k: v for k, v in args.items() if k in ("text", "blocks")})
    return {"ok": True, "channel": key[0], "ts": key[1], "text": message.get("text", "")}


def _view_response(fake: FakeSlack, ws: Workspace, view: Any, view_id: str) -> dict[str, Any]:
    if not isinstance(view, dict) or "type" not in view:
        return {"ok": False, "error": "invalid_arguments"}
    stored = {
        **view,
        "id": view_id,
        "team_id": ws.team_id,
        "hash": f"{time.time():.6f}",
        "state": {"values": {}},
    }
    with fake._lock:
        fake._state.views[view_id] = stored
    return {"ok": True, "view": stored}


def _views_open(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    if not args.get("trigger_id"):
        return {"ok": False, "error": "invalid_trigger_id"}
    return _view_response(fake, ws, args.get("view"), "V" + uuid.uuid4().hex[:10].upper())


def _views_update(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    view_id = args.get("view_id")
    if not view_id and args.get("external_id"):
        with fake._lock:
            view_id = next(
                (
                    vid
                    for vid, v in fake._state.views.items()
                    if v.get("external_id") == args["external_id"]
                ),
                None,
            )
    with fake._lock:
        existing = fake._state.views.get(str(view_id))
    if existing is None:
        return {"ok": False, "error": "not_found"}
    if args.get("hash") and args["hash"] != existing["hash"]:
        return {"ok": False, "error": "hash_conflict"}
    answer = _view_response(fake, ws, args.get("view"), str(view_id))
    stack: dict[str, Any] = {
        k: existing[k] for k in ("root_view_id", "previous_view_id") if k in existing
    }
    if answer.get("ok") and stack:  # an update keeps the view where it is in its modal
        with fake._lock:
            fake._state.views[str(view_id)].update(stack)
    return answer


def _views_push(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    if not args.get("trigger_id"):
        return {"ok": False, "error": "invalid_trigger_id"}
    return _view_response(fake, ws, args.get("view"), "V" + uuid.uuid4().hex[:10].upper())


_VIEW_BYTES: Final = 250_000
"""Slack's `view_too_large`: a view of more than 250 kB."""
_NOT_ON_HOME: Final = ("title", "submit", "close")
"""Fields of a modal that a Home tab view does not have."""


def _views_publish(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    """A Home tab for one person of the workspace: only a `home` view, within 250 kB."""
    user_id = str(args.get("user_id") or "")
    with fake._lock:
        user = fake._state.users.get(user_id)
    if user is None or (user.team_id != ws.team_id and not ws.org_wide):
        return _view_refused("invalid_arguments", "invalid `user_id`")
    view = args.get("view")
    if not isinstance(view, dict) or view.get("type") != "home":
        return _view_refused("invalid_arguments", "/view/type: views.publish takes a home view")
    if any(key in view for key in _NOT_ON_HOME):
        return _view_refused("invalid_arguments", "/view: a home view has no title or buttons")
    if len(json.dumps(view).encode()) > _VIEW_BYTES:
        return {"ok": False, "error": "view_too_large"}
    with fake._lock:
        known = fake._state.homes.get((ws.team_id, user_id))
    answer = _view_response(fake, ws, view, known or "V" + uuid.uuid4().hex[:10].upper())
    with fake._lock:
        fake._state.homes[(ws.team_id, user_id)] = answer["view"]["id"]
    return answer


def _view_refused(error: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": error, "response_metadata": {"messages": [f"[ERROR] {message}"]}}


def _users_info(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    with fake._lock:
        user = fake._state.users.get(str(args.get("user")))
    if user is None or (user.team_id != ws.team_id and not ws.org_wide):
        return {"ok": False, "error": "user_not_found"}
    return {"ok": True, "user": user.to_api()}


def _conversations_open(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    users = str(args.get("users") or "").split(",")
    if not users[0]:
        return {"ok": False, "error": "users_list_not_supplied"}
    with fake._lock:
        known = all(fake._state.users.get(u) is not None for u in users)
    if not known:
        return {"ok": False, "error": "user_not_found"}
    return {"ok": True, "channel": {"id": "D" + users[0].lstrip("U")}}


def _get_upload_url(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    filename, length = args.get("filename"), str(args.get("length") or "")
    if not filename or not length.isdigit() or not 0 < int(length) <= MAX_UPLOAD:
        return {"ok": False, "error": "invalid_arguments"}
    file_id = f"F{next(fake._counter):08d}"
    with fake._lock:
        fake._state.uploads[file_id] = Upload(file_id, ws.team_id, str(filename), int(length))
    return {"ok": True, "file_id": file_id, "upload_url": f"{fake.base_url}/upload/{file_id}"}


def _complete_upload(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    files = args.get("files")
    if not isinstance(files, list) or not files or not all(isinstance(f, dict) for f in files):
        return {"ok": False, "error": "invalid_arguments"}
    with fake._lock:
        uploads = [fake._state.uploads.get(str(f.get("id"))) for f in files]
        if any(u is None or u.team_id != ws.team_id or u.completed for u in uploads):
            return {"ok": False, "error": "file_not_found"}
        if any(
            u is not None and (u.content is None or len(u.content) != u.length) for u in uploads
        ):
            return {"ok": False, "error": "file_upload_size_mismatch"}  # never fully posted
        shared = []
        for upload, item in zip(uploads, files, strict=True):
            assert upload is not None
            upload.title = str(item.get("title") or upload.filename)
            upload.channel_id = args.get("channel_id") or None
            upload.initial_comment = str(args.get("initial_comment") or "")
            upload.completed = True
            shared.append({"id": upload.file_id, "name": upload.filename, "title": upload.title})
    return {"ok": True, "files": shared}


def _usergroup_users(fake: FakeSlack, ws: Workspace, args: dict[str, Any]) -> dict[str, Any]:
    with fake._lock:
        group = fake._state.usergroups.get(str(args.get("usergroup")))
    if group is None or group[0] != ws.team_id:
        return {"ok": False, "error": "no_such_subteam"}
    return {"ok": True, "users": list(group[1])}


def _connections_open(
    fake: FakeSlack, request: Request, args: dict[str, Any], token: str | None
) -> dict[str, Any]:
    with fake._lock:
        valid = token in fake._state.app_tokens
        if valid:
            ticket = uuid.uuid4().hex
            fake._state.tickets.add(ticket)
    if not valid:
        return _auth_error(token)
    return {"ok": True, "url": f"ws://127.0.0.1:{fake.port}/link/?ticket={ticket}"}


def _oauth_access(
    fake: FakeSlack, request: Request, args: dict[str, Any], token: str | None
) -> dict[str, Any]:
    client_id, client_secret = _basic_auth(request) or (
        str(args.get("client_id")),
        str(args.get("client_secret")),
    )
    with fake._lock:
        if (client_id, client_secret) != fake._state.oauth_client:
            return {"ok": False, "error": "invalid_client_id"}
        workspace = fake._state.oauth_codes.pop(str(args.get("code")), None)
        if workspace is None:
            return {"ok": False, "error": "invalid_code"}
        fake._state.workspaces[workspace.bot_token] = workspace
    return {
        "ok": True,
        "app_id": "A0PUSHOPS",
        "authed_user": {"id": DEFAULT_USER_ID},
        "scope": "commands,chat:write,im:write,users:read,usergroups:read,files:write",
        "token_type": "bot",
        "access_token": workspace.bot_token,
        "bot_user_id": workspace.bot_user_id,
        "team": None if workspace.org_wide else {"id": workspace.team_id, "name": workspace.name},
        "enterprise": (
            {"id": workspace.enterprise_id, "name": "Grid Org"} if workspace.enterprise_id else None
        ),
        "is_enterprise_install": workspace.org_wide,
    }


_METHODS: dict[str, Callable[[FakeSlack, Request, dict[str, Any], str | None], dict[str, Any]]] = {
    "auth.test": _bot_method(_auth_test),
    "chat.postMessage": _bot_method(_post_message),
    "chat.postEphemeral": _bot_method(_post_ephemeral),
    "chat.update": _bot_method(_update),
    "views.open": _bot_method(_views_open),
    "views.update": _bot_method(_views_update),
    "views.push": _bot_method(_views_push),
    "views.publish": _bot_method(_views_publish),
    "users.info": _bot_method(_users_info),
    "conversations.open": _bot_method(_conversations_open),
    "usergroups.users.list": _bot_method(_usergroup_users),
    "files.getUploadURLExternal": _bot_method(_get_upload_url),
    "files.completeUploadExternal": _bot_method(_complete_upload),
    "apps.connections.open": _connections_open,
    "oauth.v2.access": _oauth_access,
}


_MESSAGE_METHODS = ("chat.postMessage", "chat.postEphemeral", "chat.update")
_VIEW_METHODS = ("views.open", "views.update", "views.push", "views.publish")


def _payload_error(method: str, args: dict[str, Any]) -> tuple[str, list[str]] | None:
    """Slack's error code and the problems of a Web API call's message or view, if any."""
    if method in _MESSAGE_METHODS:
        error, problems = blockkit.message_problems(args.get("text"), args.get("blocks"))
        return (error, problems) if error else None
    if method in _VIEW_METHODS and "view" in args:
        problems = blockkit.view_problems(args["view"])
        return ("invalid_arguments", problems) if problems else None
    return None


def _reply_error(body: dict[str, Any]) -> tuple[str, list[str]] | None:
    """The error of a response_url post, if its message breaks Block Kit's rules."""
    if body.get("delete_original"):
        return None
    error, problems = blockkit.message_problems(body.get("text"), body.get("blocks"), web_api=False)
    return (error, problems) if error else None


async def _read_args(request: Request) -> dict[str, Any]:
    """Query string plus form or JSON body, with JSON-in-form fields decoded."""
    args: dict[str, Any] = dict(request.query_params)
    body = await request.body()
    if body:
        if request.headers.get("content-type", "").startswith("application/json"):
            args.update(json.loads(body))
        else:
            args.update(parse_qsl(body.decode(), keep_blank_values=True))
    for key in _JSON_ARGS:
        if isinstance(args.get(key), str):
            with contextlib.suppress(json.JSONDecodeError):
                args[key] = json.loads(args[key])
    return args


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    return header[7:] if header.lower().startswith("bearer ") else None


def _basic_auth(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    if not header.lower().startswith("basic "):
        return None
    user, _, password = base64.b64decode(header[6:]).decode().partition(":")
    return user, password


@contextlib.contextmanager
def serving() -> Iterator[FakeSlack]:
    """A started fake, stopped on exit."""
    fake = FakeSlack()
    fake.start()
    try:
        yield fake
    finally:
        fake.stop()
