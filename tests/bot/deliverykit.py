"""What the delivery and scheduling tests share: the send engine's three parts and a scheduler
on a real database, talking to the fake OneSignal over loopback, with a recording notifier."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bot.delivery import Audience, Deliverer, DeliveryPolicy, Recall, SendContent, Sends
from bot.onesignal import make_http_client
from bot.onesignal_clients import OneSignalClients
from bot.scheduling import Scheduler
from bot.settings import Settings
from bot.timers import DEFAULT_HORIZON, Timers
from storage import queries
from storage.crypto import KeyRing
from storage.db import Database
from storage.models import AuditEvent, OneSignalApp, Send, SendState, utcnow
from tests.bot.notices import RecordingNotifier
from tests.fakes.onesignal import FakeOneSignal, RecordedRequest
from tests.plugins.database import DEFAULT_TEAM, StorageFactory, register_secret

FAST = DeliveryPolicy(
    backoff=0.2,
    max_backoff=1.0,
    lease=2.0,
    client_retries=3,
    client_retry_delay=0.01,
    client_retry_max_delay=5.0,
)
"""Short waits for tests; the client still honours a Retry-After up to 5 s."""

SEGMENT = "Subscribed Users"  # one of the fake's seeded segments (1,000 reachable)


def settings_for(fake: FakeOneSignal, **overrides: Any) -> Settings:
    """Settings pointing at the fake; grace and TTL may be overridden by field name."""
    values: dict[str, Any] = {"onesignal_api_url": fake.url, **overrides}
    return Settings(_env_file=None, **values)


@dataclass
class Kit:
    """The send engine (and its scheduler) against the fake OneSignal and a real database."""

    database: Database
    fake: FakeOneSignal
    app: OneSignalApp
    sends: Sends
    deliverer: Deliverer
    recall: Recall
    scheduler: Scheduler
    notifier: RecordingNotifier
    started: bool = False
    extra: list[Any] = field(default_factory=list)

    async def create(
        self,
        message: str = "Hello",
        *,
        segments: Collection[str] = (SEGMENT,),
        external_ids: Collection[str] = (),
        due_in: float | None = None,
        confirm: bool = True,
        approvals: int = 0,
        team_id: str = DEFAULT_TEAM,
        requester_id: str = "U0ALICE",
        claim: bool = False,
    ) -> Send:
        """A send made through `Sends.create` (not dispatched)."""
        audience = (
            Audience(external_ids=tuple(external_ids))
            if external_ids
            else Audience(segments=tuple(segments))
        )
        return await self.sends.create(
            team_id=team_id,
            requester_id=requester_id,
            app_name=None,
            content=SendContent(message=message),
            audience=audience,
            due_at=None if due_in is None else utcnow() + timedelta(seconds=due_in),
            timezone="Europe/Berlin",
            confirm=confirm,
            approvals_required=approvals,
            claim=claim,
        )

    async def start(self) -> None:
        """Start the scheduler (stopped at the end of the test)."""
        await self.scheduler.start()
        self.started = True

    def posted(self) -> list[RecordedRequest]:
        """Every POST /notifications the fake received (faulted ones too)."""
        return self.fake.requests_to("POST", "/notifications")

    def created(self) -> list[dict[str, Any]]:
        """The notifications the fake holds (each one was really created)."""
        return list(self.fake.notifications.values())

    async def row(self, send: Send | uuid.UUID) -> Send:
        """The send as stored now."""
        send_id = send if isinstance(send, uuid.UUID) else send.id
        async with self.database.sessions() as session:
            stored = await session.get(Send, send_id, populate_existing=True)
        assert stored is not None
        return stored

    async def wait_state(
        self, send: Send | uuid.UUID, *states: SendState, seconds: float = 15.0
    ) -> Send:
        """Poll until the send is in one of `states`."""
        deadline = time.monotonic() + seconds
        while True:
            row = await self.row(send)
            if row.state in states:
                return row
            if time.monotonic() > deadline:
                raise AssertionError(f"send {row.short_id} is {row.state}, not {states}")
            await asyncio.sleep(0.05)

    async def actions(self, send: Send) -> list[str]:
        """The audit actions about `send`, oldest first."""
        async with self.database.sessions() as session:
            events = await session.scalars(
                sa.select(AuditEvent)
                .where(AuditEvent.target == f"send {send.short_id}")
                .order_by(AuditEvent.seq)
            )
            return [event.action for event in events]


async def seeded_app(factory: StorageFactory, fake: FakeOneSignal) -> OneSignalApp:
    """Our app row for the fake's seeded app (its key registered as a secret)."""
    return await factory.app(
        onesignal_app_id=fake.app.id, api_key=register_secret(fake.app.rest_api_key)
    )


@contextlib.asynccontextmanager
async def kit(
    database: Database,
    keyring: KeyRing,
    fake: FakeOneSignal,
    app: OneSignalApp,
    *,
    policy: DeliveryPolicy = FAST,
    sweep_interval: float = 0.5,
    worker_id: str | None = None,
    http_timeout: float | None = None,
    horizon: timedelta = DEFAULT_HORIZON,
    yield_to: Callable[[], Awaitable[None]] | None = None,
    **settings: Any,
) -> AsyncIterator[Kit]:
    """A `Kit`; the scheduler is stopped and the pool closed at the end.

    `http_timeout`: the pool's timeout (each app's client waits as long), else its default.
    `horizon`: how far ahead the timers are armed.
    `yield_to`: the deliverer's (what its deliveries let go first).
    """
    http = make_http_client() if http_timeout is None else make_http_client(timeout=http_timeout)
    notifier = RecordingNotifier()
    config = settings_for(fake, **settings)
    deliverer = Deliverer(
        database=database,
        keyring=keyring,
        clients=OneSignalClients(http, config.onesignal_api_url),
        settings=config,
        timers=Timers(horizon=horizon),
        notifier=notifier,
        policy=policy,
        worker_id=worker_id,
        yield_to=yield_to,
    )
    scheduler = Scheduler(
        database=database,
        deliverer=deliverer,
        settings=config,
        sweep_interval=sweep_interval,
        drain_timeout=5.0,
    )
    ready = Kit(
        database=database,
        fake=fake,
        app=app,
        sends=Sends(deliverer),
        deliverer=deliverer,
        recall=Recall(deliverer),
        scheduler=scheduler,
        notifier=notifier,
    )
    try:
        yield ready
    finally:
        await scheduler.stop()
        await deliverer.aclose()
        await http.aclose()


async def insert_due(
    database: Database, app: OneSignalApp, count: int, due_at: datetime, *, prefix: str = ""
) -> list[uuid.UUID]:
    """`count` scheduled sends due at `due_at`, in one statement (load tests)."""
    ids = [uuid.uuid4() for _ in range(count)]
    rows: list[dict[str, Any]] = [
        {
            "id": send_id,
            "short_id": f"{prefix}{i:0{6 - len(prefix)}d}",
            "team_id": app.team_id,
            "app_ref": app.id,
            "app_name": app.name,
            "requester_id": "U0ALICE",
            "content": {"message": f"burst {i}"},
            "audience": {"segments": [SEGMENT]},
            "state": SendState.SCHEDULED,
            "due_at": due_at,
        }
        for i, send_id in enumerate(ids)
    ]
    async with database.sessions.begin() as session:
        await session.execute(sa.insert(Send), rows)
    return ids


async def audit_chain_ok(database: Database) -> bool:
    """Whether every workspace's audit chain verifies."""
    async with database.sessions() as session:
        return (await queries.verify_audit_chain(session=session)).ok
