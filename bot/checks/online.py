"""The online part of the checks: does OneSignal take each key, does Slack take each token?

Each OneSignal key is asked for a read it allows: an app's REST API key one notification of
its app (`view_notifications`, limit 1), the organization key its apps (`get_apps`). Slack
is asked `auth.test` for the bot token and `apps.connections.open` for the app-level token.
`pushops check --online` prints the answers; `serve` and `worker` log them once started
(`check_in_background`), one line per problem, without waiting for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Collection, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any, Final

import aiohttp
import httpx
from pydantic import SecretStr
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient
from sqlalchemy.exc import SQLAlchemyError

from bot.checks.database import StoredApp, stored_apps
from bot.checks.problems import Problem, Report
from bot.checks.settings import is_set, text_of
from bot.errors import report_unexpected
from bot.onesignal import (
    BadRequest,
    Forbidden,
    NotFound,
    OneSignalAPIError,
    OneSignalClient,
    OneSignalError,
    OneSignalTransportError,
    RetryPolicy,
    Unauthorized,
)
from bot.onesignal_clients import OneSignalClients
from bot.services import Services
from bot.settings import Settings
from bot.slack_clients import is_oauth_mode
from bot.words import plural

log = logging.getLogger(__name__)

TIMEOUT: Final = httpx.Timeout(10.0, connect=5.0)
"""Per request: an unreachable service is named within seconds."""

AT_ONCE: Final = 4
"""Keys asked at the same time."""

REFUSED_TOKEN_ERRORS: Final = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
"""Slack's answers when a token itself is wrong; anything else may be passing trouble."""

_AGAIN: Final = "run `pushops check --online` again once it answers."
_KEYS_PAGE: Final = "OneSignal: Settings > Keys & IDs"

Ask = Callable[[], Awaitable[Report]]


class _Answer(Enum):
    ACCEPTED = "accepted"
    REFUSED = "refused"  # 401/403: the key is wrong
    UNKNOWN_APP = "unknown app"  # 404/400: no such app, or a malformed id
    NO_ANSWER = "no answer"  # unreachable, 5xx, 429, unreadable


# --- OneSignal --------------------------------------------------------------------------------


async def check_onesignal(
    settings: Settings,
    apps: Iterable[StoredApp] = (),
    *,
    skip: Collection[str] = (),
    clients: OneSignalClients | None = None,
    retries: int = 0,
) -> Report:
    """Ask OneSignal about the settings' app key, the organization key and each stored app.

    `skip` names settings with a problem found already. A stored app that the settings' app
    replaces at start, or that holds the same app and key, is not asked twice. `clients`:
    the process's client factory (default: one-off clients at ONESIGNAL_API_URL). `retries`:
    how often a request that got no answer is repeated.
    """
    if "ONESIGNAL_API_URL" in skip:
        return Report()
    if clients is None:
        clients = OneSignalClients(http=None, base_url=settings.onesignal_api_url)
    onesignal = _OneSignal(clients, RetryPolicy(max_retries=retries, max_delay=2.0))
    asks: list[Ask] = []
    own = _settings_app(settings, skip)
    if own is not None:
        asks.append(_app_ask(onesignal, own[0], own[1], None))
    if is_set(settings.onesignal_org_key) and "ONESIGNAL_ORG_KEY" not in skip:
        org_key = SecretStr(text_of(settings.onesignal_org_key))
        asks.append(lambda: _ask_org_key(onesignal, org_key))
    for app in apps:
        if own is None or not (app.from_settings or (app.app_id, app.api_key) == own):
            asks.append(_app_ask(onesignal, app.app_id, app.api_key, app))
    return await _gather(asks)


def _settings_app(settings: Settings, skip: Collection[str]) -> tuple[str, SecretStr] | None:
    """ONESIGNAL_APP_ID and ONESIGNAL_API_KEY, when both are set and fit to ask about."""
    app_id, key = settings.onesignal_app_id, settings.onesignal_api_key
    if {"ONESIGNAL_APP_ID", "ONESIGNAL_API_KEY"} & set(skip) or key is None:
        return None
    return (app_id, key) if app_id and is_set(key) else None


async def _gather(asks: list[Ask]) -> Report:
    places = asyncio.Semaphore(AT_ONCE)

    async def one(ask: Ask) -> Report:
        async with places:
            return await ask()

    report = Report()
    for found in await asyncio.gather(*(one(ask) for ask in asks)):
        report.extend(found)
    return report


