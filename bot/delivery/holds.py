"""The approval policy asked again when a send is due: a send scheduled under an older policy
goes to approval instead of out when the policy in force by then asks for more approvals.

A send counts its approvals when it is asked for (`bot.policy.approvals_required`). Approvals
switched on (or made stricter) after it was scheduled would otherwise let it go out unapproved.
So before its first attempt, once claimed, a send is checked against the policy in force: one
that lacks approvals goes back to `pending_approval` (its claim given up, due as soon as it is
approved; approvals it already has still count), and the approvers and the requester are told.
A stored policy that cannot be read fails the send instead: nothing goes out without the
approval the admins asked for. A send already tried once (a retry, a take-over) is not held:
part of it may have reached OneSignal.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from bot.cache import Expiring
from bot.delivery.attempt import notification_ids
from bot.policy import ApprovalPolicy, PolicyError, approvals_required
from storage import queries, workspaces
from storage.db import Database
from storage.models import Send, SendState

log = logging.getLogger(__name__)

POLICY_TTL: Final = 5.0
"""Seconds a workspace's approval policy is reused here; `/push setup` in this process drops
it at once when it changes the policy (`ApprovalGate.forget`)."""

Stored = ApprovalPolicy | PolicyError
"""A workspace's policy as read: the policy, or why the stored one cannot be read."""


def _tried(send: Send) -> bool:
    """Whether an attempt of `send` may have reached OneSignal before (a retry, a take-over):
    then it is never held back."""
    return send.attempts > 1 or bool(send.batches or send.last_error or notification_ids(send))


class ApprovalGate:
    """Checks claimed sends against the approval policy in force (see the module)."""

    def __init__(self, database: Database) -> None:
        self.database = database
        self._policies: Expiring[str, Stored] = Expiring()

    def forget(self, team_id: str) -> None:
        """Read the workspace's policy afresh next time (it was just changed)."""
        self._policies.forget(team_id)

    async def check(self, send: Send, *, actor: str, now: datetime) -> Send | None:
        """None when the claimed `send` may go; otherwise its row after it was held back
        (`pending_approval`), failed (`failed`: the stored policy cannot be read) or, moved
        meanwhile by someone else (a cancel), as it is now."""
        if send.state != SendState.SENDING or _tried(send):
            return None
        policy = await self._policy(send.team_id)
        if isinstance(policy, PolicyError):
            return await self._fail(send, str(policy), actor=actor, now=now)
        needed = approvals_required(policy, send.audience, is_test=send.is_test)
        if needed <= send.approvals_received:
            return None
        return await self._hold(send, needed, actor=actor)

    async def _policy(self, team_id: str) -> Stored:
        async def read() -> tuple[Stored, float | None]:
            async with self.database.sessions() as session:
                workspace = await workspaces.get_workspace(session=session, team_id=team_id)
            try:
                return ApprovalPolicy.from_settings(workspace.settings if workspace else {}), (
                    POLICY_TTL
                )
            except PolicyError as error:
                return error, POLICY_TTL

        return await self._policies.get(team_id, read)

    async def _hold(self, send: Send, needed: int, *, actor: str) -> Send | None:
        values = {
            "approvals_required": needed,
            "due_at": None,  # due once approved
            "claimed_by": None,
            "claimed_at": None,
            "attempts": max(send.attempts - 1, 0),  # the claim was no attempt
        }
        details = {
            "held": "the approval policy in force asks for approvals",
            "approvals_required": needed,
            "was_due": send.due_at.isoformat() if send.due_at else None,
        }
        log.info("send %s held for %d approvals at its due time", send.short_id, needed)
        return await self._move(send, SendState.PENDING_APPROVAL, actor, values, details)

    async def _fail(self, send: Send, problem: str, *, actor: str, now: datetime) -> Send | None:
        reason = f"{problem}. Nothing was sent."
        values = {"last_error": reason, "finished_at": now}
        log.warning("send %s not sent: %s", send.short_id, problem)
        return await self._move(send, SendState.FAILED, actor, values, {"reason": reason})

    async def _move(
        self,
        send: Send,
        new: SendState,
        actor: str,
        values: Mapping[str, object],
        details: Mapping[str, object],
    ) -> Send | None:
        # Its news is owed with the move: a process dying before telling leaves a notice.
        notice: queries.Notice = ("held", {})
        if new == SendState.FAILED:
            notice = ("failed", {"reason": str(values["last_error"])})
        async with self.database.sessions.begin() as session:
            await queries.transition_send(
                session=session,
                team_id=send.team_id,
                send_id=send.id,
                expected=SendState.SENDING,
                new=new,
                actor=actor,
                values=values,
                details=details,
                notice=notice,
            )
        async with self.database.sessions() as session:
            return await queries.get_send(session=session, team_id=send.team_id, send_id=send.id)
