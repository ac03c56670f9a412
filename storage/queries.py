"""Sends and approvals.

Workspaces, OneSignal apps and members are in `storage.workspaces`; claims, leases and sweeps
of sends in `storage.claims`. Conventions, which the other storage modules (workspaces,
claims, deliveries, audit, links, lookups, requests, rotation) keep too:
- Functions taking a `session` run inside the caller's transaction and never commit:
  `async with database.sessions.begin() as session: ...` makes one unit of work.
- Functions taking a `session_factory` (claims, sweeps, key rotation) open their own short
  transactions, because they must be safe with several processes doing the same.
- Every read of tenant data takes `team_id`; an id from another workspace is "not found".
- Every change of a send's state goes through `transition_send` (or a claim/sweep built on
  the same compare-and-set) and writes its audit event in the same transaction.
"""

from __future__ import annotations

import sqlite3
import uuid
from collections.abc import Callable, Collection, Mapping
from datetime import datetime
from typing import Any, Final, Literal, TypeAlias, cast

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import make_transient_to_detached

from storage import ids, outbox
from storage.audit import (
    AuditEntry,
    append_audit,
    append_audit_entries,
    get_audit_event,
    iter_audit_events,
    list_audit_events,
    redact,
)
from storage.audit_chain import ChainBreak, ChainReport, verify_audit_chain
from storage.claims import Claim
from storage.errors import (
    AlreadyDecided,
    AppNotFound,
    IllegalTransition,
    InvalidInput,
    NoSuchSend,
    SelfApproval,
    ShortIdExhausted,
    WorkspaceNotFound,
)
from storage.links import (
    get_linked_external_id,
    set_linked_external_id,
    unlink_external_id,
    validate_external_id,
)
from storage.models import (
    TRANSITIONS,
    Approval,
    Decision,
    OneSignalApp,
    Send,
    SendState,
    utcnow,
)
from storage.notifications import find_notification
from storage.sql import json_safe, rowcount

__all__ = [
    "AuditEntry",
    "ChainBreak",
    "ChainReport",
    "SendOrder",
    "append_audit",
    "append_audit_entries",
    "cancel_send",
    "count_sends",
    "create_send",
    "find_send",
    "get_audit_event",
    "get_linked_external_id",
    "get_send",
    "iter_audit_events",
    "list_approvals",
    "list_audit_events",
    "list_sends",
    "lock_send",
    "record_approval",
    "redact",
    "set_linked_external_id",
    "transition_send",
    "unlink_external_id",
    "validate_external_id",
    "verify_audit_chain",
]

Notice: TypeAlias = tuple[str, Mapping[str, Any]]
"""The news a change of a send owes people: its outcome and what telling it needs
(`outbox.notice_entry`)."""

SendOrder: TypeAlias = Literal["created", "due", "finished"]
"""How `list_sends` orders: newest created, soonest due, or latest finished first."""

_SEND_ORDERS: Final[dict[str, tuple[sa.ColumnElement[Any], ...]]] = {
    "created": (Send.created_at.desc(),),
    "due": (sa.func.coalesce(Send.due_at, Send.created_at).asc(),),
    "finished": (sa.func.coalesce(Send.finished_at, Send.due_at, Send.created_at).desc(),),
}
_SHORT_ID_ATTEMPTS: Final = 8
_FINISHING: Final = frozenset(
    {SendState.SENT, SendState.FAILED, SendState.CANCELLED, SendState.REJECTED, SendState.EXPIRED}
)
# What a transition's `values` may not touch: identity, tenancy, and the state itself.
_PROTECTED_COLUMNS: Final = frozenset({"id", "team_id", "short_id", "state", "created_at"})


# --- sends ------------------------------------------------------------------------------------


