"""A notifier for tests: keeps every outcome the services report, and lets a test wait for one."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal, TypeAlias

from storage.models import Send

NoticeKind: TypeAlias = Literal[
    "send_delivered",
    "send_failed",
    "send_missed",
    "send_cancelled",
    "send_rejected",
    "send_held",
    "approval_expired",
    "approval_requested",
]


@dataclass(frozen=True)
class Notice:
    """One call a `RecordingNotifier` received: `reason` is a failure's reason or a cancel's
    outcome; `actor` who cancelled or rejected."""

    kind: NoticeKind
    send: Send
    reason: str | None = None
    actor: str | None = None


class RecordingNotifier:
    """Implements `bot.notifier.Notifier` by recording each call."""

    def __init__(self) -> None:
        self.notices: list[Notice] = []
        self._changed = asyncio.Condition()

    def of(self, kind: NoticeKind) -> list[Notice]:
        """The notices of one kind, in order."""
        return [notice for notice in self.notices if notice.kind == kind]

    async def wait_for(
        self, kind: NoticeKind, *, count: int = 1, seconds: float = 10.0
    ) -> list[Notice]:
        """Wait until `count` notices of `kind` arrived (TimeoutError after `seconds`)."""
        async with asyncio.timeout(seconds), self._changed:
            await self._changed.wait_for(lambda: len(self.of(kind)) >= count)
        return self.of(kind)

    async def _record(self, notice: Notice) -> None:
        async with self._changed:
            self.notices.append(notice)
            self._changed.notify_all()

    async def send_delivered(self, send: Send) -> None:
        """Record it."""
        await self._record(Notice("send_delivered", send))

    async def send_failed(self, send: Send, reason: str) -> None:
        """Record it."""
        await self._record(Notice("send_failed", send, reason))

    async def send_missed(self, send: Send) -> None:
        """Record it."""
        await self._record(Notice("send_missed", send))

    async def send_cancelled(self, send: Send, *, actor: str, outcome: str) -> None:
        """Record it."""
        await self._record(Notice("send_cancelled", send, outcome, actor))

    async def send_rejected(self, send: Send, *, approver: str) -> None:
        """Record it."""
        await self._record(Notice("send_rejected", send, actor=approver))

    async def send_held(self, send: Send) -> None:
        """Record it."""
        await self._record(Notice("send_held", send))

    async def approval_expired(self, send: Send) -> None:
        """Record it."""
        await self._record(Notice("approval_expired", send))

    async def approval_requested(self, send: Send, *, edited_by: str | None = None) -> None:
        """Record it."""
        await self._record(Notice("approval_requested", send))
