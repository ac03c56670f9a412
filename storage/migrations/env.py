"""Alembic environment: runs on a connection handed over by `storage.migrations`, or on its own."""

from __future__ import annotations

import asyncio
from typing import Any

import sqlalchemy as sa
from alembic import context

from storage.db import create_engine
from storage.models import Base

config = context.config
target_metadata = Base.metadata


def _configure(**options: Any) -> None:
    context.configure(
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=True,
        compare_type=True,
        **options,
    )


def _run(connection: sa.Connection) -> None:
    _configure(connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: object) -> None:
    engine = create_engine(str(url) if not isinstance(url, sa.URL) else url)
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run)
    finally:
        await engine.dispose()


def _url() -> object:
    url = config.attributes.get("url")
    if url is None:
        raise SystemExit("No database URL: set DATABASE_URL (see python -m storage.migrations).")
    return url


if context.is_offline_mode():
    _configure(url=_url(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()
elif (connection := config.attributes.get("connection")) is not None:
    _run(connection)
else:
    asyncio.run(_run_with_own_engine(_url()))
