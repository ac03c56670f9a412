"""Who may do what, and which sends need approval: pure decisions (no Slack, no SQL).

`commands.access` gathers the facts (Slack admin flags, `PUSHOPS_ADMINS`, stored roles)
into an `Actor`; the send and approval code asks the `Actor` and `approvals_required`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias, get_args

from storage.models import MemberRole

Role = MemberRole
"""admin, sender, approver (the stored enum, re-exported so callers need not know storage)."""

ApprovalMode: TypeAlias = Literal["off", "segments", "all"]
APPROVAL_MODES: Final[tuple[ApprovalMode, ...]] = get_args(ApprovalMode)
MAX_APPROVALS: Final = 5
"""The most distinct approvals a policy may ask for."""
SETTINGS_KEY: Final = "approvals"
"""Where the policy lives in `Workspace.settings`."""


class PolicyError(ValueError):
    """An approval policy that cannot work; the message says what to change.

    `field` names the part to change: "mode", "approvals" or "channel_id".
    """

    def __init__(self, message: str, *, field: str = "mode") -> None:
        self.field = field
        super().__init__(message)


class AudienceLike(Protocol):
    """What `approvals_required` reads of an audience (e.g. `bot.delivery.Audience`)."""

    @property
    def segments(self) -> Sequence[str]:
        """The segments the send goes to (empty for a send to listed users)."""
        ...


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which sends of a workspace need approval, how many, and where approvers are asked.

    Attributes:
        mode: "off" (none), "segments" (any send to a segment, i.e. a whole-audience send)
            or "all" (every send, tests included: `/push me` links any external id without
            proof that it is the caller's, so a test send can reach anyone).
        approvals: distinct approvals needed, 1 to MAX_APPROVALS.
        channel_id: the approvals channel; required unless mode is "off".

    Raises PolicyError when these do not fit together.
    """

    mode: ApprovalMode = "off"
    approvals: int = 1
    channel_id: str | None = None

    def __post_init__(self) -> None:
        if self.mode not in APPROVAL_MODES:
            raise PolicyError(f"Unknown approval mode {self.mode!r}; use off, segments or all.")
        if isinstance(self.approvals, bool) or not isinstance(self.approvals, int):
            raise PolicyError("The number of approvals must be a whole number.", field="approvals")
        if not 1 <= self.approvals <= MAX_APPROVALS:
            raise PolicyError(
                f"Approvals needed must be between 1 and {MAX_APPROVALS}.", field="approvals"
            )
        if self.mode != "off" and not self.channel_id:
            raise PolicyError("Choose the channel where approvers are asked.", field="channel_id")

    @property
    def enabled(self) -> bool:
        """Whether any send needs approval."""
        return self.mode != "off"

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> ApprovalPolicy:
        """The policy kept in a workspace's settings.

        Takes `Workspace.settings` (reading its "approvals" entry) or that entry itself.
        No entry is the default policy (off). A stored policy that does not parse raises
        PolicyError rather than quietly turning approvals off.
        """
        # The entry itself has a "mode"; whole settings keep it under "approvals".
        data: Any = settings if "mode" in settings else settings.get(SETTINGS_KEY)
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise PolicyError(_STORED_INVALID)
        try:
            return cls(
                mode=data.get("mode", "off"),
                approvals=data.get("approvals", 1),
                channel_id=data.get("channel_id") or None,
            )
        except PolicyError as error:
            raise PolicyError(f"{_STORED_INVALID} ({error})", field=error.field) from None

    def to_settings(self) -> dict[str, Any]:
        """The policy as plain JSON, for `update_workspace(settings={"approvals": ...})`."""
        return {"mode": self.mode, "approvals": self.approvals, "channel_id": self.channel_id}


_STORED_INVALID: Final = (
    "The approval policy stored for this workspace is invalid; "
    "an admin should set it again in /push setup"
)


def approvals_required(
    policy: ApprovalPolicy, audience: AudienceLike | Mapping[str, Any], *, is_test: bool
) -> int:
    """How many distinct approvals a send needs before it may go out (0: none).

    `audience` is an object with `segments` or the stored audience mapping
    (`{"segments": [...], "users": [...]}`). Under "all" a test send needs approval like any
    other: its audience is whatever external id the requester linked with `/push me`, which
    nothing proves is theirs. Under "off" and "segments" it needs none.
    """
    if policy.mode == "off":
        return 0
    if policy.mode == "all":
        return policy.approvals
    return policy.approvals if _segments(audience) and not is_test else 0


def _segments(audience: AudienceLike | Mapping[str, Any]) -> Sequence[str]:
    if isinstance(audience, Mapping):
        found = audience.get("segments") or ()
        return found if isinstance(found, Sequence) else ()
    return audience.segments


@dataclass(frozen=True)
class Actor:
    """Someone acting in a workspace, with every role they hold (admin implies all roles).

    Attributes:
        team_id / user_id: who, where.
        roles: the roles held, directly or through a user group; an admin's set is every role.
    """

    team_id: str
    user_id: str
    roles: frozenset[Role] = field(default_factory=frozenset)

    def __post_init__(self) -> None:
        if Role.ADMIN in self.roles:
            object.__setattr__(self, "roles", frozenset(Role))

    def is_admin(self) -> bool:
        """Whether the actor may set PushOps up (apps, roles, policy) and read the audit log."""
        return Role.ADMIN in self.roles

    def has(self, role: Role) -> bool:
        """Whether the actor holds `role` (admins hold every role)."""
        return role in self.roles

    def can_send(self, *, senders_configured: bool) -> bool:
        """Whether the actor may send: anyone until a sender role is given to someone."""
        return not senders_configured or self.has(Role.SENDER)

    def can_approve(self) -> bool:
        """Whether the actor may approve or reject sends (approvers and admins)."""
        return self.has(Role.APPROVER)
