"""Each send's outcome as one log line and in the metrics, whichever process records it.

The services call `OutcomeLog` once where each outcome is recorded: sent, failed (refused
by OneSignal, or given up after retries), missed, expired, rejected, cancelled, and each
round that left a send unfinished (a retry planned, or a check of what OneSignal has). A
line carries the send's short id, workspace, app, state, attempts and reason as fields
(`bot.logs.logfmt`), never a key: the reasons are PushOps's own sentences about OneSignal's
answers, and the redacting log handler would catch a key in them anyway.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import datetime
from typing import Final

from bot.logs import Field, fields_of, logfmt
from bot.metrics import Metrics
from storage.models import Send, SendState

log = logging.getLogger(__name__)

MAX_REASON: Final = 1000
"""Characters of a reason kept in a log line (one listing 3,000 unknown ids runs to 48,000)."""

_TROUBLE: Final = frozenset({SendState.FAILED, SendState.MISSED})


class OutcomeLog:
    """Logs and counts what became of sends.

    Args:
        metrics: where outcomes, retries and lateness are counted; None logs only (a
            service built alone, as some tests do).
    """

    def __init__(self, metrics: Metrics | None = None) -> None:
        self.metrics = metrics

    def ended(
        self,
        send: Send,
        *,
        state: SendState | None = None,
        reason: str | None = None,
        by: str | None = None,
        before: SendState | None = None,
    ) -> None:
        """`send` reached `state` (default: its row's state), because of `reason`.

        `by`: who decided it (a cancel, a rejection); `before`: the state it left, when the
        row passed in is the one from before the change.
        """
        state = state or send.state
        partly = state == SendState.SENT and reason is not None
        fields: dict[str, Field] = {
            **_identity(send, state),
            "from": before.value if before else None,
            "by": by,
            "notification": send.notification_id if state == SendState.SENT else None,
            "reason": _short(reason),
        }
        level = logging.WARNING if state in _TROUBLE or partly else logging.INFO
        _emit(level, "send.outcome", fields)
        if self.metrics is not None:
            self.metrics.send_outcome(state, send.app_name)

    def held(self, send: Send, reason: str | None, *, retry: bool) -> None:
        """A round of `send` left it unfinished; the next starts at its lease's end.

        `retry`: the next round calls OneSignal's create again (same key), a `send.retry`;
        else it only asks OneSignal whether it has the send, a `send.check`.
        """
        fields: dict[str, Field] = {
            **_identity(send, send.state),
            "next_at": send.lease_until.isoformat() if send.lease_until else None,
            "reason": _short(reason),
        }
        _emit(logging.WARNING, "send.retry" if retry else "send.check", fields)
        if retry and self.metrics is not None:
            self.metrics.delivery_retries.inc()

    def attempting(self, send: Send, now: datetime) -> None:
        """An attempt of `send` calls OneSignal now; the first one tells how late it is."""
        if self.metrics is None or send.due_at is None or send.attempts > 1:
            return
        late = max(0.0, (now - send.due_at).total_seconds())
        self.metrics.delivery_lateness_seconds.observe(late)


def _identity(send: Send, state: SendState) -> dict[str, Field]:
    return {
        "send": send.short_id,
        "workspace": send.team_id,
        "app": send.app_name,
        "state": state.value,
        "attempts": send.attempts,
    }


def _short(reason: str | None) -> str | None:
    if reason is None or len(reason) <= MAX_REASON:
        return reason
    return reason[: MAX_REASON - 1] + "…"


def _emit(level: int, event: str, fields: Mapping[str, Field]) -> None:
    log.log(level, "%s %s", event, logfmt(fields), extra=fields_of({"event": event, **fields}))
