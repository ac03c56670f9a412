"""Editing an upcoming send: new content, audience, app, options or time for the same send.

An edit is not a move of the state machine's own: the send keeps its id (OneSignal's
idempotency key), its short id and its requester, and it is changed only while it is
`scheduled` or `pending_approval`, by a compare-and-set on the row locked for the whole
transaction (`FOR UPDATE` on PostgreSQL; SQLite's write transaction holds the database), so an
edit and a claim for delivery cannot both win. Under an approval policy an edit voids the
approvals given so far (their rows are deleted) and the send waits for approval again; without
one it is scheduled. The audit event `send.edited`, in the same transaction, names what changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import append_audit
from storage.errors import AppNotFound, NotEditable
from storage.models import Approval, OneSignalApp, Send, SendState, utcnow
from storage.queries import lock_send
from storage.sql import json_safe, rowcount

EDITABLE: Final = frozenset({SendState.SCHEDULED, SendState.PENDING_APPROVAL})
"""The states in which a send may still be edited: it has not started going out."""


@dataclass(frozen=True, kw_only=True)
class SendEdit:
    """What a send becomes: its content, audience and options as their models' JSON, its app,
    and when it is due (None: as soon as it may go)."""

    app: OneSignalApp
    content: Mapping[str, Any]
    audience: Mapping[str, Any]
    options: Mapping[str, Any]
    due_at: datetime | None


@dataclass(frozen=True)
class Edited:
    """An edit that was saved: the send as it is now, what changed, the state it left."""

    send: Send
    changed: tuple[str, ...]
    was: SendState


async def edit_send(
    *,
    session: AsyncSession,
    team_id: str,
    send_id: uuid.UUID,
    edit: SendEdit,
    actor: str,
    approvals_required: int,
) -> Edited:
    """Change the upcoming send `send_id` to `edit`, audited `send.edited`.

    `approvals_required` is what the workspace's policy asks of the edited send: above zero
    it waits for approval again (approvals given before are void), else it is scheduled.
    An edit that changes nothing leaves the send as it was (and writes nothing). Raises
    `NoSuchSend`, and `NotEditable` when the send is no longer scheduled or pending approval
    (then nothing is changed).
    """
    if edit.app.team_id != team_id:
        raise AppNotFound(team_id, edit.app.name)
    send = await _locked(session, team_id, send_id)
    was = send.state
    now = utcnow()
    values = _values(edit, now if approvals_required == 0 else None)
    changed = _changed(send, values)
    if not changed:
        return Edited(send, (), was)
    state = SendState.PENDING_APPROVAL if approvals_required > 0 else SendState.SCHEDULED
    details = _details(send, changed, was, state, values)  # before the row shows the edit
    values |= {
        "state": state,
        "approvals_required": approvals_required,
        "approvals_received": 0,
        "updated_at": now,
    }
    result = await session.execute(
        sa.update(Send)
        .where(Send.id == send_id, Send.team_id == team_id, Send.state == was)
        .values(**values)
        .execution_options(synchronize_session="fetch")
    )
    if rowcount(result) != 1:  # unreachable under the row lock; kept as the CAS it is
        raise NotEditable(send.short_id, was.value)
    await session.execute(
        sa.delete(Approval).where(Approval.team_id == team_id, Approval.send_id == send_id)
    )
    await append_audit(
        session=session,
        team_id=team_id,
        actor=actor,
        action="send.edited",
        target=f"send {send.short_id}",
        details=details,
    )
    await session.refresh(send)
    return Edited(send, changed, was)


async def _locked(session: AsyncSession, team_id: str, send_id: uuid.UUID) -> Send:
    """The send, its row locked until the transaction ends; refused unless editable."""
    send = await lock_send(session=session, team_id=team_id, send_id=send_id)
    if send.state not in EDITABLE:
        raise NotEditable(send.short_id, send.state.value)
    return send


def _values(edit: SendEdit, now: datetime | None) -> dict[str, Any]:
    """The columns of the edited send; a scheduled send without a time is due `now`."""
    return {
        "app_ref": edit.app.id,
        "app_name": edit.app.name,
        "content": json_safe(edit.content, "content"),
        "audience": json_safe(edit.audience, "audience"),
        "options": json_safe(edit.options, "options"),
        "due_at": edit.due_at if edit.due_at is not None else now,
    }


_FIELDS: Final = {
    "app_name": "app",
    "content": "content",
    "audience": "audience",
    "options": "options",
    "due_at": "due_at",
}


def _changed(send: Send, values: Mapping[str, Any]) -> tuple[str, ...]:
    """The names of what the edit changes (`app`, `content`, `audience`, `options`, `due_at`)."""
    return tuple(
        name
        for column, name in _FIELDS.items()
        if _trimmed(getattr(send, column)) != _trimmed(values[column])
    )


def _trimmed(value: Any) -> Any:
    """`value` without its empty entries: a send stored with `"external_ids": []` (or by an
    older version, without it) says the same as one without."""
    if isinstance(value, Mapping):
        kept = {key: _trimmed(item) for key, item in value.items()}
        return {key: item for key, item in kept.items() if item not in (None, "", [], {})}
    return value


def _details(
    send: Send,
    changed: tuple[str, ...],
    was: SendState,
    state: SendState,
    values: Mapping[str, Any],
) -> dict[str, Any]:
    details: dict[str, Any] = {
        "send_id": str(send.id),
        "changed": list(changed),
        "from": was.value,
        "to": state.value,
    }
    if "due_at" in changed:
        old, new = send.due_at, values["due_at"]
        details["due_at"] = {
            "old": old.isoformat() if old else None,
            "new": new.isoformat() if new else None,
        }
    if "app" in changed:
        details["app"] = {"old": send.app_name, "new": values["app_name"]}
    return details