async def create_send(
    *,
    session: AsyncSession,
    team_id: str,
    requester_id: str,
    app: OneSignalApp,
    content: Mapping[str, Any],
    audience: Mapping[str, Any],
    options: Mapping[str, Any] | None = None,
    state: SendState = SendState.DRAFT,
    due_at: datetime | None = None,
    timezone: str = "UTC",
    approvals_required: int = 0,
    is_test: bool = False,
    claim: Claim | None = None,
    submission: str | None = None,
    new_short_id: Callable[[], str] = ids.new_short_id,
) -> Send:
    """Store a new send with a fresh short id (unique in the workspace); audited.

    `content` and `audience` are the validated models' JSON; `state` is where the send starts
    (draft, pending_approval or scheduled); a scheduled send without `due_at` is due now.
    With `claim`, a scheduled send due now is also claimed in the same transaction (scheduled
    -> sending, as `claim_due_sends` would): the worker that took the request delivers it,
    and no scheduler takes it meanwhile unless that worker's lease runs out. Both steps are
    audited, `send.created` then `send.sending`.

    `submission` names the request (a compose form's view id) so that repeating it stores
    nothing: the send it stored already is returned instead, marked `replayed`, whichever
    process the repeat reached (the database's unique (team, submission) decides).
    """
    if app.team_id != team_id:
        raise AppNotFound(team_id, app.name)
    if state not in {SendState.DRAFT, SendState.PENDING_APPROVAL, SendState.SCHEDULED}:
        raise IllegalTransition(f"A send cannot start as {state.value}.")
    now = utcnow()
    if state == SendState.SCHEDULED and due_at is None:
        due_at = now
    fields: dict[str, Any] = {
        "team_id": team_id,
        "app_ref": app.id,
        "app_name": app.name,
        "requester_id": requester_id,
        "content": json_safe(content, "content"),
        "audience": json_safe(audience, "audience"),
        "options": json_safe(options or {}, "options"),
        "state": state,
        "due_at": due_at,
        "timezone": timezone,
        "approvals_required": approvals_required,
        "is_test": is_test,
        "submission": submission,
    }
    if claim is not None:
        if state != SendState.SCHEDULED or due_at is None or due_at > now:
            raise IllegalTransition("Only a send scheduled for now is claimed as it is created.")
        fields |= claim.columns(now)
    if submission is not None:
        stored = await _submitted_send(session, team_id, submission)
        if stored is not None:
            return stored
    send = await _insert_with_short_id(session, fields, new_short_id)
    if send.replayed:  # stored meanwhile by a concurrent transaction
        return send
    target = f"send {send.short_id}"
    entries = [
        AuditEntry(
            requester_id, "send.created", target, "ok", send_summary(send) | {"state": state.value}
        )
    ]
    if claim is not None:
        moved = {"send_id": str(send.id), "from": state.value, "to": send.state.value}
        entries.append(
            AuditEntry(
                f"worker:{claim.worker_id}", "send.sending", target, "ok", moved | {"attempt": 1}
            )
        )
    await append_audit_entries(session=session, team_id=team_id, entries=entries)
    return send


async def _insert_with_short_id(
    session: AsyncSession, fields: dict[str, Any], new_short_id: Callable[[], str]
) -> Send:
    """Insert the send under a short id free in its workspace; the row as a `Send`.

    A short id already taken in the workspace inserts nothing, and the next attempt draws
    another. The row is built here rather than read back, and the statement is built once,
    so it is compiled once: this runs before the ack, and the ORM's flush took several
    times the CPU. A row refused because its submission was stored meanwhile (another
    transaction, on PostgreSQL) is not a short id taken: that send is returned, `replayed`.
    """
    now = utcnow()
    row = new_send_row(now) | fields
    for _ in range(_SHORT_ID_ATTEMPTS):
        row |= {"id": uuid.uuid4(), "short_id": new_short_id()}
        if await insert_send_row(session, row):
            send = Send(**row)
            make_transient_to_detached(send)  # as if read from the table…
            session.add(send)  # …in this session: persistent, nothing left to flush
            return send
        if row["submission"] is not None:
            stored = await _submitted_send(session, row["team_id"], row["submission"])
            if stored is not None:
                return stored
    raise ShortIdExhausted("No free short id was found for this send; try again.")


async def insert_send_row(session: AsyncSession, row: dict[str, Any]) -> bool:
    """Insert `row`; False when a unique key of it is taken (nothing inserted).

    On PostgreSQL the attempt runs in a savepoint, so a refusal costs only this attempt.
    A missing workspace raises WorkspaceNotFound; any other refusal (a database that refuses
    writes) comes out as it is.
    """
    sqlite = session.get_bind().dialect.name == "sqlite"
    try:
        if sqlite:
            result = await session.execute(_INSERT_SEND_OR_IGNORE, row)
            return getattr(result, "rowcount", 0) == 1
        async with session.begin_nested():
            await session.execute(_INSERT_SEND, row)
        return True
    except IntegrityError as error:
        if _is_foreign_key_violation(error):
            raise WorkspaceNotFound(row["team_id"]) from None
        if sqlite:  # OR IGNORE skips a taken unique key: this is something else
            raise
        return False  # a unique key is taken: the short id, or the submission


