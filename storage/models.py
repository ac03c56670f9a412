"""The PushOps tables as SQLAlchemy 2 typed models; Alembic migrations must match them exactly."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from storage.crypto import Purpose

# Stable constraint names, so later migrations (and SQLite batch mode) can refer to them.
NAMING_CONVENTION: Final = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

GENESIS_HASH: Final = "0" * 64
"""The `prev_hash` of the first audit event of a workspace."""


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC (what every timestamp column stores)."""
    return datetime.now(UTC)


class UTCDateTime(sa.TypeDecorator[datetime]):
    """A timestamp stored in UTC and read back timezone-aware, on SQLite as on PostgreSQL.

    SQLite keeps no offset, so an aware value is converted to UTC before it is written (string
    comparison then orders correctly) and a read value is marked UTC. Naive values are refused:
    they are the bug where a local time gets stored as UTC.
    """

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("timestamps must be timezone-aware (use storage.models.utcnow())")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class SendState(StrEnum):
    """docs/design.md invariant 2: the life of a send."""

    DRAFT = "draft"
    PENDING_APPROVAL = "pending_approval"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"
    MISSED = "missed"


# The one table of legal moves; `transition_send` refuses anything else.
TRANSITIONS: Final[dict[SendState, frozenset[SendState]]] = {
    SendState.DRAFT: frozenset(
        {SendState.PENDING_APPROVAL, SendState.SCHEDULED, SendState.CANCELLED, SendState.EXPIRED}
    ),
    SendState.PENDING_APPROVAL: frozenset(
        {SendState.SCHEDULED, SendState.REJECTED, SendState.EXPIRED, SendState.CANCELLED}
    ),
    SendState.SCHEDULED: frozenset({SendState.SENDING, SendState.CANCELLED, SendState.MISSED}),
    # back to scheduled: a retry later (429, outage) keeps the same idempotency key.
    # cancelled: the on-call stop while a send is going out; delivery cancels at OneSignal.
    # missed: a claim whose worker died, found later than the misfire grace, which OneSignal
    # (asked by name) does not have; it is not sent blindly (docs/design.md invariant 4).
    # pending_approval: claimed when due, before any attempt, and held back because the
    # approval policy in force by then asks for approvals it does not have.
    SendState.SENDING: frozenset(
        {
            SendState.PENDING_APPROVAL,
            SendState.SENT,
            SendState.FAILED,
            SendState.SCHEDULED,
            SendState.CANCELLED,
            SendState.MISSED,
        }
    ),
    # sent -> cancelled: a delivered-over-time notification stopped at OneSignal.
    SendState.SENT: frozenset({SendState.CANCELLED}),
    SendState.FAILED: frozenset({SendState.SCHEDULED}),
    # a missed send: the requester sends it now, or drops it; "send now" asks for approval
    # first (pending_approval) when the workspace's policy requires it by then.
    SendState.MISSED: frozenset(
        {SendState.SCHEDULED, SendState.PENDING_APPROVAL, SendState.CANCELLED}
    ),
    SendState.CANCELLED: frozenset(),
    SendState.REJECTED: frozenset(),
    SendState.EXPIRED: frozenset(),
}

ACTIVE_STATES: Final = frozenset(
    {SendState.DRAFT, SendState.PENDING_APPROVAL, SendState.SCHEDULED, SendState.SENDING}
)
"""States in which a send may still reach OneSignal."""


class MemberRole(StrEnum):
    """What a Slack user or user group may do in a workspace (a new value needs no migration:
    roles are stored as plain strings)."""

    ADMIN = "admin"
    SENDER = "sender"
    APPROVER = "approver"
    RESPONDER = "responder"


class Decision(StrEnum):
    """An approver's answer."""

    APPROVE = "approve"
    REJECT = "reject"


def _enum(enum: type[StrEnum], length: int) -> sa.Enum:
    # Stored as plain strings (no native PostgreSQL enum) so a new state is a code change only.
    return sa.Enum(
        enum,
        native_enum=False,
        create_constraint=False,
        length=length,
        values_callable=lambda members: [member.value for member in members],
        validate_strings=True,
    )


