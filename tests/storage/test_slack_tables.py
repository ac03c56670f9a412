"""The Slack tables storage declares are the layout slack_sdk's installation and OAuth state
stores read and write: storage writes them out itself (it imports nothing of Slack), and this
test fails when an upgrade of slack_sdk changes the layout."""

from __future__ import annotations

import sqlalchemy as sa
from slack_sdk.oauth.installation_store.sqlalchemy import SQLAlchemyInstallationStore
from slack_sdk.oauth.state_store.sqlalchemy import SQLAlchemyOAuthStateStore

from storage.models import (
    SLACK_BOTS,
    SLACK_INSTALLATIONS,
    SLACK_OAUTH_STATES,
    SLACK_TOKEN_COLUMNS,
)


def _layout(table: sa.Table, *, tokens_as_text: bool = False) -> list[tuple[object, ...]]:
    """Each column: name, type (tokens read as TEXT when asked), nullable, primary key."""
    columns: list[tuple[object, ...]] = []
    for column in table.columns:
        kind = repr(column.type)
        if tokens_as_text and column.name in SLACK_TOKEN_COLUMNS:
            kind = repr(sa.Text())
        columns.append((column.name, kind, column.nullable, column.primary_key))
    return columns


def _indexes(table: sa.Table) -> set[tuple[str | None, tuple[str, ...]]]:
    return {(index.name, tuple(c.name for c in index.columns)) for index in table.indexes}


def test_the_installation_tables_are_slack_sdks_with_tokens_as_text():
    theirs = sa.MetaData()
    for ours, build in (
        (SLACK_INSTALLATIONS, SQLAlchemyInstallationStore.build_installations_table),
        (SLACK_BOTS, SQLAlchemyInstallationStore.build_bots_table),
    ):
        expected = build(theirs, ours.name)
        assert _layout(ours) == _layout(expected, tokens_as_text=True), ours.name
        assert _indexes(ours) == _indexes(expected), ours.name


def test_the_oauth_state_table_is_slack_sdks():
    expected = SQLAlchemyOAuthStateStore.build_oauth_states_table(
        sa.MetaData(), SLACK_OAUTH_STATES.name
    )
    assert _layout(SLACK_OAUTH_STATES) == _layout(expected)
    assert _indexes(SLACK_OAUTH_STATES) == _indexes(expected)


def test_every_token_column_is_text():
    for table in (SLACK_INSTALLATIONS, SLACK_BOTS):
        for name in SLACK_TOKEN_COLUMNS:
            if name in table.c:
                assert isinstance(table.c[name].type, sa.Text), (table.name, name)
