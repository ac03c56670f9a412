"""One redacted JSON document of how PushOps runs, for an admin to hand over when something
goes wrong (as Home Assistant's integration diagnostics): versions, the database revision,
the mode, the settings (secrets replaced by `**REDACTED**`), a workspace's apps (masked
keys, the last OneSignal error), roles and policy, the scheduler's state, the latest failed
sends with their reasons, and what `pushops check --online` finds.

`/push diagnostics` (one workspace) and `pushops diagnostics` (one or every workspace) build
it here. Nothing secret goes in: secrets are left out where they are read, and every string
of the finished document is passed through the log redactor with the process's own secrets.
"""

from __future__ import annotations

import importlib.metadata
import json
import platform
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy
from pydantic import SecretStr
from sqlalchemy.engine import make_url

from bot.checks.database import check_database, stored_apps
from bot.checks.online import check_onesignal, check_slack
from bot.checks.problems import Problem, Report
from bot.checks.settings import SERVE_CHECKS, find_problems
from bot.logs import redact, secrets_of
from bot.policy import ApprovalPolicy, PolicyError, Role
from bot.services import Services
from bot.settings import Settings, env_name
from bot.slack_clients import is_oauth_mode
from bot.workspaces import Workspaces
from storage.audit import append_audit
from storage.crypto import CryptoError, KeyRing
from storage.db import Database
from storage.diagnostics import last_app_errors, recent_failures, scheduler_state, server_version
from storage.migrations import current_revision, head_revision
from storage.models import OneSignalApp, Send, utcnow
from storage.workspaces import decrypt_app_key, ensure_workspace

REDACTED: Final = "**REDACTED**"
FAILURES: Final = 20
"""Failed sends the document lists."""
MASK: Final = "••••"


async def collect(
    *,
    settings: Settings,
    database: Database,
    keyring: KeyRing | None,
    workspaces: Workspaces,
    team_ids: Iterable[str],
    scope: str | None,
    online: bool = True,
) -> dict[str, Any]:
    """The document for the workspaces `team_ids`; `scope` is the one workspace whose sends
    the scheduler part counts (None: every workspace's, for the operator only)."""
    document: dict[str, Any] = {
        "generated_at": utcnow().isoformat(),
        "versions": _versions(),
        "database": await _database(settings, database),
        "mode": _mode(settings),
        "settings": redacted_settings(settings),
        "workspaces": [await _workspace(workspaces, database, keyring, team) for team in team_ids],
        "scheduler": await _scheduler(database, scope),
        "recent_failures": await _failures(database, scope),
        "check": await _check(settings, database, keyring, scope) if online else None,
    }
    scrubbed: dict[str, Any] = scrub(document, secrets_of(settings) + _url_password(settings))
    return scrubbed


# --- the parts --------------------------------------------------------------------------------


def _versions() -> dict[str, str]:
    def version(package: str) -> str:
        try:
            return importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "pushops": version("pushops"),
        "python": platform.python_version(),
        "slack_bolt": version("slack-bolt"),
        "slack_sdk": version("slack-sdk"),
        "sqlalchemy": sqlalchemy.__version__,
        "httpx": version("httpx"),
    }


async def _database(settings: Settings, database: Database) -> dict[str, Any]:
    async with database.sessions() as session:
        server = await server_version(session=session)
    current = await current_revision(database.engine)
    return {
        "url": redacted_url(settings.resolved_database_url),
        "server": server,
        "revision": current,
        "head": head_revision(),
        "up_to_date": current == head_revision(),
    }


def _mode(settings: Settings) -> dict[str, Any]:
    socket = bool(settings.slack_app_token and settings.slack_app_token.get_secret_value())
    return {
        "transport": "socket_mode" if socket else "http",
        "oauth": is_oauth_mode(settings),
        "workspaces": "many (OAuth installs)" if is_oauth_mode(settings) else "one",
    }


def redacted_settings(settings: Settings) -> dict[str, Any]:
    """Every setting by its variable's name; a secret that is set as `**REDACTED**`."""
    values: dict[str, Any] = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            value = REDACTED if value.get_secret_value() else ""
        elif name == "database_url" and value:
            value = redacted_url(value)
        values[env_name(name)] = (
            value
            if isinstance(value, str | int | float | bool)
            else (None if value is None else str(value))
        )
    return values


def redacted_url(url: str) -> str:
    """A database URL with its password (if any) as `**REDACTED**`."""
    parsed = make_url(url)
    if parsed.password is None:
        return parsed.render_as_string(hide_password=False)
    # SQLAlchemy would percent-encode the marker's asterisks as a password's characters.
    hidden = parsed.render_as_string(hide_password=True)
    return hidden.replace(":***@", f":{REDACTED}@", 1)


def _url_password(settings: Settings) -> list[str]:
    password = make_url(settings.resolved_database_url).password
    return [str(password)] if password else []


