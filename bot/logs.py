"""Logging set-up: level and format from the settings, and redaction of secrets in every line.

Redaction is defence in depth: no code should log a secret, but a library's exception text
(a URL, a response body, a header) might carry one into a traceback.

A line may carry fields (`log.info(logfmt(f), extra=fields_of(f))`): the text format shows
them as `key=value` pairs in the message, and the JSON format also as keys of its object.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import IO, Final

from pydantic import SecretStr

from bot.settings import Settings

REDACTED: Final = "[redacted]"

# Slack tokens (bot, user, refresh, config...), app-level tokens, OneSignal v2 keys, and
# "Authorization: Key/Bearer/Basic ..." header values.
_TOKEN_PATTERNS: Final = (
    re.compile(r"\bxox[a-z]-[A-Za-z0-9-]+"),
    re.compile(r"\bxapp-[A-Za-z0-9-]+"),
    re.compile(r"\bos_v2_[A-Za-z0-9_]+"),
    re.compile(r"(?i)(authorization['\"]?\s*[:=]\s*['\"]?(?:key|bearer|basic)\s+)[^\s'\",]+"),
)
_MIN_SECRET_LENGTH: Final = 6  # shorter configured values would redact ordinary words

_LEVELS: Final = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")

FIELDS: Final = "pushops_fields"
"""The attribute of a log record holding its fields (see `fields_of`)."""

Field = str | int | float | bool | None
_BARE: Final = re.compile(r"[^\s\"=\\]+")


def logfmt(fields: Mapping[str, Field]) -> str:
    """`key=value` pairs; a value with spaces, quotes or `=` is quoted; None is left out."""
    parts = []
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value).lower() if isinstance(value, bool) else str(value)
        parts.append(
            f"{key}={text if _BARE.fullmatch(text) else json.dumps(text, ensure_ascii=False)}"
        )
    return " ".join(parts)


def fields_of(fields: Mapping[str, Field]) -> dict[str, object]:
    """The `extra` of a log call carrying `fields` (None values left out)."""
    return {FIELDS: {key: value for key, value in fields.items() if value is not None}}


def secrets_of(settings: Settings) -> list[str]:
    """Every configured secret value, for the redaction filter."""
    values: list[SecretStr | None] = [
        settings.slack_bot_token,
        settings.slack_signing_secret,
        settings.slack_app_token,
        settings.slack_client_secret,
        settings.onesignal_api_key,
        settings.onesignal_org_key,
        settings.secret_key,
    ]
    found: list[str] = []
    for value in values:
        if value is None:
            continue
        # PUSHOPS_SECRET_KEY may hold several comma-separated keys.
        found.extend(part.strip() for part in value.get_secret_value().split(","))
    return [s for s in found if len(s) >= _MIN_SECRET_LENGTH]


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """`text` with token-shaped strings and the given secret values replaced."""
    for secret in secrets:
        text = text.replace(secret, REDACTED)
    for pattern in _TOKEN_PATTERNS:
        text = pattern.sub(
            lambda m: (m.group(1) if m.lastindex else "") + REDACTED,
            text,
        )
    return text


class RedactingFilter(logging.Filter):
    """Renders each record's message and traceback once, with secrets replaced.

    It fills `record.exc_text` itself: formatters reuse it instead of formatting the
    exception again, so the traceback that reaches the output is the redacted one.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # Longest first, so a secret containing another is replaced whole.
        self._secrets = sorted(set(secrets), key=len, reverse=True)
        self._exception_formatter = logging.Formatter()

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage(), self._secrets)
        record.args = None
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            setattr(record, FIELDS, {k: self._clean(v) for k, v in fields.items()})
        if record.exc_info and not record.exc_text:
            record.exc_text = self._exception_formatter.formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text, self._secrets)
        if record.stack_info:
            record.stack_info = redact(record.stack_info, self._secrets)
        return True

    def _clean(self, value: object) -> object:
        return redact(value, self._secrets) if isinstance(value, str) else value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the line's fields (`fields_of`)
    as keys of their own, and the traceback if any.

    Hand-written because it is a dozen lines; a dependency would add nothing here.
    """

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        fields = getattr(record, FIELDS, None)
        if isinstance(fields, dict):
            for key, value in fields.items():
                entry.setdefault(key, value)  # never hides time, level, logger or message
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            entry["exception"] = record.exc_text
        if record.stack_info:
            entry["stack"] = record.stack_info
        return json.dumps(entry, ensure_ascii=False)


def valid_level(name: str) -> bool:
    """Whether `name` is a logging level `PUSHOPS_LOG_LEVEL` accepts."""
    return name.upper() in _LEVELS


def build_handler(settings: Settings, stream: IO[str] | None = None) -> logging.Handler:
    """A stream handler with the configured format and the redaction filter."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    if settings.log_format == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    handler.addFilter(RedactingFilter(secrets_of(settings)))
    return handler


def configure_logging(settings: Settings, stream: IO[str] | None = None) -> None:
    """Route every logger to one redacting handler at `PUSHOPS_LOG_LEVEL`."""
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(build_handler(settings, stream))
    root.setLevel(settings.log_level.upper() if valid_level(settings.log_level) else "INFO")
