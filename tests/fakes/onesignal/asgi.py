"""The fake's ASGI application: record, inject faults, authorize, dispatch, answer.

Plain ASGI rather than Starlette's Request/Response: the fake must control the wire itself
(connections dropped mid-response, requests held open) and keep the create path lean for
the client benchmark.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any
from urllib.parse import parse_qs

from tests.fakes.onesignal.calls import Call, Reply
from tests.fakes.onesignal.errors import (
    ACCESS_DENIED,
    APP_ID_MISSING,
    APP_NOT_FOUND,
    ApiError,
    body_for_status,
    errors,
)
from tests.fakes.onesignal.faults import Decision, Faults, StatusFault
from tests.fakes.onesignal.records import RecordedRequest
from tests.fakes.onesignal.routes import ROUTES, Route, Router
from tests.fakes.onesignal.store import AppState, Store

Scope = dict[str, Any]
Receive = Any
Send = Any

HOLD_POLL_SECONDS = 0.002
_JSON = b"application/json; charset=utf-8"
_DROP = object()


class DroppedConnection(Exception):
    """Raised mid-response so that uvicorn aborts the connection (a fault, not a bug)."""


class HideDroppedConnections(logging.Filter):
    """Keeps uvicorn from logging a traceback for each connection dropped on purpose."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (record.exc_info and isinstance(record.exc_info[1], DroppedConnection))


class FakeOneSignalASGI:
    """The HTTP face of a `Store`, with `Faults` applied before any state changes."""

    def __init__(self, store: Store, faults: Faults) -> None:
        self.store = store
        self.faults = faults
        self.router = Router(ROUTES)
        self.closing = False  # set at shutdown so held requests stop waiting

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        request = self._record(scope, await _read_body(receive))
        if self.faults.active:
            fault = await self._apply_faults(request.method, request.path)
            if fault is _DROP:
                await _drop(send)
            if isinstance(fault, StatusFault):
                await _answer(send, *_fault_reply(fault))
                return
        reply = self._dispatch(request)
        if self.faults.active:
            await self._wait(self.faults.on_answer(request.method, request.path))
        await _answer(send, *reply)

    def _record(self, scope: Scope, body: bytes) -> RecordedRequest:
        path: str = scope["path"]
        raw_query: str = scope["query_string"].decode("latin-1")
        if "?" in path:  # a client that sent the spec's "/players/csv_export?app_id=" escaped
            path, _, extra = path.partition("?")
            raw_query = f"{extra}&{raw_query}" if raw_query else extra
        request = RecordedRequest(
            method=scope["method"],
            path=path,
            query=parse_qs(raw_query, keep_blank_values=True) if raw_query else {},
            headers={k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]},
            body=body,
            json=_loads(body),
            time=time.monotonic(),
        )
        if self.store.record_requests:
            with self.store.lock:
                self.store.requests.append(request)
        return request

    async def _apply_faults(self, method: str, path: str) -> StatusFault | object | None:
        await self._wait(self.faults.on_arrival(method, path))
        if self.faults.take_drop(method, path):
            return _DROP
        status = self.faults.take_status(method, path)
        return status if status is not None and status.status >= 400 else None

    async def _wait(self, decision: Decision) -> None:
        """Sleep the decided latency, then wait for every hold to be released."""
        if decision.latency:
            await asyncio.sleep(decision.latency)
        for hold in decision.holds:
            # A Hold is a threading.Event released from the test thread, which an
            # asyncio.Event cannot be; polling keeps the server loop free meanwhile.
            while not hold.released.is_set() and not self.closing:  # noqa: ASYNC110
                await asyncio.sleep(HOLD_POLL_SECONDS)

    def _dispatch(self, request: RecordedRequest) -> tuple[int, bytes, dict[str, str] | None]:
        found = self.router.match(request.method, request.path)
        if found is None:
            return 404, b'{"errors":["Not Found"]}', None
        route, params = found
        with self.store.lock:
            try:
                body = _body_of(request)
                app = self._authorize(route, params, request, body)
                call = Call(self.store, app, params, request.query, body, request.headers)
                reply = route.handler(call)
            except ApiError as error:
                reply = Reply(error.status, error.body, error.headers)
            # Serialized under the lock: the body may be live state another thread changes.
            payload = b"" if reply.body is None else _dumps(reply.body)
        return reply.status, payload, reply.headers

    def _authorize(
        self, route: Route, params: dict[str, str], request: RecordedRequest, body: Any
    ) -> AppState | None:
        key = _api_key(request.headers.get("authorization"))
        if route.app_from is None:
            if key != self.store.org_api_key:
                raise errors(403, ACCESS_DENIED)
            return None
        app_id = _app_id(route, params, request, body)
        if not app_id:
            raise errors(400, APP_ID_MISSING)
        state = self.store.apps.get(app_id)
        if state is None:
            raise errors(404, APP_NOT_FOUND)
        expected = self.store.org_api_key if route.key == "org" else state.app.rest_api_key
        if key != expected:
            raise errors(403, ACCESS_DENIED)
        return state


def _api_key(header: str | None) -> str | None:
    """The key of `Authorization: Key <key>` (or the legacy `Basic <key>`)."""
    if not header:
        return None
    scheme, _, key = header.partition(" ")
    if scheme.lower() not in ("key", "basic"):
        return None
    return key.strip() or None


def _app_id(route: Route, params: dict[str, str], request: RecordedRequest, body: Any) -> str:
    if route.app_from == "path":
        return params["app_id"]
    if route.app_from == "query":
        values = request.query.get("app_id")
        return values[0] if values else ""
    value = body.get("app_id") if isinstance(body, dict) else None
    return value if isinstance(value, str) else ""


def _body_of(request: RecordedRequest) -> Any:
    """The JSON body as the API sees it: only when sent as application/json."""
    if not request.body or "json" not in request.headers.get("content-type", ""):
        return None
    if request.json is None:
        raise errors(400, "The request body is not valid JSON")
    return request.json


def _fault_reply(fault: StatusFault) -> tuple[int, bytes, dict[str, str] | None]:
    headers = None
    if fault.retry_after is not None:
        seconds = fault.retry_after
        headers = {"Retry-After": str(int(seconds)) if seconds == int(seconds) else str(seconds)}
    return fault.status, _dumps(body_for_status(fault.status)), headers


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body"):
            return b"".join(chunks)


async def _answer(send: Send, status: int, payload: bytes, headers: dict[str, str] | None) -> None:
    raw: list[tuple[bytes, bytes]] = []
    if status != 204:
        raw = [(b"content-type", _JSON), (b"content-length", str(len(payload)).encode())]
    for name, value in (headers or {}).items():
        raw.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload if status != 204 else b""})


async def _drop(send: Send) -> None:
    """Promise a body, send part of it, then abort: the client sees a broken response."""
    headers = [(b"content-type", _JSON), (b"content-length", b"1024")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b'{"id": "', "more_body": True})
    raise DroppedConnection


def _loads(body: bytes) -> Any | None:
    if not body:
        return None
    try:
        return json.loads(body)
    except ValueError:
        return None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()