async def _workspace(
    workspaces: Workspaces, database: Database, keyring: KeyRing | None, team_id: str
) -> dict[str, Any]:
    snapshot = await workspaces.snapshot(team_id)
    workspace, apps, members = snapshot.workspace, snapshot.apps, snapshot.members
    async with database.sessions() as session:
        errors = await last_app_errors(session=session, team_id=team_id)
    if workspace is None:
        return {"team_id": team_id, "known": False}
    try:
        policy: Any = ApprovalPolicy.from_settings(workspace.settings).to_settings()
    except PolicyError as error:
        policy = {"unreadable": str(error)}
    roles = {role.value: [m.subject_id for m in members if m.role == role] for role in Role}
    return {
        "team_id": team_id,
        "name": workspace.name,
        "enterprise_id": workspace.enterprise_id,
        "apps": [_app(app, keyring, errors.get(app.name)) for app in apps],
        "roles": roles,
        "policy": policy,
        "log_channel": workspace.log_channel_id,
    }


def _app(app: OneSignalApp, keyring: KeyRing | None, last_error: str | None) -> dict[str, Any]:
    return {
        "name": app.name,
        "onesignal_app_id": app.onesignal_app_id,
        "default": app.is_default,
        "key": _masked(app, keyring),
        "added_by": app.added_by,
        "last_onesignal_error": last_error,
    }


def _masked(app: OneSignalApp, keyring: KeyRing | None) -> str:
    if keyring is None:
        return "unreadable (no key ring)"
    try:
        plain = decrypt_app_key(app, keyring=keyring).get_secret_value()
    except CryptoError as error:
        return f"unreadable ({error})"
    return MASK + plain[-4:] if len(plain) >= 16 else MASK


async def _scheduler(database: Database, team_id: str | None) -> dict[str, Any]:
    async with database.sessions() as session:
        state = await scheduler_state(session=session, team_id=team_id)
    now = utcnow()
    return {
        "sends_by_state": state.counts,
        "scheduled": state.counts.get("scheduled", 0),
        "sending": state.counts.get("sending", 0),
        "oldest_due": _iso(state.oldest_due),
        "oldest_due_late_seconds": (
            max(0.0, (now - _aware(state.oldest_due)).total_seconds()) if state.oldest_due else None
        ),
        "leases": [
            {"worker": lease.worker, "sends": lease.sends, "lease_until": _iso(lease.lease_until)}
            for lease in state.leases
        ],
    }


async def _failures(database: Database, team_id: str | None) -> list[dict[str, Any]]:
    async with database.sessions() as session:
        sends = await recent_failures(session=session, team_id=team_id, limit=FAILURES)
    return [_failure(send) for send in sends]


def _failure(send: Send) -> dict[str, Any]:
    return {
        "send": send.short_id,
        "team_id": send.team_id,
        "state": str(send.state),
        "app": send.app_name,
        "requester": send.requester_id,
        "due_at": _iso(send.due_at),
        "finished_at": _iso(send.finished_at),
        "attempts": send.attempts,
        "reason": send.last_error,
    }


async def _check(
    settings: Settings, database: Database, keyring: KeyRing | None, team_id: str | None
) -> dict[str, Any]:
    """What `pushops check --online` finds; with `team_id`, of that workspace's apps only."""
    problems = find_problems(settings, SERVE_CHECKS)
    skip = {p.setting for p in problems}
    report = Report(problems=list(problems))
    report.extend((await check_database(settings, keys=False)).report)
    apps, found = await stored_apps(database, keyring, settings)
    report.extend(Report(problems=[p for p in found.problems if _of(p, team_id)]))
    apps = [app for app in apps if team_id is None or app.team_id == team_id]
    report.extend(await check_slack(settings, skip=skip))
    report.extend(await check_onesignal(settings, apps, skip=skip))
    return {
        "problems": [str(p) for p in report.problems],
        "unchecked": [str(p) for p in report.unchecked],
        "fine": report.fine,
    }


def _of(problem: Problem, team_id: str | None) -> bool:
    """Whether a stored app's problem belongs to `team_id` (every one when None)."""
    return team_id is None or problem.setting.endswith(f" of workspace {team_id}")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else _aware(value).isoformat()


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def scrub(value: Any, secrets: list[str]) -> Any:
    """`value` with every string passed through the log redactor (and `secrets` replaced)."""
    if isinstance(value, str):
        return redact(value, secrets)
    if isinstance(value, dict):
        return {key: scrub(item, secrets) for key, item in value.items()}
    if isinstance(value, list):
        return [scrub(item, secrets) for item in value]
    return value


async def for_workspace(services: Services, *, team_id: str, actor: str) -> str:
    """The document of one workspace as JSON text (`/push diagnostics`), its making audited
    first: an admin taking the workspace's state away is on record even if the upload fails."""
    async with services.database.sessions.begin() as session:
        # A workspace nothing was saved for yet has no row (and so no audit chain) until now.
        await ensure_workspace(session=session, team_id=team_id)
        await append_audit(
            session=session,
            team_id=team_id,
            actor=actor,
            action="diagnostics.exported",
            target=f"workspace {team_id}",
        )
    document = await collect(
        settings=services.settings,
        database=services.database,
        keyring=services.keyring,
        workspaces=services.workspaces,
        team_ids=[team_id],
        scope=team_id,
    )
    return json.dumps(document, indent=2, ensure_ascii=False) + "\n"