@dataclass(frozen=True)
class _OneSignal:
    """Where and how to ask OneSignal."""

    clients: OneSignalClients
    retries: RetryPolicy

    @property
    def base(self) -> str:
        """Where OneSignal is asked."""
        return self.clients.base_url

    def client(self, key: SecretStr, *, org: bool = False) -> OneSignalClient:
        """A client asking with `key` (as the organization key with `org`)."""
        # get_apps sends only the organization key, but the client wants a REST key all the same.
        return self.clients.client(
            key, organization_api_key=key if org else None, timeout=TIMEOUT, retries=self.retries
        )


async def _answer(
    client: OneSignalClient, call: Callable[[OneSignalClient], Awaitable[object]]
) -> tuple[_Answer, str]:
    """What OneSignal said to `call`, and the detail a message shows (a status, an error)."""
    try:
        async with client:
            await call(client)
    except (Unauthorized, Forbidden) as e:
        return _Answer.REFUSED, f"HTTP {e.status}"
    except (NotFound, BadRequest) as e:
        return _Answer.UNKNOWN_APP, f"HTTP {e.status}"
    except OneSignalAPIError as e:
        return _Answer.NO_ANSWER, f"it answered HTTP {e.status}"
    except OneSignalTransportError as e:
        return _Answer.NO_ANSWER, f"no answer: {type(e).__name__}"
    except OneSignalError as e:
        return _Answer.NO_ANSWER, type(e).__name__
    return _Answer.ACCEPTED, ""


def _app_ask(onesignal: _OneSignal, app_id: str, key: SecretStr, stored: StoredApp | None) -> Ask:
    async def ask() -> Report:
        client = onesignal.client(key)
        answer, detail = await _answer(client, lambda c: c.get_notifications(app_id, limit=1))
        return _app_report(answer, detail, base=onesignal.base, app_id=app_id, stored=stored)

    return ask


def _app_report(
    answer: _Answer, detail: str, *, base: str, app_id: str, stored: StoredApp | None
) -> Report:
    name = "ONESIGNAL_API_KEY" if stored is None else stored.label
    if answer is _Answer.ACCEPTED:
        whose = "ONESIGNAL_API_KEY" if stored is None else f"the key of {stored.label}"
        return Report(fine=[f"OneSignal accepts {whose} for app {app_id}."])
    if answer is _Answer.NO_ANSWER:
        unchecked = Problem(name, f"OneSignal could not be asked at {base} ({detail}).", _AGAIN)
        return Report(unchecked=[unchecked])
    if answer is _Answer.REFUSED:
        refused = f"OneSignal refused its key for app {app_id} ({detail})."
        return Report(problems=[Problem(name, refused, _new_key_fix(app_id, stored))])
    unknown = f"OneSignal knows no app {app_id} ({detail})."
    if stored is None:
        return Report(
            problems=[Problem("ONESIGNAL_APP_ID", unknown, f"copy it from {_KEYS_PAGE}.")]
        )
    fix = (
        "save the right App ID with /push setup, or remove the app with `pushops apps remove "
        f"--team {stored.team_id} --name {stored.name}`."
    )
    return Report(problems=[Problem(name, unknown, fix)])


def _new_key_fix(app_id: str, stored: StoredApp | None) -> str:
    if stored is None:
        return f"copy the REST API key of app {app_id} from {_KEYS_PAGE}."
    return (
        "save the app's current key with /push setup, or with `pushops apps add "
        f"--team {stored.team_id} --name {stored.name} --app-id {app_id} --replace`."
    )


async def _ask_org_key(onesignal: _OneSignal, key: SecretStr) -> Report:
    answer, detail = await _answer(onesignal.client(key, org=True), _get_apps)
    base = onesignal.base
    if answer is _Answer.ACCEPTED:
        return Report(fine=["OneSignal accepts ONESIGNAL_ORG_KEY."])
    if answer is _Answer.REFUSED:
        problem = Problem(
            "ONESIGNAL_ORG_KEY",
            f"OneSignal refused it ({detail}).",
            "copy the Organization API key from OneSignal (Organizations > Keys & IDs), or "
            "unset ONESIGNAL_ORG_KEY.",
        )
        return Report(problems=[problem])
    unchecked = Problem(
        "ONESIGNAL_ORG_KEY", f"OneSignal could not be asked at {base} ({detail}).", _AGAIN
    )
    return Report(unchecked=[unchecked])


