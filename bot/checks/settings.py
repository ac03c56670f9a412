"""The settings checked offline: what `pushops check` and the start of `serve` and `worker` refuse.

Every problem is found in one pass: a value pydantic cannot read is reported and its default
takes its place, so the other checks still run (`bot.settings.read_settings`).
"""

from __future__ import annotations

import re
import tempfile
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from bot.checks.problems import Problem
from bot.logs import valid_level
from bot.policy import ConfiguredAdmins
from bot.settings import COMMENT_ERROR, SPACES_ERROR, InvalidSetting, Settings, read_settings
from bot.slack_clients import is_oauth_mode
from storage.crypto import KEY_FILE_NAME, CryptoError, KeyRing, key_file_warning
from storage.db import DatabaseDriverMissing, DatabaseURLError, async_url, display_url

Check = Callable[[Settings], list[Problem]]

_PLACEHOLDERS: Final = re.compile(r"(?i)(changeme|change-me|your[-_ ]|<.*>|\.\.\.|^x+$|^todo$)")

_FIXES: Final = {
    COMMENT_ERROR: "put the comment on its own line: `docker run --env-file` and the "
    "environment keep everything after '=' as the value.",
    SPACES_ERROR: "remove them: `docker run --env-file`, and a secret made from a file, keep "
    "them as part of the value.",
}


def settings_problems(checks: Iterable[Check]) -> tuple[Settings, list[Problem]]:
    """The settings and every problem `checks` find in them, unreadable values first.

    An unreadable value is at its default in the settings returned: fit for more checks,
    never for serving (serve and worker stop on any problem).
    """
    settings, invalid = read_settings()
    named = {item.name for item in invalid}
    # A value read as its default says nothing about the setting: drop what that implies.
    found = [p for p in find_problems(settings, checks) if p.setting not in named]
    return settings, [_unreadable(item) for item in invalid] + found


def _unreadable(item: InvalidSetting) -> Problem:
    fix = _FIXES.get(item.kind, f"correct {item.name} or unset it.")
    return Problem(item.name, f"{item.message}.", fix)


def find_problems(settings: Settings, checks: Iterable[Check]) -> list[Problem]:
    """Every problem the `checks` find in `settings`, in fixing order."""
    problems: list[Problem] = []
    for check in checks:
        problems.extend(check(settings))
    return problems


def describe(settings: Settings) -> str:
    """The mode the settings select, in a few words."""
    workspaces = "multi-workspace (OAuth)" if is_oauth_mode(settings) else "single workspace"
    if settings.slack_app_token is not None:
        transport = f"Socket Mode (health and metrics on {settings.host}:{settings.port})"
    else:
        transport = f"HTTP on {settings.host}:{settings.port}"
    return f"{transport}, {workspaces}, database {display_url(settings.resolved_database_url)}"


def is_set(value: SecretStr | str | None) -> bool:
    """Whether a setting holds a value."""
    return bool(text_of(value))


def text_of(value: SecretStr | str | None) -> str:
    """A setting's text, secret or not ("" when unset)."""
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return value or ""


def _check_slack_mode(s: Settings) -> list[Problem]:
    token, client_id, secret = (
        is_set(s.slack_bot_token),
        is_set(s.slack_client_id),
        is_set(s.slack_client_secret),
    )
    if not token and not client_id and not secret:
        return [
            Problem(
                "SLACK_BOT_TOKEN",
                "no Slack credentials are set.",
                "set SLACK_BOT_TOKEN (one workspace), or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET (many workspaces, OAuth).",
            )
        ]
    if client_id != secret:
        return [_half_oauth(has_token=token, has_client_id=client_id)]
    if token and client_id:
        return [
            Problem(
                "SLACK_BOT_TOKEN",
                "both a bot token and OAuth credentials are set; PushOps runs in one mode.",
                "unset SLACK_BOT_TOKEN for many workspaces, or SLACK_CLIENT_ID and "
                "SLACK_CLIENT_SECRET for one.",
            )
        ]
    return []


def _half_oauth(*, has_token: bool, has_client_id: bool) -> Problem:
    """One of SLACK_CLIENT_ID / SLACK_CLIENT_SECRET without the other: name the missing one."""
    given, missing = "SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"
    if not has_client_id:
        given, missing = missing, given
    where = "Basic Information > App Credentials"
    if not has_token:
        return Problem(
            missing,
            "OAuth mode needs both SLACK_CLIENT_ID and SLACK_CLIENT_SECRET.",
            f"set {missing} ({where}).",
        )
    return Problem(
        missing,
        f"{given} is set without {missing}, beside SLACK_BOT_TOKEN.",
        f"for one workspace with the bot token, unset {given}; for many workspaces (OAuth), "
        f"set {missing} ({where}) and unset SLACK_BOT_TOKEN.",
    )