class Base(DeclarativeBase):
    """Declarative base; its metadata is what migrations are compared against."""

    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {
        datetime: UTCDateTime(),
        uuid.UUID: sa.Uuid(),
        dict[str, Any]: sa.JSON(),
        list[dict[str, Any]]: sa.JSON(),
    }


class Timestamps:
    """`created_at` and `updated_at`, set by the application in UTC."""

    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Workspace(Timestamps, Base):
    """A Slack workspace (team) using PushOps, with its settings and the head of its audit chain."""

    __tablename__ = "workspaces"

    team_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    enterprise_id: Mapped[str | None] = mapped_column(sa.String(32))
    name: Mapped[str] = mapped_column(sa.String(200), default="")
    log_channel_id: Mapped[str | None] = mapped_column(sa.String(32))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The last audit event, so a deleted tail shows too; updated with each append.
    audit_head_seq: Mapped[int] = mapped_column(default=0, server_default="0")
    audit_head_hash: Mapped[str] = mapped_column(
        sa.String(64), default=GENESIS_HASH, server_default=GENESIS_HASH
    )

    def __repr__(self) -> str:
        return f"Workspace(team_id={self.team_id!r}, name={self.name!r})"


class OneSignalApp(Timestamps, Base):
    """A OneSignal app configured in a workspace; its REST API key is stored encrypted."""

    __tablename__ = "onesignal_apps"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "name"),
        # At most one default app per workspace.
        sa.Index(
            "uq_onesignal_apps_default_per_team",
            "team_id",
            unique=True,
            sqlite_where=sa.text("is_default"),
            postgresql_where=sa.text("is_default"),
        ),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[str] = mapped_column(sa.ForeignKey("workspaces.team_id"), index=True)
    name: Mapped[str] = mapped_column(sa.String(64))
    onesignal_app_id: Mapped[str] = mapped_column(sa.String(64))
    api_key_ciphertext: Mapped[str] = mapped_column(sa.Text)
    is_default: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    added_by: Mapped[str] = mapped_column(sa.String(64), default="")

    def __repr__(self) -> str:  # never the key, not even encrypted
        return f"OneSignalApp(team_id={self.team_id!r}, name={self.name!r})"