async def _submitted_send(session: AsyncSession, team_id: str, submission: str) -> Send | None:
    """The send `submission` stored in the workspace, marked `replayed`; None if none yet.

    Read in the caller's write transaction: on SQLite that holds the only write lock, so
    no other process can store it between this read and the insert that follows.
    """
    query = sa.select(Send).where(Send.team_id == team_id, Send.submission == submission)
    stored = (await session.scalars(query)).one_or_none()
    if stored is not None:
        stored.replayed = True
    return stored


def new_send_row(now: datetime) -> dict[str, Any]:
    """Every column of a new send row, with its value unless `create_send` gives one.

    Fresh containers each time: the row becomes the `Send` object handed to the caller.
    """
    return {
        "app_ref": None,
        "app_name": "",
        "content": {},
        "audience": {},
        "options": {},
        "is_test": False,
        "due_at": None,
        "timezone": "UTC",
        "state": SendState.DRAFT,
        "approvals_required": 0,
        "approvals_received": 0,
        "notification_id": None,
        "batches": [],
        "slack_messages": {},
        "last_error": None,
        "attempts": 0,
        "claimed_by": None,
        "claimed_at": None,
        "lease_until": None,
        "finished_at": None,
        "submission": None,
        "series_id": None,
        "occurrence_at": None,
        "counters_due_at": None,
        "created_at": now,
        "updated_at": now,
    }


_INSERT_SEND: Final = sa.insert(cast(sa.Table, Send.__table__))
# INSERT OR IGNORE skips a row whose short id is taken (the unique constraint) and still fails
# on a missing workspace (SQLite never ignores foreign keys). SQLAlchemy does not cache a
# statement with ON CONFLICT, and compiling it each time cost more than the rest of the insert.
_INSERT_SEND_OR_IGNORE: Final = _INSERT_SEND.prefix_with("OR IGNORE", dialect="sqlite")
_PG_FOREIGN_KEY_VIOLATION: Final = "23503"


def _is_foreign_key_violation(error: IntegrityError) -> bool:
    original = error.orig
    if getattr(original, "sqlstate", None) == _PG_FOREIGN_KEY_VIOLATION:
        return True
    return getattr(original, "sqlite_errorcode", None) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY


def send_summary(send: Send) -> dict[str, Any]:
    audience = send.audience
    return {
        "send_id": str(send.id),
        "app": send.app_name,
        "state": send.state.value,
        "due_at": send.due_at.isoformat() if send.due_at else None,
        "test": send.is_test,
        "segments": audience.get("segments", audience.get("included_segments", [])),
        "external_ids": len(audience.get("external_ids", audience.get("users", [])) or []),
    } | _what_it_says(send)


def _what_it_says(send: Send) -> dict[str, Any]:
    """The template, languages and delivery options of a send, when it has any."""
    said: dict[str, Any] = {}
    template = send.content.get("template")
    if isinstance(template, dict):
        said["template"] = {"id": template.get("id"), "name": template.get("name")}
    languages = send.content.get("languages")
    if isinstance(languages, dict) and languages:
        said["languages"] = ["en", *languages]
    if send.options:
        said["options"] = send.options
    return said


async def get_send(*, session: AsyncSession, team_id: str, send_id: uuid.UUID) -> Send | None:
    """The send with UUID `send_id`, only if it belongs to the workspace."""
    query = sa.select(Send).where(Send.id == send_id, Send.team_id == team_id)
    return (await session.scalars(query)).one_or_none()


async def find_send(*, session: AsyncSession, team_id: str, ref: str) -> Send | None:
    """The send `ref` names in the workspace: a short id (as typed) or a OneSignal id.

    A OneSignal id matches the first batch's `notification_id`, or any later batch's.
    """
    short_id = ids.normalize_short_id(ref)
    if short_id is not None:
        query = sa.select(Send).where(Send.team_id == team_id, Send.short_id == short_id)
        found = (await session.scalars(query)).one_or_none()
        if found is not None:
            return found
    try:
        notification_id = str(uuid.UUID(ref.strip().strip("`")))
    except ValueError:
        return None
    query = sa.select(Send).where(Send.team_id == team_id, Send.notification_id == notification_id)
    found = (await session.scalars(query.limit(1))).one_or_none()
    if found is not None:
        return found
    # Later batches: their ids are in `send_notifications`, an indexed read (not the JSON).
    send_id = await find_notification(
        session=session, team_id=team_id, notification_id=notification_id
    )
    return (
        None
        if send_id is None
        else await get_send(session=session, team_id=team_id, send_id=send_id)
    )