def _check_tokens(s: Settings) -> list[Problem]:
    problems = []
    if is_set(s.slack_bot_token) and not text_of(s.slack_bot_token).startswith("xoxb-"):
        problems.append(
            Problem(
                "SLACK_BOT_TOKEN",
                "is not a bot token (those start with xoxb-).",
                "copy the Bot User OAuth Token from OAuth & Permissions.",
            )
        )
    if is_set(s.slack_app_token) and not text_of(s.slack_app_token).startswith("xapp-"):
        problems.append(
            Problem(
                "SLACK_APP_TOKEN",
                "is not an app-level token (those start with xapp-).",
                "create one with the connections:write scope under Basic Information > "
                "App-Level Tokens, or unset SLACK_APP_TOKEN to serve over HTTP.",
            )
        )
    return problems


def _check_signing_secret(s: Settings) -> list[Problem]:
    if is_set(s.slack_app_token) or is_set(s.slack_signing_secret):
        return []
    return [
        Problem(
            "SLACK_SIGNING_SECRET",
            "is not set; over HTTP it proves that requests come from Slack.",
            "copy the Signing Secret from Basic Information > App Credentials, or set "
            "SLACK_APP_TOKEN to use Socket Mode instead.",
        )
    ]


def _check_onesignal(s: Settings) -> list[Problem]:
    app_id, key = is_set(s.onesignal_app_id), is_set(s.onesignal_api_key)
    if app_id and not key:
        return [
            Problem(
                "ONESIGNAL_API_KEY",
                "ONESIGNAL_APP_ID is set without its API key.",
                "set ONESIGNAL_API_KEY to the app's REST API key (OneSignal: Settings > "
                "Keys & IDs), or unset ONESIGNAL_APP_ID and add apps with /push setup.",
            )
        ]
    if key and not app_id:
        return [
            Problem(
                "ONESIGNAL_APP_ID",
                "ONESIGNAL_API_KEY is set without the app it belongs to.",
                "set ONESIGNAL_APP_ID (OneSignal: Settings > Keys & IDs).",
            )
        ]
    if app_id and not _is_uuid(text_of(s.onesignal_app_id)):
        return [
            Problem(
                "ONESIGNAL_APP_ID",
                "is not a OneSignal app id (a UUID such as 1b2c3d4e-...).",
                "copy the App ID from OneSignal: Settings > Keys & IDs.",
            )
        ]
    return []


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return True


def _check_urls(s: Settings) -> list[Problem]:
    problems = []
    for name, value in (
        ("SLACK_API_URL", s.slack_api_url),
        ("ONESIGNAL_API_URL", s.onesignal_api_url),
    ):
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            problems.append(
                Problem(
                    name, "is not an http(s) URL.", f"set {name} to an https:// URL or unset it."
                )
            )
    return problems


def _check_placeholders(s: Settings) -> list[Problem]:
    secrets: dict[str, SecretStr | str | None] = {
        "SLACK_BOT_TOKEN": s.slack_bot_token,
        "SLACK_SIGNING_SECRET": s.slack_signing_secret,
        "SLACK_APP_TOKEN": s.slack_app_token,
        "SLACK_CLIENT_SECRET": s.slack_client_secret,
        "ONESIGNAL_API_KEY": s.onesignal_api_key,
    }
    return [
        Problem(name, "still holds a placeholder value.", f"set {name} to the real value.")
        for name, value in secrets.items()
        if is_set(value) and _PLACEHOLDERS.search(text_of(value))
    ]


def _check_storage(s: Settings) -> list[Problem]:
    problems = []
    try:
        async_url(s.resolved_database_url)
    except DatabaseDriverMissing as e:
        problems.append(Problem("DATABASE_URL", e.problem, f"{e.fix}."))
    except DatabaseURLError as e:
        problems.append(Problem("DATABASE_URL", str(e), "unset it to use the SQLite default."))
    if s.secret_key is not None:
        try:
            KeyRing.from_text(s.secret_key.get_secret_value())
        except CryptoError as e:
            problems.append(
                Problem("PUSHOPS_SECRET_KEY", str(e), "make a key with `pushops keys generate`.")
            )
    return problems


