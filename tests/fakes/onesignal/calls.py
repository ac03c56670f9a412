"""What a handler receives (`Call`) and returns (`Reply`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from tests.fakes.onesignal.errors import errors
from tests.fakes.onesignal.store import AppState, Store


@dataclass(slots=True)
class Reply:
    """A JSON answer; `body=None` sends no body (204s)."""

    status: int
    body: Any
    headers: dict[str, str] | None = None


@dataclass(slots=True)
class Call:
    """One authorized request, ready for its handler (run under the store lock)."""

    store: Store
    app: AppState | None  # None on organization-key routes without an app in the path
    params: dict[str, str]
    query: dict[str, list[str]]
    body: Any  # the parsed JSON body (None unless sent as application/json)
    headers: dict[str, str]

    @property
    def state(self) -> AppState:
        assert self.app is not None, "route declared without an app"
        return self.app

    @property
    def json(self) -> dict[str, Any]:
        """The body as an object; 400 like the API when it is something else."""
        if self.body is None:
            return {}
        if not isinstance(self.body, dict):
            raise errors(400, "The request body must be a JSON object")
        return self.body

    def arg(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None

    def int_arg(self, name: str, default: int, maximum: int | None = None) -> int:
        raw = self.arg(name)
        if raw is None or raw == "":
            return default
        try:
            value = int(raw)
        except ValueError:
            raise errors(400, f"{name} must be an integer") from None
        if value < 0:
            raise errors(400, f"{name} must not be negative")
        return min(value, maximum) if maximum is not None else value


def page(items: list[Any], offset: int, limit: int) -> list[Any]:
    return items[offset : offset + limit]