async def list_sends(
    *,
    session: AsyncSession,
    team_id: str,
    states: Collection[SendState] | None = None,
    app_ref: uuid.UUID | None = None,
    app_name: str | None = None,
    requester_id: str | None = None,
    order: SendOrder = "created",
    limit: int = 20,
) -> list[Send]:
    """The workspace's first `limit` sends in `order`, optionally filtered.

    `order`: "created", newest first; "due", soonest due first (a send without a due time,
    waiting for approval, counts from its creation); "finished", the latest to end first
    (by the moment a list shows: when it finished, else when it was due).
    Filters and order are in the query, so the limit cuts only what would not be shown.
    """
    query = sa.select(Send).where(Send.team_id == team_id)
    if states:
        query = query.where(Send.state.in_(list(states)))
    if app_ref is not None:
        query = query.where(Send.app_ref == app_ref)
    if app_name is not None:
        query = query.where(Send.app_name == app_name)
    if requester_id is not None:
        query = query.where(Send.requester_id == requester_id)
    query = query.order_by(*_SEND_ORDERS[order], Send.id).limit(limit)
    return list(await session.scalars(query))


async def count_sends(
    *, session: AsyncSession, states: Collection[SendState]
) -> dict[SendState, int]:
    """How many sends of all workspaces are in each of `states` now (for the metrics).

    Counts only, never a row: the one reading across workspaces that says nothing of any.
    """
    query = (
        sa.select(Send.state, sa.func.count())
        .where(Send.state.in_(list(states)))
        .group_by(Send.state)
    )
    found = {state: 0 for state in states}
    for state, count in (await session.execute(query)).tuples():
        found[state] = count
    return found


def _as_states(expected: SendState | Collection[SendState]) -> frozenset[SendState]:
    return frozenset({expected}) if isinstance(expected, SendState) else frozenset(expected)


def check_transition(expected: Collection[SendState], new: SendState) -> None:
    """Raise `IllegalTransition` unless every state in `expected` may move to `new`."""
    for state in expected:
        if new not in TRANSITIONS[state]:
            raise IllegalTransition(f"A send cannot go from {state.value} to {new.value}.")


async def transition_send(
    *,
    session: AsyncSession,
    team_id: str,
    send_id: uuid.UUID,
    expected: SendState | Collection[SendState],
    new: SendState,
    actor: str,
    values: Mapping[str, Any] | None = None,
    details: Mapping[str, Any] | None = None,
    notice: Notice | None = None,
) -> bool:
    """Move a send from `expected` to `new` by compare-and-set; True when this call won.

    False when the send is not in this workspace or no longer in `expected` (someone else
    moved it first). `values` sets other columns in the same UPDATE (e.g. `notification_id`,
    `last_error`, `due_at`). The audit event `send.<new>` is written in the same transaction,
    and so is the move's `notice` (outcome, args), when people are owed its news
    (`outbox.NOTICE`): told even if the process dies before its notifier runs.
    """
    states = _as_states(expected)
    check_transition(states, new)
    bad = _PROTECTED_COLUMNS.intersection(values or {})
    if bad:
        raise InvalidInput(f"A transition cannot change {', '.join(sorted(bad))}.")
    # Read (and on PostgreSQL lock) the row for the audit event's "from"; the UPDATE below is
    # still the compare-and-set that decides.
    row = (
        await session.execute(
            sa.select(Send.state, Send.short_id, Send.requester_id)
            .where(Send.id == send_id, Send.team_id == team_id)
            .with_for_update()
        )
    ).one_or_none()
    if row is None or row.state not in states:
        return False
    changes = _transition_changes(row.state, new, values)
    result = await session.execute(
        sa.update(Send)
        .where(Send.id == send_id, Send.team_id == team_id, Send.state == row.state)
        .values(**changes)
        .execution_options(synchronize_session="fetch")
    )
    if rowcount(result) != 1:
        return False
    if notice is not None:
        changed = outbox.Changed(send_id, team_id, row.requester_id, changes["updated_at"])
        await outbox.owe_notice(session=session, send=changed, outcome=notice[0], args=notice[1])
    await append_audit(
        session=session,
        team_id=team_id,
        actor=actor,
        action=f"send.{new.value}",
        target=f"send {row.short_id}",
        details={
            "send_id": str(send_id),
            "from": row.state.value,
            "to": new.value,
            **(details or {}),
        },
    )
    return True


