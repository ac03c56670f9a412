"""Initial schema: workspaces, OneSignal apps, members, sends, approvals, audit, Slack stores.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | None = None
branch_labels: str | None = None
depends_on: str | None = None

GENESIS_HASH = "0" * 64


def _timestamp(name: str, *, nullable: bool = False) -> sa.Column[Any]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def _team_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["team_id"], ["workspaces.team_id"], name=op.f(f"fk_{table}_team_id_workspaces")
    )


def upgrade() -> None:
    """Create every table of the first release."""
    _create_slack_tables()
    op.create_table(
        "workspaces",
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("log_channel_id", sa.String(32), nullable=True),
        sa.Column("settings", sa.JSON(), nullable=False),
        sa.Column("audit_head_seq", sa.Integer(), server_default="0", nullable=False),
        sa.Column("audit_head_hash", sa.String(64), server_default=GENESIS_HASH, nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.PrimaryKeyConstraint("team_id", name=op.f("pk_workspaces")),
    )
    _create_audit_events()
    _create_members()
    _create_onesignal_apps()
    _create_sends()
    _create_approvals()


def _create_audit_events() -> None:
    op.create_table(
        "audit_events",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        _timestamp("created_at"),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("outcome", sa.String(32), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        _team_fk("audit_events"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_events")),
        sa.UniqueConstraint("team_id", "seq", name=op.f("uq_audit_events_team_id_seq")),
    )
    op.create_index(op.f("ix_audit_events_created_at"), "audit_events", ["created_at"])


def _create_members() -> None:
    op.create_table(
        "members",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("subject_id", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        _timestamp("created_at"),
        _team_fk("members"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_members")),
        sa.UniqueConstraint(
            "team_id", "subject_id", "role", name=op.f("uq_members_team_id_subject_id_role")
        ),
    )


def _create_onesignal_apps() -> None:
    op.create_table(
        "onesignal_apps",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("onesignal_app_id", sa.String(64), nullable=False),
        sa.Column("api_key_ciphertext", sa.Text(), nullable=False),
        sa.Column("is_default", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("added_by", sa.String(64), nullable=False),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        _team_fk("onesignal_apps"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_onesignal_apps")),
        sa.UniqueConstraint("team_id", "name", name=op.f("uq_onesignal_apps_team_id_name")),
    )
    op.create_index(op.f("ix_onesignal_apps_team_id"), "onesignal_apps", ["team_id"])
    op.create_index(
        "uq_onesignal_apps_default_per_team",
        "onesignal_apps",
        ["team_id"],
        unique=True,
        sqlite_where=sa.text("is_default"),
        postgresql_where=sa.text("is_default"),
    )


def _create_sends() -> None:
    op.create_table(
        "sends",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("short_id", sa.String(6), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("app_ref", sa.Uuid(), nullable=True),
        sa.Column("app_name", sa.String(64), nullable=False),
        sa.Column("requester_id", sa.String(32), nullable=False),
        sa.Column("content", sa.JSON(), nullable=False),
        sa.Column("audience", sa.JSON(), nullable=False),
        sa.Column("is_test", sa.Boolean(), server_default=sa.false(), nullable=False),
        _timestamp("due_at", nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("approvals_required", sa.Integer(), server_default="0", nullable=False),
        sa.Column("approvals_received", sa.Integer(), server_default="0", nullable=False),
        sa.Column("notification_id", sa.String(64), nullable=True),
        sa.Column("batches", sa.JSON(), nullable=False),
        sa.Column("slack_messages", sa.JSON(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("claimed_by", sa.String(128), nullable=True),
        _timestamp("claimed_at", nullable=True),
        _timestamp("lease_until", nullable=True),
        _timestamp("finished_at", nullable=True),
        _timestamp("created_at"),
        _timestamp("updated_at"),
        sa.ForeignKeyConstraint(
            ["app_ref"],
            ["onesignal_apps.id"],
            name=op.f("fk_sends_app_ref_onesignal_apps"),
            ondelete="SET NULL",
        ),
        _team_fk("sends"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sends")),
        sa.UniqueConstraint("team_id", "short_id", name=op.f("uq_sends_team_id_short_id")),
    )
    op.create_index(op.f("ix_sends_app_ref"), "sends", ["app_ref"])
    op.create_index(op.f("ix_sends_state_due_at"), "sends", ["state", "due_at"])
    op.create_index(op.f("ix_sends_team_id_created_at"), "sends", ["team_id", "created_at"])
    op.create_index(
        op.f("ix_sends_team_id_notification_id"), "sends", ["team_id", "notification_id"]
    )


def _create_approvals() -> None:
    op.create_table(
        "approvals",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("team_id", sa.String(32), nullable=False),
        sa.Column("send_id", sa.Uuid(), nullable=False),
        sa.Column("approver_id", sa.String(32), nullable=False),
        sa.Column("decision", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _timestamp("created_at"),
        sa.ForeignKeyConstraint(
            ["send_id"], ["sends.id"], name=op.f("fk_approvals_send_id_sends"), ondelete="CASCADE"
        ),
        _team_fk("approvals"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_approvals")),
        sa.UniqueConstraint(
            "send_id", "approver_id", name=op.f("uq_approvals_send_id_approver_id")
        ),
    )
    op.create_index(op.f("ix_approvals_team_id"), "approvals", ["team_id"])


def _slack_bot_columns() -> list[sa.Column[Any]]:
    # slack_sdk's SQLAlchemyInstallationStore layout; token columns are TEXT to hold ciphertexts.
    return [
        sa.Column("bot_token", sa.Text(), nullable=True),
        sa.Column("bot_id", sa.String(32), nullable=True),
        sa.Column("bot_user_id", sa.String(32), nullable=True),
        sa.Column("bot_scopes", sa.String(1000), nullable=True),
        sa.Column("bot_refresh_token", sa.Text(), nullable=True),
        sa.Column("bot_token_expires_at", sa.DateTime(), nullable=True),
    ]


def _create_slack_tables() -> None:
    op.create_table(
        "slack_bots",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32), nullable=True),
        sa.Column("enterprise_name", sa.String(200), nullable=True),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("team_name", sa.String(200), nullable=True),
        *_slack_bot_columns(),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_bots")),
    )
    op.create_index(
        "slack_bots_idx", "slack_bots", ["client_id", "enterprise_id", "team_id", "installed_at"]
    )
    op.create_table(
        "slack_installations",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32), nullable=True),
        sa.Column("enterprise_name", sa.String(200), nullable=True),
        sa.Column("enterprise_url", sa.String(200), nullable=True),
        sa.Column("team_id", sa.String(32), nullable=True),
        sa.Column("team_name", sa.String(200), nullable=True),
        *_slack_bot_columns(),
        sa.Column("user_id", sa.String(32), nullable=False),
        sa.Column("user_token", sa.Text(), nullable=True),
        sa.Column("user_scopes", sa.String(1000), nullable=True),
        sa.Column("user_refresh_token", sa.Text(), nullable=True),
        sa.Column("user_token_expires_at", sa.DateTime(), nullable=True),
        sa.Column("incoming_webhook_url", sa.String(200), nullable=True),
        sa.Column("incoming_webhook_channel", sa.String(200), nullable=True),
        sa.Column("incoming_webhook_channel_id", sa.String(200), nullable=True),
        sa.Column("incoming_webhook_configuration_url", sa.String(200), nullable=True),
        sa.Column("is_enterprise_install", sa.Boolean(), nullable=False),
        sa.Column("token_type", sa.String(32), nullable=True),
        sa.Column("installed_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_installations")),
    )
    op.create_index(
        "slack_installations_idx",
        "slack_installations",
        ["client_id", "enterprise_id", "team_id", "user_id", "installed_at"],
    )
    op.create_table(
        "slack_oauth_states",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("expire_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_slack_oauth_states")),
    )


def downgrade() -> None:
    """Drop every table (the first release has nothing to go back to)."""
    for table in (
        "approvals",
        "sends",
        "onesignal_apps",
        "members",
        "audit_events",
        "workspaces",
        "slack_oauth_states",
        "slack_installations",
        "slack_bots",
    ):
        op.drop_table(table)
