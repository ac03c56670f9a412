"""PushOps settings, read from the environment and from `.env`."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_SLACK_API_URL = "https://slack.com/api/"
DEFAULT_ONESIGNAL_API_URL = "https://api.onesignal.com"


class Settings(BaseSettings):
    """Every setting of DESIGN.md's outside contract; names are the environment variables."""

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
    log_level: str = Field(default="INFO", alias="PUSHOPS_LOG_LEVEL")
    log_format: Literal["text", "json"] = Field(default="text", alias="PUSHOPS_LOG_FORMAT")

    @field_validator("slack_api_url")
    @classmethod
    def _slack_url_ends_with_slash(cls, value: str) -> str:
        return value if value.endswith("/") else value + "/"

    @property
    def admin_ids(self) -> frozenset[str]:
        """Slack user ids named in `PUSHOPS_ADMINS`."""
        return frozenset(part.strip() for part in self.admins.split(",") if part.strip())

    @property
    def resolved_database_url(self) -> str:
        """`DATABASE_URL`, or the SQLite file in the data dir."""
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'pushops.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings; tests build their own `Settings(...)` instead."""
    return Settings()
