"""The long-lived things Slack handlers use, built once per process and handed down.

`Services` is the one object `build_app` and every command module receive. It holds the
settings, the database and key ring, the workspace service, the three parts of the send
engine (`sends`, `deliverer`, `recall`) and the scheduler, the OneSignal clients on the
process's pool, the notifier relay, Slack's HTTP session and its directory of people,
admission control, the metrics and the tracked background tasks (work that goes on after
Slack was acknowledged), plus start/stop hooks that `serve`'s lifespan and `worker` run.
`build_services` makes all of it, for `serve`, `worker` and the tests alike.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Protocol, TypeVar

import httpx
from slack_bolt.context.respond.async_respond import AsyncRespond
from sqlalchemy.exc import SQLAlchemyError

from bot.admission import Admission
from bot.checkpoints import CheckpointPublisher, FileSink
from bot.delivery import Deliverer, DeliveryPolicy, Recall, Sends
from bot.digest import DigestPolicy
from bot.directory import SlackDirectory
from bot.errors import report_unexpected
from bot.home import HomeBoard
from bot.metrics import Metrics
from bot.notifier import NotifierRelay
from bot.onesignal import PooledHttpClient, make_http_client
from bot.onesignal_clients import OneSignalClients
from bot.outbox import DrainPolicy, OutboxDrainer
from bot.outcome_log import OutcomeLog
from bot.scheduling import Scheduler
from bot.series import SeriesService
from bot.settings import Settings
from bot.slack_http import SlackHttp
from bot.slack_limits import SLACK_LIMITS, SlackLimits
from bot.throttle import Throttle
from bot.timers import Timers
from bot.workspaces import Workspaces
from storage.audit import AuditKeys
from storage.crypto import KEY_FILE_NAME, KeyRing, key_file_warning
from storage.db import Database
from storage.models import utcnow
from storage.rotation import bind_app_keys

T = TypeVar("T")

log = logging.getLogger(__name__)

Hook = Callable[[], Awaitable[None]]
"""An async callable run at start or at shutdown."""

ReadinessCheck = Callable[[], Awaitable[None]]
"""Returns when the process can serve; raises (anything) when it cannot (`/readyz` -> 503)."""

ONESIGNAL_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
"""The timeouts of every OneSignal request: each app's client on the pool uses the pool's
(`OneSignalClient(timeout=None)`), and only a tighter one is ever asked for (the credential
check). A delivery attempt is bounded by them times the client's tries (`1 +
DeliveryPolicy.client_retries`), plus the short waits between tries: about 45 s by default
when OneSignal does not answer."""

DENIAL_WINDOW: Final = 60.0
"""Seconds between two audit events of one person's refusals of one action (`denials`)."""


def _no_wake() -> None:
    """A scheduler that is not ours (a test's) has no sweep to ask for."""


def _denials() -> Throttle[tuple[str, ...]]:
    return Throttle(DENIAL_WINDOW)


class Lifecycle(Protocol):
    """Something started with the server and stopped with it (the scheduler)."""

    async def start(self) -> None:
        """Begin work; returns once started."""

    async def stop(self) -> None:
        """Stop work; returns once stopped."""


class BackgroundTasks:
    """Tasks that continue after Slack was acknowledged.

    The event loop keeps only weak references to tasks, so one nobody holds may vanish
    mid-way; this set holds them until they finish, and `drain` lets shutdown wait for them.
    """

    def __init__(self) -> None:
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Start `coro` as a task held until it ends."""
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    async def drain(self, grace: float) -> None:
        """Wait up to `grace` s for the running tasks, then cancel what is left."""
        pending = set(self._tasks)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=grace)
        for task in late:
            task.cancel()
        if late:
            await asyncio.wait(late)


@dataclass(kw_only=True, eq=False)
class Services:
    """Everything a handler needs besides the Slack request itself.

    Attributes:
        settings: the process settings.
        onesignal_http: the one pooled `httpx.AsyncClient` for OneSignal (keys go per request).
        onesignal: builds every OneSignal client, on `onesignal_http` at ONESIGNAL_API_URL.
        database: engine and session factory.
        keyring: the keys that seal secrets at rest (OneSignal keys, Slack tokens in OAuth
            mode).
        sends: the send state machine (`bot.delivery.Sends`): create, confirm, approve.
        deliverer: takes sends to OneSignal (`bot.delivery.Deliverer`): `dispatch` after the
            ack.
        recall: cancels sends and reports on them (`bot.delivery.Recall`).
        scheduler: started after the start hooks, stopped before the shutdown hooks.
        workspaces: the workspace service (bot.workspaces), made from the parts above.
        series: the series service (bot.series: recurring sends), made from the parts above.
        home: what the Home tabs show, and which to publish again (bot.home).
        readiness: what `/readyz` awaits; defaults to checking that the database takes a
            write (`Database.ping`).
        checkpoints: publishes the audit checkpoints (bot.checkpoints); None without a
            database opened with audit keys.
        notifier: where outcomes of sends go; the Slack side plugs its notifier in with
            `services.notifier.target = ...` (until then they are only logged).
        outbox: the drainer of the Slack outbox, once the Slack side plugged it in.
        slack_limits: the Slack rate limits the outbox is paced by (`bot.slack_limits`).
        outbox_policy: the drainer's lease, poll interval and concurrency.
        digest_policy: when news piled up in the outbox becomes a digest (`bot.digest`).
        tasks: tracked background work, drained at shutdown.
        metrics: the Prometheus counters served on `/metrics`.
        slack_http: the one aiohttp session for calls to Slack (bot.slack_http).
        on_startup / on_shutdown: hooks run in order at start, in reverse order at shutdown.
        admission: acks before heavy work, and how many heavy jobs run at once
            (bot.admission).
        denials: how often a person's refusals are audited (`commands.denials`).
        directory: what Slack said about people and user groups, kept briefly
            (`commands.access`).
        clock: the wall clock (UTC) the door stamps the Slack requests it remembers with,
            and prunes them by (`bot.door.SeenRequests`), and the series resume from; a test
            turns it to show a key outliving Slack's signature window, then going (and
            `build_services` gives the same clock to the deliverer and the scheduler).
    """

    settings: Settings
    onesignal_http: httpx.AsyncClient
    database: Database
    keyring: KeyRing
    sends: Sends
    deliverer: Deliverer
    recall: Recall
    scheduler: Lifecycle
    readiness: ReadinessCheck | None = None
    checkpoints: CheckpointPublisher | None = None
    notifier: NotifierRelay = field(default_factory=NotifierRelay)
    outbox: OutboxDrainer | None = None
    slack_limits: SlackLimits = SLACK_LIMITS
    outbox_policy: DrainPolicy = field(default_factory=DrainPolicy)
    digest_policy: DigestPolicy = field(default_factory=DigestPolicy)
    tasks: BackgroundTasks = field(default_factory=BackgroundTasks)
    metrics: Metrics = field(default_factory=Metrics)
    slack_http: SlackHttp = field(default_factory=SlackHttp)
    on_startup: list[Hook] = field(default_factory=list)
    on_shutdown: list[Hook] = field(default_factory=list)
    drain_timeout: float = 10.0
    admission: Admission = field(default_factory=Admission)
    denials: Throttle[tuple[str, ...]] = field(default_factory=_denials)
    directory: SlackDirectory = field(default_factory=SlackDirectory)
    clock: Callable[[], datetime] = utcnow
    onesignal: OneSignalClients = field(init=False)
    workspaces: Workspaces = field(init=False)
    series: SeriesService = field(init=False)
    home: HomeBoard = field(init=False)

    def __post_init__(self) -> None:
        scheduler = self.scheduler
        self.series = SeriesService(
            database=self.database,
            wake=scheduler.sweep_soon if isinstance(scheduler, Scheduler) else _no_wake,
            clock=self.clock,
        )
        self.onesignal = OneSignalClients(self.onesignal_http, self.settings.onesignal_api_url)
        self.workspaces = Workspaces(
            database=self.database, keyring=self.keyring, clients=self.onesignal, sends=self.sends
        )
        self.home = HomeBoard(self.database)

    def after_ack(
        self,
        coro: Coroutine[Any, Any, None],
        *,
        respond: AsyncRespond | None,
        kind: str,
        acks_first: bool = False,
    ) -> asyncio.Task[None]:
        """Run `coro` after Slack was acknowledged, as a tracked task.

        Its unexpected errors are reported like any other (bot.errors): logged with a
        reference and an apology through `respond`. (Awaiting slow work inside a Bolt
        listener instead would let a failure right after the ack undo that ack in Bolt's
        runner, and Slack would see a timeout.) With `acks_first` it starts once the
        requests awaiting their ack went first (`Admission.acks_first`); the emergency brake
        never asks for that.
        """
        work = self._reporting(coro, respond=respond, kind=kind, acks_first=acks_first)
        return self.tasks.spawn(work)

    async def _reporting(
        self,
        coro: Coroutine[Any, Any, None],
        *,
        respond: AsyncRespond | None,
        kind: str,
        acks_first: bool,
    ) -> None:
        if acks_first:
            try:
                await self.admission.acks_first()
            except asyncio.CancelledError:  # shutdown before it began: it never will
                coro.close()
                raise
        try:
            await coro
        except Exception as e:  # noqa: BLE001 - this is the top of work after the ack
            await report_unexpected(e, kind=kind, respond=respond, metrics=self.metrics)

    async def render_metrics(self) -> bytes:
        """The Prometheus text of `/metrics`, with the counts read from the database."""
        await self.metrics.read_stored(self.database)
        return self.metrics.render()

    async def check_ready(self) -> None:
        """Raise when the process cannot serve (see `readiness`)."""
        if self.readiness is not None:
            await self.readiness()
        else:
            await self.database.ping()

    async def start(self) -> None:
        """Run the start hooks, then start the scheduler."""
        for hook in self.on_startup:
            await hook()
        await self.scheduler.start()

    async def aclose(self) -> None:
        """Stop the scheduler, finish background work, run the shutdown hooks (reversed)."""
        await self.scheduler.stop()
        await self.tasks.drain(self.drain_timeout)
        for hook in reversed(self.on_shutdown):
            await hook()
        await self.slack_http.aclose()


def build_services(
    settings: Settings,
    *,
    database: Database,
    keyring: KeyRing,
    policy: DeliveryPolicy | None = None,
    sweep_interval: float = 15.0,
    worker_id: str | None = None,
    readiness: ReadinessCheck | None = None,
    checkpoint_actor: str | None = None,
    clock: Callable[[], datetime] = utcnow,
) -> Services:
    """The services of a process (`serve`, `worker`, and every test's app).

    A pooled OneSignal client counting into the metrics, `database` (disposed at shutdown)
    and `keyring`; the send engine's three parts and the scheduler given its deliverer (it
    starts and stops with the services; the deliverer's queued results are written at
    shutdown), the workspace service, and with a database opened with audit keys the audit
    checkpoints (signed as `checkpoint_actor`, default the deliverer's worker). At start
    they warn when the key ring comes from the key file in the data directory, and bind
    OneSignal keys written by older versions to their app's row. Tests pass a short
    `policy` and `sweep_interval`, and a turned `clock` to show a series across months.

    Must run inside the event loop that will use them (the HTTP pool binds to it).
    """
    metrics = Metrics()
    http = onesignal_pool(metrics)
    notifier = NotifierRelay()
    admission = Admission()
    deliverer = Deliverer(
        database=database,
        keyring=keyring,
        clients=OneSignalClients(http, settings.onesignal_api_url),
        settings=settings,
        timers=Timers(),
        notifier=notifier,
        outcomes=OutcomeLog(metrics),
        policy=policy,
        worker_id=worker_id,
        # A burst's deliveries let serve's acks go first (a worker has none to wait for).
        yield_to=admission.acks_first,
        clock=clock,
    )
    scheduler = Scheduler(
        database=database,
        deliverer=deliverer,
        settings=settings,
        sweep_interval=sweep_interval,
        clock=clock,
    )
    services = Services(
        settings=settings,
        onesignal_http=http,
        database=database,
        keyring=keyring,
        sends=Sends(deliverer),
        deliverer=deliverer,
        recall=Recall(deliverer),
        scheduler=scheduler,
        readiness=readiness,
        notifier=notifier,
        metrics=metrics,
        admission=admission,
        clock=clock,
    )
    services.on_shutdown.append(http.aclose)
    services.on_shutdown.append(database.dispose)
    if not _secret_key_set(settings):
        services.on_startup.append(functools.partial(_warn_of_key_file, settings))
    services.on_startup.append(functools.partial(_bind_app_keys, database, keyring))
    services.on_shutdown.append(deliverer.aclose)
    if database.audit_keys is not None:
        _attach_checkpoints(services, database.audit_keys, checkpoint_actor)
    return services


def _attach_checkpoints(services: Services, keys: AuditKeys, actor: str | None) -> None:
    """Give `services` its audit `CheckpointPublisher`.

    It anchors unkeyed chains at start and publishes every PUSHOPS_AUDIT_CHECKPOINT_INTERVAL
    seconds to PUSHOPS_AUDIT_CHECKPOINTS when that is set (the Slack side adds the log
    channel).
    """
    settings = services.settings
    publisher = CheckpointPublisher(
        database=services.database,
        keys=keys,
        actor=actor or f"worker:{services.deliverer.worker_id}",
        interval=settings.audit_checkpoint_interval,
    )
    if settings.audit_checkpoints:
        publisher.add_sink(FileSink(settings.audit_checkpoints))
    services.checkpoints = publisher
    services.on_startup.append(publisher.start)
    services.on_shutdown.append(publisher.stop)


def _secret_key_set(settings: Settings) -> bool:
    key = settings.secret_key
    return key is not None and bool(key.get_secret_value().strip())


async def _warn_of_key_file(settings: Settings) -> None:
    """Every start without PUSHOPS_SECRET_KEY: the key lies with the data it protects."""
    log.warning("%s", key_file_warning(settings.data_dir / KEY_FILE_NAME))


async def _bind_app_keys(database: Database, keyring: KeyRing) -> None:
    """Bind unbound OneSignal keys to their rows (`storage.rotation.bind_app_keys`)."""
    try:
        report = await bind_app_keys(session_factory=database.sessions, keyring=keyring)
    except SQLAlchemyError as error:  # the database hiccups: the next start tries again
        log.warning("could not bind OneSignal keys to their apps: %s", type(error).__name__)
        return
    if report.reencrypted:
        log.info("bound %d OneSignal key(s) to their app", report.reencrypted)
    for failure in report.failures:
        log.warning("could not bind a OneSignal key to its app: %s", failure)


def onesignal_pool(metrics: Metrics) -> PooledHttpClient:
    """The process's pooled OneSignal client, counting each request in `metrics`."""
    return make_http_client(timeout=ONESIGNAL_TIMEOUT, observer=metrics.onesignal_exchange)
