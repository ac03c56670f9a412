"""Small SQL helpers the storage modules share: the dialect's INSERT, row counts, JSON values."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession

from storage.errors import InvalidInput


def insert_for(session: AsyncSession) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (SQLite and PostgreSQL spell it the same)."""
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def rowcount(result: Any) -> int:
    """How many rows an UPDATE or DELETE touched."""
    count: int = result.rowcount
    return count


def json_safe(value: Mapping[str, Any], what: str) -> dict[str, Any]:
    """`value` as plain JSON data (a copy); `InvalidInput` naming `what` when it is not."""
    try:
        normalised = json.loads(json.dumps(dict(value)))
    except (TypeError, ValueError) as error:
        raise InvalidInput(f"The {what} must be plain JSON data: {error}.") from None
    assert isinstance(normalised, dict)
    return normalised