class Member(Base):
    """A role held by a Slack user (U…/W…) or user group (S…) in a workspace."""

    __tablename__ = "members"
    __table_args__ = (sa.UniqueConstraint("team_id", "subject_id", "role"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[str] = mapped_column(sa.ForeignKey("workspaces.team_id"))
    subject_id: Mapped[str] = mapped_column(sa.String(32))
    role: Mapped[MemberRole] = mapped_column(_enum(MemberRole, 16))
    added_by: Mapped[str] = mapped_column(sa.String(64), default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserLink(Timestamps, Base):
    """A Slack user's own OneSignal external id (`/push me`), the audience of `send --test`."""

    __tablename__ = "user_links"

    team_id: Mapped[str] = mapped_column(sa.ForeignKey("workspaces.team_id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(sa.String(32), primary_key=True)
    external_id: Mapped[str] = mapped_column(sa.String(128))

    def __repr__(self) -> str:
        return f"UserLink(team_id={self.team_id!r}, user_id={self.user_id!r})"


class Send(Timestamps, Base):
    """One notification request through its whole life (docs/design.md invariants 2 and 3)."""

    __tablename__ = "sends"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "short_id"),
        # One send per compose form, whichever replica a (repeated) submission reaches.
        sa.UniqueConstraint("team_id", "submission"),
        sa.Index(None, "state", "due_at"),
        sa.Index(None, "team_id", "created_at"),
        sa.Index(None, "team_id", "notification_id"),
        # An occurrence is made once, whoever makes it (a second replica, a restart). An index,
        # not a constraint: SQLite adds it without rebuilding `sends` (which would cascade).
        sa.Index("uq_sends_series_id_occurrence_at", "series_id", "occurrence_at", unique=True),
        # `/push list`'s upcoming sends: the workspace's few in those states, not its history.
        sa.Index(None, "team_id", "state", "due_at"),
        # The few sends whose final counters are owed, soonest first (not every send ever).
        sa.Index(
            "ix_sends_counters_due_at",
            "counters_due_at",
            sqlite_where=sa.text("counters_due_at IS NOT NULL"),
            postgresql_where=sa.text("counters_due_at IS NOT NULL"),
        ),
    )

    # The UUID is OneSignal's idempotency key; it never changes, so retries cannot double-send.
    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    short_id: Mapped[str] = mapped_column(sa.String(6))
    team_id: Mapped[str] = mapped_column(sa.ForeignKey("workspaces.team_id"))
    # SET NULL keeps the history of sends when an app is removed; app_name keeps what it was.
    app_ref: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("onesignal_apps.id", ondelete="SET NULL"), index=True
    )
    app_name: Mapped[str] = mapped_column(sa.String(64), default="")
    requester_id: Mapped[str] = mapped_column(sa.String(32))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # OneSignal's delivery options (bot.delivery.options): time zone, throttle, buttons...
    options: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    is_test: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    due_at: Mapped[datetime | None]
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    state: Mapped[SendState] = mapped_column(_enum(SendState, 24), default=SendState.DRAFT)
    approvals_required: Mapped[int] = mapped_column(default=0, server_default="0")
    approvals_received: Mapped[int] = mapped_column(default=0, server_default="0")
    # The first batch's OneSignal id (shown and looked up), then every batch's result.
    notification_id: Mapped[str | None] = mapped_column(sa.String(64))
    batches: Mapped[list[dict[str, Any]]] = mapped_column(default=list)
    # purpose ("approval", "log", "status"...) -> {"channel": ..., "ts": ...}
    slack_messages: Mapped[dict[str, Any]] = mapped_column(default=dict)
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")
    claimed_by: Mapped[str | None] = mapped_column(sa.String(128))
    claimed_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The compose form (Slack view id) that asked for this send; None for other ways in.
    submission: Mapped[str | None] = mapped_column(sa.String(64))
    # An occurrence of a series: its series and the moment it is for (once per both). No
    # foreign key: adding one would rebuild `sends` on SQLite; a series is never deleted.
    series_id: Mapped[uuid.UUID | None]
    occurrence_at: Mapped[datetime | None]
    # When the final counters of a send that went out are to be read (set with its result;
    # cleared once they are owed as a row of the Slack outbox, `storage.outbox.owe_counters`).
    counters_due_at: Mapped[datetime | None]

    # Not a column: True on the send `create_send` returned instead of storing one, because
    # its submission had stored this one already (Send pressed twice, maybe on two replicas).
    replayed = False

    def __repr__(self) -> str:
        return f"Send(team_id={self.team_id!r}, short_id={self.short_id!r}, state={self.state!r})"


# `/push list`'s recent sends, latest to end first (`queries.list_sends(order="finished")`):
# read from the end of this index, however many sends the workspace keeps.
sa.Index(
    "ix_sends_team_id_ended",
    Send.team_id,
    sa.func.coalesce(Send.finished_at, Send.due_at, Send.created_at),
)


class SendNotification(Base):
    """One OneSignal notification a send made: batch `batch` of send `send_id`.

    `sends.batches` keeps each batch's outcome as JSON, which no index reaches; this row is
    what `/push status` and `/push cancel` look a OneSignal id up by, whichever batch made it.
    Keyed by workspace first, so a lookup never sees another workspace's notification.
    """

    __tablename__ = "send_notifications"
    __table_args__ = (sa.Index(None, "send_id"),)

    team_id: Mapped[str] = mapped_column(sa.ForeignKey("workspaces.team_id"), primary_key=True)
    notification_id: Mapped[str] = mapped_column(sa.String(64), primary_key=True)
    send_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("sends.id", ondelete="CASCADE"))
    batch: Mapped[int]

    def __repr__(self) -> str:
        return f"SendNotification(team_id={self.team_id!r}, batch={self.batch})"


class SeriesState(StrEnum):
    """Where a recurring send stands: only an active (and approved) series has occurrences."""

    ACTIVE = "active"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"  # its --until or --times reached


class SeriesApproval(StrEnum):
    """A series' approval, asked once for all its occurrences (and again after an edit)."""

    NOT_NEEDED = "not_needed"
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"


class Series(Timestamps, Base):
    """A recurring send (`--every`), stored once: its rule, content and audience.

    Each occurrence becomes an ordinary send shortly before it is due (`storage.series`),
    whose id is derived from the series' id and the occurrence's time, so it is made once
    whoever makes it. `next_at` is the next occurrence not made yet (None when none will be);
    `occurrences` counts those made. `rule` is `bot.recurrence.Rule` as JSON, read in
    `timezone`; `until` (UTC) and `times` end it.
    """

    __tablename__ = "series"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "short_id"),
        sa.Index(None, "state", "next_at"),
        # One series per compose form, whichever replica a (repeated) submission reaches.
        sa.Index("uq_series_team_id_submission", "team_id", "submission", unique=True),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    short_id: Mapped[str] = mapped_column(sa.String(6))
    team_id: Mapped[str] = mapped_column(sa.ForeignKey("workspaces.team_id"))
    app_ref: Mapped[uuid.UUID | None] = mapped_column(
        sa.ForeignKey("onesignal_apps.id", ondelete="SET NULL")
    )
    app_name: Mapped[str] = mapped_column(sa.String(64), default="")
    requester_id: Mapped[str] = mapped_column(sa.String(32))
    content: Mapped[dict[str, Any]] = mapped_column(default=dict)
    audience: Mapped[dict[str, Any]] = mapped_column(default=dict)
    is_test: Mapped[bool] = mapped_column(default=False, server_default=sa.false())
    # OneSignal's delivery options each occurrence carries (as `sends.options`).
    options: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    rule: Mapped[dict[str, Any]] = mapped_column(default=dict)
    timezone: Mapped[str] = mapped_column(sa.String(64), default="UTC")
    until: Mapped[datetime | None]
    times: Mapped[int | None]
    occurrences: Mapped[int] = mapped_column(default=0, server_default="0")
    next_at: Mapped[datetime | None]
    state: Mapped[SeriesState] = mapped_column(_enum(SeriesState, 16), default=SeriesState.ACTIVE)
    approval: Mapped[SeriesApproval] = mapped_column(
        _enum(SeriesApproval, 16), default=SeriesApproval.NOT_NEEDED
    )
    approvals_required: Mapped[int] = mapped_column(default=0, server_default="0")
    approvals_received: Mapped[int] = mapped_column(default=0, server_default="0")
    # purpose ("approval") -> {"channel": ..., "ts": ...}
    slack_messages: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The compose form (Slack view id and digest) that made this series; None otherwise.
    submission: Mapped[str | None] = mapped_column(sa.String(64))

    # Not a column: True on the series `create_series` returned instead of storing one,
    # because its submission had stored this one already (Send pressed twice, maybe on two
    # replicas).
    replayed = False

    def __repr__(self) -> str:
        return f"Series(team_id={self.team_id!r}, short_id={self.short_id!r}, state={self.state!r})"


