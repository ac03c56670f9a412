"""PushOps settings, read from the environment and from `.env`."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_core import ErrorDetails, PydanticCustomError
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_ONESIGNAL_API_URL = "https://api.onesignal.com"

COMMENT_ERROR: Final = "setting_comment"
"""The error type of a value that carries a `# comment`."""
SPACES_ERROR: Final = "setting_spaces"
"""The error type of a value with spaces, tabs or line breaks around it."""

# A comment starts at a '#' that opens the value or follows a space, as in a shell or a .env
# file; a '#' inside a word (a password in DATABASE_URL) is part of the value.
_COMMENT: Final = re.compile(r"(?:^|\s)#")


class Settings(BaseSettings):
    """Every setting of docs/design.md's outside contract; names are the environment variables."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True)

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_client_id: str | None = None
    slack_client_secret: SecretStr | None = None
    slack_api_url: str = DEFAULT_SLACK_API_URL

    onesignal_api_url: str = DEFAULT_ONESIGNAL_API_URL
    onesignal_app_id: str | None = None
    onesignal_api_key: SecretStr | None = None
    onesignal_org_key: SecretStr | None = None

    data_dir: Path = Field(default=Path("./data"), alias="PUSHOPS_DATA_DIR")
    database_url: str | None = None
    secret_key: SecretStr | None = Field(default=None, alias="PUSHOPS_SECRET_KEY")
    admins: str = Field(default="", alias="PUSHOPS_ADMINS")
    auto_migrate: bool = Field(default=True, alias="PUSHOPS_AUTO_MIGRATE")

    host: str = "0.0.0.0"
    port: int = 3000

    misfire_grace: float = Field(default=600.0, alias="PUSHOPS_MISFIRE_GRACE", gt=0)
    approval_ttl: float = Field(default=86400.0, alias="PUSHOPS_APPROVAL_TTL", gt=0)
    audit_checkpoints: str | None = Field(default=None, alias="PUSHOPS_AUDIT_CHECKPOINTS")
    audit_checkpoint_interval: float = Field(
        default=3600.0, alias="PUSHOPS_AUDIT_CHECKPOINT_INTERVAL", gt=0
    )
    log_level: str = Field(default="INFO", alias="PUSHOPS_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(default="text", alias="PUSHOPS_LOG_FORMAT")

    @field_validator("*", mode="before")
    @classmethod
    def _refuse_comments_and_spaces(cls, value: Any) -> Any:
        """Refuse what `docker run --env-file` keeps verbatim: an inline comment, spaces.

        python-dotenv drops both when PushOps reads `.env` itself, but Docker's env file and
        a quoted shell value pass them on; a key with a comment stuck to it would only fail
        at the first send, with OneSignal's bare 403.
        """
        text = value.get_secret_value() if isinstance(value, SecretStr) else value
        if not isinstance(text, str):
            return value
        if _COMMENT.search(text):
            raise PydanticCustomError(COMMENT_ERROR, "carries a comment (from '#' on)")
        if text != text.strip():
            raise PydanticCustomError(SPACES_ERROR, "has spaces or line breaks around its value")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url_ends_with_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def resolved_database_url(self) -> str:
        """`DATABASE_URL`, or the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pushops.db').resolve()}"


@dataclass(frozen=True)
class InvalidSetting:
    """A setting whose value cannot be read: its variable, why (no final period, never the
    value), and pydantic's error type."""

    name: str
    message: str
    kind: str


def env_name(field_name: str) -> str:
    """The environment variable of the field `field_name`."""
    return Settings.model_fields[field_name].alias or field_name.upper()


def read_settings() -> tuple[Settings, list[InvalidSetting]]:
    """The settings, with each unreadable value at its default, and what was unreadable.

    pydantic reports every invalid field at once but then gives no settings at all; the
    defaults in their place let the other checks run too, so one bad value (`PORT=abc`)
    does not hide the rest.
    """
    try:
        return Settings(), []
    except ValidationError as error:
        invalid = [_invalid(details) for details in error.errors(include_input=False)]
    fields = {env_name(name): name for name in Settings.model_fields}
    defaults = {
        fields[item.name]: Settings.model_fields[fields[item.name]].get_default(
            call_default_factory=True
        )
        for item in invalid
        if item.name in fields
    }
    return Settings(**defaults), invalid


# Plainer words than pydantic's for the errors a setting typically has.
_MESSAGES: Final = {
    "int_parsing": "is not a whole number",
    "float_parsing": "is not a number",
    "bool_parsing": "is neither 1 nor 0 (true/false)",
    "greater_than": "must be more than 0",
}


def _invalid(details: ErrorDetails) -> InvalidSetting:
    # Only the location and the message: the input may be a secret.
    location = details.get("loc") or ("?",)
    kind = details["type"]
    message = _MESSAGES.get(kind, details["msg"].rstrip("."))
    return InvalidSetting(str(location[0]).upper(), message, kind)
