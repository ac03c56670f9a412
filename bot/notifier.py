"""How outcomes of sends reach people: the interface the Slack surface implements, and its relay.

Delivery and scheduling know nothing of Slack. They tell a `Notifier` what happened: every
end of a send (sent, failed, missed, cancelled, rejected, expired), a send held back for
approval when it was due, and an approval requested; `commands/` implements it with
messages. `NotifierRelay` is what the services hold: it forwards to whichever notifier is
plugged in (a logging `NullNotifier` until the Slack side plugs its own) and never lets a
notifier's error reach delivery.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from storage.models import Send

log = logging.getLogger(__name__)


class Notifier(Protocol):
    """What happened to a send, told to the people concerned (implemented by the Slack side).

    Each method gets the send's row as it is after the change. Implementations may be slow
    (Slack calls) and may fail; the services call them through a `NotifierRelay`, which logs
    a failure and goes on. Each change also wrote a notice of its news in its transaction
    (`storage.outbox.NOTICE`): an implementation settles it as it owes its messages, and
    tells a notice its process left untold (`commands.notify.SlackNotifier.render_notice`).
    """

    async def send_delivered(self, send: Send) -> None:
        """The send reached OneSignal (`sent`; its notification ids are in the row)."""

    async def send_failed(self, send: Send, reason: str) -> None:
        """The send failed, or was only partly delivered; `reason` says what and why.

        A partly delivered send is `sent` (its delivered batches can still be cancelled),
        and `reason` names both the batches that failed and those that went out.
        """

    async def send_missed(self, send: Send) -> None:
        """The send was found later than PUSHOPS_MISFIRE_GRACE and was not sent (`missed`)."""

    async def send_cancelled(self, send: Send, *, actor: str, outcome: str) -> None:
        """`actor` (a Slack user id) cancelled the send (`cancelled`, at its `finished_at`).

        `outcome` says what the cancel did, in words for people: stopped before it left,
        or OneSignal asked to stop what it had accepted.
        """

    async def send_rejected(self, send: Send, *, approver: str) -> None:
        """`approver` rejected the send (`rejected`, at its `finished_at`)."""

    async def send_held(self, send: Send) -> None:
        """The send was due, but the approval policy in force asks for approvals it lacks
        (it was scheduled under an older policy): it went to `pending_approval` instead of
        out; approvers should be asked, and its requester told."""

    async def approval_expired(self, send: Send) -> None:
        """Nobody decided within PUSHOPS_APPROVAL_TTL (`expired`)."""

    async def approval_requested(self, send: Send, *, edited_by: str | None = None) -> None:
        """The send entered `pending_approval`; approvers should be asked (again, after
        `edited_by` changed it: the approvals given before no longer count)."""


class NullNotifier:
    """The notifier until the Slack side plugs in its own: it only logs."""

    async def send_delivered(self, send: Send) -> None:
        """Log the delivery."""
        log.info("send %s delivered (notification %s)", send.short_id, send.notification_id)

    async def send_failed(self, send: Send, reason: str) -> None:
        """Log the failure."""
        log.warning("send %s failed: %s", send.short_id, reason)

    async def send_missed(self, send: Send) -> None:
        """Log the miss."""
        log.warning("send %s missed: found later than the misfire grace", send.short_id)

    async def send_cancelled(self, send: Send, *, actor: str, outcome: str) -> None:
        """Log the cancel."""
        log.info("send %s cancelled by %s", send.short_id, actor)

    async def send_rejected(self, send: Send, *, approver: str) -> None:
        """Log the rejection."""
        log.info("send %s rejected by %s", send.short_id, approver)

    async def send_held(self, send: Send) -> None:
        """Log the hold."""
        log.info("send %s held for approval at its due time", send.short_id)

    async def approval_expired(self, send: Send) -> None:
        """Log the expiry."""
        log.info("approval of send %s expired", send.short_id)

    async def approval_requested(self, send: Send, *, edited_by: str | None = None) -> None:
        """Log the request."""
        log.info("send %s awaits approval", send.short_id)


class NotifierRelay:
    """The notifier the services hold: forwards to `target`, and never raises.

    The Slack side plugs in its notifier with `relay.target = SlackNotifier(...)` (or
    `Services.notifier.target = ...`) once its client exists. A notifier that raises is
    logged and ignored: a delivered send stays delivered whatever Slack says.
    """

    def __init__(self, target: Notifier | None = None) -> None:
        self.target: Notifier = target if target is not None else NullNotifier()

    async def send_delivered(self, send: Send) -> None:
        """Forward to the target; never raises."""
        await self._guarded("send_delivered", send, lambda: self.target.send_delivered(send))

    async def send_failed(self, send: Send, reason: str) -> None:
        """Forward to the target; never raises."""
        await self._guarded("send_failed", send, lambda: self.target.send_failed(send, reason))

    async def send_missed(self, send: Send) -> None:
        """Forward to the target; never raises."""
        await self._guarded("send_missed", send, lambda: self.target.send_missed(send))

    async def send_cancelled(self, send: Send, *, actor: str, outcome: str) -> None:
        """Forward to the target; never raises."""
        await self._guarded(
            "send_cancelled",
            send,
            lambda: self.target.send_cancelled(send, actor=actor, outcome=outcome),
        )

    async def send_rejected(self, send: Send, *, approver: str) -> None:
        """Forward to the target; never raises."""
        await self._guarded(
            "send_rejected", send, lambda: self.target.send_rejected(send, approver=approver)
        )

    async def send_held(self, send: Send) -> None:
        """Forward to the target; never raises."""
        await self._guarded("send_held", send, lambda: self.target.send_held(send))

    async def approval_expired(self, send: Send) -> None:
        """Forward to the target; never raises."""
        await self._guarded("approval_expired", send, lambda: self.target.approval_expired(send))

    async def approval_requested(self, send: Send, *, edited_by: str | None = None) -> None:
        """Forward to the target; never raises."""
        await self._guarded(
            "approval_requested",
            send,
            lambda: self.target.approval_requested(send, edited_by=edited_by),
        )

    async def _guarded(self, kind: str, send: Send, call: Callable[[], Awaitable[None]]) -> None:
        try:
            await call()
        except Exception:  # broad: a notifier's failure must never undo a delivery
            log.exception("could not tell Slack about send %s (%s)", send.short_id, kind)
