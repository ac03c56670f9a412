"""The OAuth install states (`slack_oauth_states`, slack_sdk's table): deleting expired ones."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.ext.asyncio import AsyncEngine

from storage.models import SLACK_OAUTH_STATES


async def delete_expired_states(*, engine: AsyncEngine, now: datetime) -> int:
    """Delete the states that expired by `now`; how many there were.

    slack_sdk stores `expire_at` as a naive UTC time, so `now` is compared in that form.
    """
    naive = now.astimezone(UTC).replace(tzinfo=None)
    async with engine.begin() as connection:
        result = await connection.execute(
            SLACK_OAUTH_STATES.delete().where(SLACK_OAUTH_STATES.c.expire_at <= naive)
        )
    return int(getattr(result, "rowcount", 0) or 0)