def _check_folders(s: Settings) -> list[Problem]:
    """The data dir, when PushOps keeps files there, and the SQLite file's folder."""
    problems = []
    sqlite_folder = _sqlite_folder(s)
    uses_data_dir = not is_set(s.secret_key) or (
        sqlite_folder is not None and sqlite_folder == s.data_dir
    )
    if uses_data_dir:
        reason = unusable_folder(s.data_dir)
        if reason is not None:
            problems.append(
                Problem(
                    "PUSHOPS_DATA_DIR",
                    f"{s.data_dir} cannot be used: {reason}.",
                    "set PUSHOPS_DATA_DIR to a folder the user running PushOps may write to.",
                )
            )
    if sqlite_folder is not None and sqlite_folder != s.data_dir:
        reason = unusable_folder(sqlite_folder)
        if reason is not None:
            problems.append(
                Problem(
                    "DATABASE_URL",
                    f"the SQLite file's folder {sqlite_folder} cannot be used: {reason}.",
                    "name a file in a folder the user running PushOps may write to.",
                )
            )
    return problems


def _sqlite_folder(s: Settings) -> Path | None:
    """The folder of the SQLite file, if the database is one (None for PostgreSQL, memory)."""
    if not s.database_url:
        return s.data_dir
    try:
        url = make_url(s.database_url)
    except (ArgumentError, ValueError):  # _check_storage names a URL SQLAlchemy cannot read
        return None
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database).expanduser().parent


def unusable_folder(folder: Path) -> str | None:
    """Why PushOps could not keep files in `folder` (made when missing), or None if it can.

    Tries for real (a probe folder, removed at once) rather than `os.access`: permissions,
    read-only mounts and ACLs all answer the same way they will at start.
    """
    existing = folder.expanduser()
    try:
        while not existing.exists():
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is a file, not a folder"
        probe = tempfile.mkdtemp(prefix=".pushops-check-", dir=existing)
    except OSError as e:
        return f"nothing can be created in {existing} ({e.strerror or type(e).__name__})"
    Path(probe).rmdir()
    return None


def _check_logging(s: Settings) -> list[Problem]:
    if valid_level(s.log_level):
        return []
    return [
        Problem(
            "PUSHOPS_LOG_LEVEL",
            "is not a log level.",
            "use DEBUG, INFO, WARNING, ERROR or CRITICAL.",
        )
    ]


def _check_admins(s: Settings) -> list[Problem]:
    """PUSHOPS_ADMINS: TEAM:USER pairs; a bare user id only in single-workspace mode."""
    admins = ConfiguredAdmins.parse(s.admins)
    problems = []
    if admins.bare and is_oauth_mode(s):
        problems.append(
            Problem(
                "PUSHOPS_ADMINS",
                f"names {', '.join(sorted(admins.bare))} without a workspace: with "
                "SLACK_CLIENT_ID and SLACK_CLIENT_SECRET (many workspaces) each entry is "
                "TEAM:USER, an admin of that workspace only.",
                "write each as TEAM:USER, e.g. T0123ABCD:U0456EFGH.",
            )
        )
    if admins.malformed:
        problems.append(
            Problem(
                "PUSHOPS_ADMINS",
                "has entries that are neither a user id nor TEAM:USER: "
                f"{', '.join(admins.malformed)}.",
                "write each as U0456EFGH (one workspace) or T0123ABCD:U0456EFGH.",
            )
        )
    return problems


def settings_warnings(s: Settings) -> list[str]:
    """What is not wrong, but an operator should know (`pushops check` says it)."""
    if is_set(s.secret_key):
        return []
    return [key_file_warning(s.data_dir / KEY_FILE_NAME)]


def _check_worker_slack(s: Settings) -> list[Problem]:
    """A worker may run without Slack; the Slack settings it is given must hold as serve's."""
    if not (
        is_set(s.slack_bot_token) or is_set(s.slack_client_id) or is_set(s.slack_client_secret)
    ):
        return []
    return [*_check_slack_mode(s), *_check_tokens(s)]


_DELIVERY_CHECKS: Final[tuple[Check, ...]] = (
    _check_placeholders,
    _check_onesignal,
    _check_urls,
    _check_storage,
    _check_folders,
    _check_logging,
)

WORKER_CHECKS: Final[tuple[Check, ...]] = (_check_worker_slack, *_DELIVERY_CHECKS)
"""What `pushops worker` needs: what delivers sends, and Slack settings that hold if any is set
(without them it delivers but tells nobody, see bot.cli_worker)."""

SERVE_CHECKS: Final[tuple[Check, ...]] = (
    _check_slack_mode,
    _check_tokens,
    _check_signing_secret,
    _check_admins,
    *_DELIVERY_CHECKS,
)
"""What `pushops serve` and `pushops check` need."""
