"""Refusals of authenticated people, in the audit log: one `<area>.denied` event per refusal.

Each event says who (`actor`), what they tried (`details.what`, and the send or app as
`target`) and why it was refused (`details.why`: `not_admin`, `not_approver`, `own_send`,
`guest`, `other_workspace`...). A person repeating a refused action (a loop, a script) writes
at most one event per action per `Services.denials` window; the next event carries how many
were held back meanwhile (`details.suppressed`). The write waits for the acks of the moment
and never holds up an answer: a refusal is told first, audited right after.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from bot.delivery import Send
from bot.services import Services
from commands.context import CommandError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Denial:
    """A refused action of someone Slack vouched for.

    Attributes:
        team_id / user_id: the workspace the request was for, and who made it.
        area: the part of PushOps (`setup`, `approval`, `send`, `cancel`, `user`...); the
            event's action is `<area>.denied`.
        what: the action refused, in a few words (`open setup`, `approve`).
        why: the reason, a short code (`not_admin`, `guest`, `own_send`...).
        target: what it was aimed at (`send 7K3M9Q`, an app), when anything.
    """

    team_id: str
    user_id: str
    area: str
    what: str
    why: str
    target: str = ""

    @property
    def action(self) -> str:
        """The audit event's action: `<area>.denied`."""
        return f"{self.area}.denied"


def target(send: Send) -> str:
    """A send as the audit log names it: `send 7K3M9Q`."""
    return f"send {send.short_id}"


class Denied(CommandError):
    """A refusal whose message goes to the person, already audited (see `deny`)."""

    def __init__(self, message: str, denial: Denial) -> None:
        super().__init__(message)
        self.denial = denial


def deny(services: Services, denial: Denial, message: str) -> Denied:
    """Audit `denial` (after the acks waiting now) and return the refusal to raise."""
    record(services, denial)
    return Denied(message, denial)


def record(services: Services, denial: Denial, *, create_workspace: bool = True) -> None:
    """Audit `denial` in the background, unless the person's window holds it back.

    `create_workspace`: the workspace row is made when missing (a refusal may be the first
    thing PushOps sees of a workspace); without it, a refusal with no workspace to audit in
    is only logged.
    """
    held = services.denials.admit((denial.team_id, denial.user_id, denial.action, denial.what))
    if held is None:
        return
    services.after_ack(
        _write(services, denial, held, create_workspace),
        respond=None,
        kind="audit",
        acks_first=True,
    )


async def _write(services: Services, denial: Denial, held: int, create_workspace: bool) -> None:
    details: dict[str, object] = {"what": denial.what, "why": denial.why}
    if held:
        details["suppressed"] = held
    problem = await services.workspaces.record_refusal(
        team_id=denial.team_id,
        actor=denial.user_id,
        action=denial.action,
        target=denial.target,
        details=details,
        create_workspace=create_workspace,
    )
    if problem is not None:
        _log(denial, problem)


def _log(denial: Denial, problem: str) -> None:
    log.warning(
        "refused %s (%s) to %s of team %s; not audited: %s",
        denial.what, denial.why, denial.user_id, denial.team_id, problem,
    )  # fmt: skip