class Approval(Base):
    """One approver's decision on a send."""

    __tablename__ = "approvals"
    __table_args__ = (sa.UniqueConstraint("send_id", "approver_id"),)

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[str] = mapped_column(sa.ForeignKey("workspaces.team_id"), index=True)
    send_id: Mapped[uuid.UUID] = mapped_column(sa.ForeignKey("sends.id", ondelete="CASCADE"))
    approver_id: Mapped[str] = mapped_column(sa.String(32))
    decision: Mapped[Decision] = mapped_column(_enum(Decision, 16))
    reason: Mapped[str | None] = mapped_column(sa.Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditEvent(Base):
    """Invariant 8 (docs/design.md): append-only, each event hashing the one before it in its
    workspace.

    `mac` authenticates `hash` (and so the whole chain up to this event) under the audit key
    `mac_key_id` names; both are None on events written before the chain was keyed.
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.UniqueConstraint("team_id", "seq"), sa.Index(None, "created_at"))

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[str] = mapped_column(sa.ForeignKey("workspaces.team_id"))
    seq: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    actor: Mapped[str] = mapped_column(sa.String(64))
    action: Mapped[str] = mapped_column(sa.String(64))
    target: Mapped[str] = mapped_column(sa.String(200), default="")
    outcome: Mapped[str] = mapped_column(sa.String(32), default="ok")
    details: Mapped[dict[str, Any]] = mapped_column(default=dict)
    prev_hash: Mapped[str] = mapped_column(sa.String(64))
    hash: Mapped[str] = mapped_column(sa.String(64))
    mac: Mapped[str | None] = mapped_column(sa.String(64))
    mac_key_id: Mapped[str | None] = mapped_column(sa.String(16))

    def __repr__(self) -> str:
        return f"AuditEvent(team_id={self.team_id!r}, seq={self.seq}, action={self.action!r})"


class SlackRequest(Base):
    """A verified Slack request already acted on, kept for the signature window.

    A replay of the same signed bytes (or Slack's own retry of an event) finds its key here
    and changes nothing. The key is the request's `trigger_id`, or `event_id` for events.
    """

    __tablename__ = "slack_requests"

    key: Mapped[str] = mapped_column(sa.String(160), primary_key=True)
    seen_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class OutboxState(StrEnum):
    """Where a message owed to Slack stands."""

    PENDING = "pending"
    DONE = "done"
    REFUSED = "refused"


class OutboxKind(StrEnum):
    """How a message owed to Slack is delivered."""

    MESSAGE = "message"  # a channel message, posted once and then updated in place
    DM = "dm"  # a direct message to a user, posted once


class OutboxMessage(Base):
    """A message PushOps owes Slack, kept until Slack took it (or refused it for good).

    Storage knows nothing of Slack: a row is a generic owed message, written in the
    transaction that decided it and drained by `bot.outbox`. `key` makes it once per
    workspace: a keyed channel message (`log:<send id>`) is replaced in place while queued
    (`version` counts the replacements, so only the latest is sent), a DM is inserted once.
    `channel` and `ts` say where a channel message is once posted, so later versions update it.
    `digest` names the digest (a row of purpose `digest`) that told this message's news along
    with others': a DM so told is done without being sent; a log message so told is still
    brought to its final state, but named in no later digest.
    """

    __tablename__ = "slack_outbox"
    __table_args__ = (
        sa.UniqueConstraint("team_id", "key"),
        sa.Index(None, "state", "next_attempt_at"),
        sa.Index(None, "send_id"),
    )

    id: Mapped[uuid.UUID] = mapped_column(primary_key=True, default=uuid.uuid4)
    team_id: Mapped[str] = mapped_column(sa.String(32))
    key: Mapped[str] = mapped_column(sa.String(200))
    send_id: Mapped[uuid.UUID | None]
    kind: Mapped[OutboxKind] = mapped_column(_enum(OutboxKind, 16))
    purpose: Mapped[str] = mapped_column(sa.String(32))
    destination: Mapped[str] = mapped_column(sa.String(32))
    priority: Mapped[int] = mapped_column(default=1)
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    state: Mapped[OutboxState] = mapped_column(_enum(OutboxState, 16), default=OutboxState.PENDING)
    version: Mapped[int] = mapped_column(default=1)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    leased_by: Mapped[str | None] = mapped_column(sa.String(128))
    lease_until: Mapped[datetime | None]
    channel: Mapped[str | None] = mapped_column(sa.String(32))
    ts: Mapped[str | None] = mapped_column(sa.String(32))
    last_error: Mapped[str | None] = mapped_column(sa.Text)
    digest: Mapped[str | None] = mapped_column(sa.String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"OutboxMessage(team_id={self.team_id!r}, key={self.key!r}, state={self.state!r})"


# slack_sdk's installation and OAuth state stores (multi-workspace mode) read these tables; our
# migrations create them. Their layout is slack_sdk's (`SQLAlchemyInstallationStore
# .build_installations_table`, `build_bots_table`, `SQLAlchemyOAuthStateStore
# .build_oauth_states_table`), written out here so that storage needs nothing of Slack's SDK;
# tests/storage/test_slack_tables.py fails when an upgrade of slack_sdk changes it. Token
# columns are TEXT rather than slack_sdk's VARCHAR(200), to hold our ciphertexts.


def _slack_table(name: str, *columns: sa.Column[Any], index: tuple[str, ...]) -> sa.Table:
    """A table of slack_sdk's: an integer id, `columns`, `installed_at`, and its index."""
    return sa.Table(
        name,
        Base.metadata,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        *columns,
        sa.Index(f"{name}_idx", *index),
    )


def _installed_at() -> sa.Column[Any]:
    return sa.Column("installed_at", sa.DateTime, nullable=False, default=sa.func.now())


def _bot_columns() -> list[sa.Column[Any]]:
    """The columns an installation and a bot share, after the enterprise's and team's."""
    return [
        sa.Column("team_id", sa.String(32)),
        sa.Column("team_name", sa.String(200)),
        sa.Column("bot_token", sa.Text),
        sa.Column("bot_id", sa.String(32)),
        sa.Column("bot_user_id", sa.String(32)),
        sa.Column("bot_scopes", sa.String(1000)),
        sa.Column("bot_refresh_token", sa.Text),
        sa.Column("bot_token_expires_at", sa.DateTime),
    ]


def _app_columns() -> list[sa.Column[Any]]:
    return [
        sa.Column("client_id", sa.String(32), nullable=False),
        sa.Column("app_id", sa.String(32), nullable=False),
        sa.Column("enterprise_id", sa.String(32)),
        sa.Column("enterprise_name", sa.String(200)),
    ]


SLACK_INSTALLATIONS: Final = _slack_table(
    "slack_installations",
    *_app_columns(),
    sa.Column("enterprise_url", sa.String(200)),
    *_bot_columns(),
    sa.Column("user_id", sa.String(32), nullable=False),
    sa.Column("user_token", sa.Text),
    sa.Column("user_scopes", sa.String(1000)),
    sa.Column("user_refresh_token", sa.Text),
    sa.Column("user_token_expires_at", sa.DateTime),
    sa.Column("incoming_webhook_url", sa.String(200)),
    sa.Column("incoming_webhook_channel", sa.String(200)),
    sa.Column("incoming_webhook_channel_id", sa.String(200)),
    sa.Column("incoming_webhook_configuration_url", sa.String(200)),
    sa.Column("is_enterprise_install", sa.Boolean, default=False, nullable=False),
    sa.Column("token_type", sa.String(32)),
    _installed_at(),
    index=("client_id", "enterprise_id", "team_id", "user_id", "installed_at"),
)
SLACK_BOTS: Final = _slack_table(
    "slack_bots",
    *_app_columns(),
    *_bot_columns(),
    sa.Column("is_enterprise_install", sa.Boolean, default=False, nullable=False),
    _installed_at(),
    index=("client_id", "enterprise_id", "team_id", "installed_at"),
)
SLACK_OAUTH_STATES: Final = sa.Table(
    "slack_oauth_states",
    Base.metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("state", sa.String(200), nullable=False),
    sa.Column("expire_at", sa.DateTime, nullable=False),
)
SLACK_TOKEN_COLUMNS: Final = {
    "bot_token": Purpose.SLACK_BOT_TOKEN,
    "bot_refresh_token": Purpose.SLACK_BOT_REFRESH_TOKEN,
    "user_token": Purpose.SLACK_USER_TOKEN,
    "user_refresh_token": Purpose.SLACK_USER_REFRESH_TOKEN,
}
"""Token column -> encryption purpose, in the Slack tables that have the column."""