def _transition_changes(
    old: SendState, new: SendState, values: Mapping[str, Any] | None
) -> dict[str, Any]:
    now = utcnow()
    changes: dict[str, Any] = {"state": new, "updated_at": now, **(values or {})}
    if new in _FINISHING:
        changes.setdefault("finished_at", now)
    if old == SendState.SENDING:  # the claim ends with the move
        changes.setdefault("lease_until", None)
    return changes


async def cancel_send(
    *,
    session: AsyncSession,
    team_id: str,
    send_id: uuid.UUID,
    actor: str,
    reason: str | None = None,
    notice: Notice | None = None,
) -> bool:
    """Cancel a send not yet delivered (or being delivered); False when it was too late.
    `notice`: as `transition_send`'s."""
    cancellable = [state for state, nexts in TRANSITIONS.items() if SendState.CANCELLED in nexts]
    cancellable = [state for state in cancellable if state != SendState.SENT]
    return await transition_send(
        session=session,
        team_id=team_id,
        send_id=send_id,
        expected=cancellable,
        new=SendState.CANCELLED,
        actor=actor,
        details={"reason": reason} if reason else None,
        notice=notice,
    )


# --- approvals --------------------------------------------------------------------------------


async def record_approval(
    *,
    session: AsyncSession,
    team_id: str,
    send_id: uuid.UUID,
    approver_id: str,
    decision: Decision,
    reason: str | None = None,
) -> Send:
    """Record an approver's decision on a send pending approval; returns the updated send.

    The requester cannot approve their own send; each approver answers once. The send's row
    stays locked until the caller's transaction ends, so moving it on (scheduled when
    `approvals_received` reaches `approvals_required`, rejected on a reject) with
    `transition_send` in the same transaction cannot lose a race to a cancel. Raises
    `IllegalTransition` when the send is no longer pending approval.
    """
    send = await _pending_send(session, team_id, send_id, approver_id)
    try:
        async with session.begin_nested():
            session.add(
                Approval(
                    team_id=team_id,
                    send_id=send_id,
                    approver_id=approver_id,
                    decision=decision,
                    reason=reason,
                )
            )
    except IntegrityError:
        raise AlreadyDecided(f"You already answered for send {send.short_id}.") from None
    if decision == Decision.APPROVE:
        await session.execute(
            sa.update(Send)
            .where(Send.id == send_id, Send.team_id == team_id)
            .values(approvals_received=Send.approvals_received + 1, updated_at=utcnow())
            .execution_options(synchronize_session="fetch")
        )
    await append_audit(
        session=session,
        team_id=team_id,
        actor=approver_id,
        action=f"approval.{decision.value}",
        target=f"send {send.short_id}",
        details={"send_id": str(send_id), "reason": reason},
    )
    await session.refresh(send)
    return send


async def _pending_send(
    session: AsyncSession, team_id: str, send_id: uuid.UUID, approver_id: str
) -> Send:
    # Locked (on PostgreSQL; SQLite's write transaction holds the whole database) until the
    # decision commits: a cancel or expiry racing it waits, then finds the send decided, and
    # a decision that comes second finds the send moved on and records nothing.
    send = await lock_send(session=session, team_id=team_id, send_id=send_id)
    if send.state != SendState.PENDING_APPROVAL:
        raise IllegalTransition(
            f"Send {send.short_id} is {send.state.value}, not pending approval."
        )
    if approver_id == send.requester_id:
        raise SelfApproval(f"You requested send {send.short_id}; someone else has to approve it.")
    return send


async def lock_send(*, session: AsyncSession, team_id: str, send_id: uuid.UUID) -> Send:
    """The send, read afresh and its row locked until the caller's transaction ends (on
    PostgreSQL; SQLite's write transaction holds the whole database); `NoSuchSend`."""
    query = (
        sa.select(Send)
        .where(Send.id == send_id, Send.team_id == team_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    send = (await session.scalars(query)).one_or_none()
    if send is None:
        raise NoSuchSend(team_id, str(send_id))
    return send


async def list_approvals(
    *, session: AsyncSession, team_id: str, send_id: uuid.UUID
) -> list[Approval]:
    """The decisions on a send, oldest first."""
    query = sa.select(Approval).where(Approval.team_id == team_id, Approval.send_id == send_id)
    return list(await session.scalars(query.order_by(Approval.created_at)))