async def _get_apps(client: OneSignalClient) -> object:
    return await client.get_apps()


# --- Slack ------------------------------------------------------------------------------------


async def check_slack(
    settings: Settings, *, skip: Collection[str] = (), app_token: bool = True
) -> Report:
    """Ask Slack whether it takes the bot token (one workspace) and the app-level token.

    `app_token=False` leaves the app-level token out (only Socket Mode uses it).
    """
    if "SLACK_API_URL" in skip:
        return Report()
    client = AsyncWebClient(base_url=settings.slack_api_url, timeout=10)
    asks: list[tuple[str, Callable[[], Awaitable[Any]]]] = []
    bot_token, socket_token = text_of(settings.slack_bot_token), text_of(settings.slack_app_token)
    if bot_token and not is_oauth_mode(settings):
        asks.append(("SLACK_BOT_TOKEN", lambda: client.auth_test(token=bot_token)))
    if socket_token and app_token:
        asks.append(
            ("SLACK_APP_TOKEN", lambda: client.apps_connections_open(app_token=socket_token))
        )
    report = Report()
    for name, call in asks:
        if name not in skip:
            report.extend(await _ask_slack(name, call))
    return report


async def _ask_slack(name: str, call: Callable[[], Awaitable[Any]]) -> Report:
    try:
        response = await call()
    except SlackApiError as e:
        error = str(e.response.get("error", ""))
        if error not in REFUSED_TOKEN_ERRORS:
            return Report(unchecked=[Problem(name, f"Slack did not check it ({error}).", _AGAIN)])
        problem = Problem(
            name,
            f"Slack refused it ({error}).",
            "copy the current token from the app's settings page on api.slack.com and set it "
            "again.",
        )
        return Report(problems=[problem])
    except (aiohttp.ClientError, TimeoutError) as e:
        reason = f"Slack could not be reached ({type(e).__name__})."
        return Report(unchecked=[Problem(name, reason, _AGAIN)])
    team = response.get("team_id") if name == "SLACK_BOT_TOKEN" else None
    return Report(fine=[f"Slack accepts {name}" + (f" (workspace {team})." if team else ".")])


# --- in the background of serve and worker ----------------------------------------------------


def check_in_background(settings: Settings, services: Services, *, slack: bool = False) -> None:
    """Once `services` start, ask OneSignal (with `slack`, Slack's bot token too); log it.

    Start is not delayed: the check is a task of its own, cancelled if still running when the
    services stop.
    """
    task: asyncio.Task[Report] | None = None

    async def run() -> Report:
        try:
            return await log_online_check(settings, services, slack=slack)
        except Exception as e:  # noqa: BLE001 - the top of a task nobody awaits until shutdown
            await report_unexpected(
                e, kind="settings check", respond=None, metrics=services.metrics
            )
            return Report()

    async def start() -> None:
        nonlocal task
        task = asyncio.create_task(run())

    async def stop() -> None:
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    services.on_startup.append(start)
    services.on_shutdown.append(stop)


async def log_online_check(settings: Settings, services: Services, *, slack: bool) -> Report:
    """Ask about every key; log one line per problem, or one line when all are accepted."""
    report = Report()
    apps: list[StoredApp] = []
    try:
        apps, found = await stored_apps(services.database, services.keyring, settings)
    except SQLAlchemyError as e:
        reason = f"the database could not be read ({type(e).__name__})."
        report.unchecked.append(Problem("stored OneSignal apps", reason, _AGAIN))
    else:
        report.problems.extend(found.problems)
    report.extend(await check_onesignal(settings, apps, clients=services.onesignal, retries=1))
    if slack:
        report.extend(await check_slack(settings, app_token=False))
    for problem in report.problems:
        log.warning("settings check: %s", problem)
    for unchecked in report.unchecked:
        log.warning("settings check: could not check %s", unchecked)
    if report.fine and not report.problems and not report.unchecked:
        accepted = plural(len(report.fine), "key or token", "keys and tokens")
        log.info("settings check: accepted %s", accepted)
    return report
