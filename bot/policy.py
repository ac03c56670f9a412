"""Who may do what, and which sends need approval: pure decisions (no Slack, no SQL).

`commands.access` gathers the facts (Slack admin and guest flags, `PUSHOPS_ADMINS`, stored
roles) into an `Actor`; the send and approval code asks the `Actor` and `approvals_required`.

Rights, least privilege first (the README's "Roles" says the same for people):
- admin: everything, setup and the audit log included; holds every role.
- sender: send; cancel any send; look users up.
- responder (on call): cancel any send, see status, look users up; not send, not approve.
- approver: approve or reject sends that need it.
- every full member: see sends (`list`, `status`), cancel their own, and send until anyone is
  named a sender.
- guests (Slack's restricted and single-channel users): only what a role given to them by
  name grants; a role given to a user group they are in, and the open sending above, do not
  reach them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Literal, Protocol, TypeAlias, get_args

from storage.models import MemberRole

Role = MemberRole
"""admin, sender, approver, responder (the stored enum, re-exported so callers need not know
storage)."""

ApprovalMode: TypeAlias = Literal["off", "segments", "all"]
APPROVAL_MODES: Final[tuple[ApprovalMode, ...]] = get_args(ApprovalMode)
MAX_APPROVALS: Final = 5
"""The most distinct approvals a policy may ask for."""
SETTINGS_KEY: Final = "approvals"
"""Where the policy lives in `Workspace.settings`."""
DEFAULT_USER_THRESHOLD: Final = 100
"""Under "segments", a send listing more external ids than this needs approval too."""
MAX_USER_THRESHOLD: Final = 20_000
"""The largest threshold (a send lists at most 20,000 external ids)."""


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

    @property
    def external_ids(self) -> Sequence[str]:
        """The external ids the send goes to (empty for a send to segments)."""
        ...


@dataclass(frozen=True)
class ApprovalPolicy:
    """Which sends of a workspace need approval, how many, and where approvers are asked.

    Attributes:
        mode: "off" (none), "segments" (any send to a segment, i.e. a whole-audience send,
            and any send listing more than `user_threshold` external ids) or "all" (every
            send, tests included: `/push me` links any external id without proof that it is
            the caller's, so a test send can reach anyone).
        approvals: distinct approvals needed, 1 to MAX_APPROVALS.
        channel_id: the approvals channel; required unless mode is "off".
        user_threshold: under "segments", the most external ids a send may list without
            approval (0 to MAX_USER_THRESHOLD; 0: every send to listed users needs it).

    Raises PolicyError when these do not fit together.
    """

    mode: ApprovalMode = "off"
    approvals: int = 1
    channel_id: str | None = None
    user_threshold: int = DEFAULT_USER_THRESHOLD

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
        if (
            isinstance(self.user_threshold, bool)
            or not isinstance(self.user_threshold, int)
            or not 0 <= self.user_threshold <= MAX_USER_THRESHOLD
        ):
            raise PolicyError(
                f"The number of listed users must be a whole number from 0 to "
                f"{MAX_USER_THRESHOLD:,}.",
                field="user_threshold",
            )

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
                # A policy saved before the threshold existed gets the default.
                user_threshold=data.get("user_threshold", DEFAULT_USER_THRESHOLD),
            )
        except PolicyError as error:
            raise PolicyError(f"{_STORED_INVALID} ({error})", field=error.field) from None

    def to_settings(self) -> dict[str, Any]:
        """The policy as plain JSON, for `update_workspace(settings={"approvals": ...})`."""
        return {
            "mode": self.mode,
            "approvals": self.approvals,
            "channel_id": self.channel_id,
            "user_threshold": self.user_threshold,
        }


_STORED_INVALID: Final = (
    "The approval policy stored for this workspace is invalid; "
    "an admin should set it again in /push setup"
)


def approvals_required(
    policy: ApprovalPolicy, audience: AudienceLike | Mapping[str, Any], *, is_test: bool
) -> int:
    """How many distinct approvals a send needs before it may go out (0: none).

    `audience` is an object with `segments` and `external_ids` or the stored audience mapping
    (`{"segments": [...], "external_ids": [...]}`). Under "segments", a send to a segment
    needs approval, and so does one listing more than `policy.user_threshold` external ids
    (a long list reaches as many people as a segment). A test send (to the requester's own
    linked id, one id and no segment) needs none there. Under "all" every send does, tests
    included: the linked id is whatever the requester gave `/push me`, which nothing proves
    is theirs.
    """
    if policy.mode == "off":
        return 0
    if policy.mode == "all":
        return policy.approvals
    segments, ids = _segments(audience), _external_ids(audience)
    if is_test and not segments and len(ids) <= 1:
        return 0
    return policy.approvals if segments or len(ids) > policy.user_threshold else 0


def _segments(audience: AudienceLike | Mapping[str, Any]) -> Sequence[str]:
    if isinstance(audience, Mapping):
        return _listed(audience, "segments")
    return audience.segments


def _external_ids(audience: AudienceLike | Mapping[str, Any]) -> Sequence[str]:
    if isinstance(audience, Mapping):
        return _listed(audience, "external_ids")
    return audience.external_ids


def _listed(audience: Mapping[str, Any], key: str) -> Sequence[str]:
    found = audience.get(key) or ()
    return found if isinstance(found, Sequence) and not isinstance(found, str) else ()


@dataclass(frozen=True)
class Actor:
    """Someone acting in a workspace, with every role they hold (admin implies all roles).

    Attributes:
        team_id / user_id: who, where.
        roles: the roles held, directly or through a user group; an admin's set is every role.
            A guest's are only those given to them by name (`commands.access` sees to it).
        is_guest: a Slack guest (restricted or single-channel): no right without a role.
    """

    team_id: str
    user_id: str
    roles: frozenset[Role] = field(default_factory=frozenset)
    is_guest: bool = False

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
        """Whether the actor may send: senders; until a sender is named, every full member."""
        if self.has(Role.SENDER):
            return True
        return not senders_configured and not self.is_guest

    def can_cancel_any(self) -> bool:
        """Whether the actor may stop anyone's send, or a notification PushOps did not make
        (senders, responders and admins; everyone may stop their own)."""
        return self.has(Role.SENDER) or self.has(Role.RESPONDER)

    def can_look_up_users(self) -> bool:
        """Whether the actor may see a customer's data with `/push user` (senders,
        responders and admins)."""
        return self.has(Role.SENDER) or self.has(Role.RESPONDER)

    def can_see_sends(self) -> bool:
        """Whether the actor may list sends and read their status: full members, and guests
        holding a role."""
        return not self.is_guest or bool(self.roles)

    def can_approve(self) -> bool:
        """Whether the actor may approve or reject sends (approvers and admins)."""
        return self.has(Role.APPROVER)


@dataclass(frozen=True)
class ConfiguredAdmins:
    """`PUSHOPS_ADMINS`, read: who is an admin from the start, and in which workspace.

    Entries are `TEAM:USER` pairs (an admin of that workspace) or bare user ids (an admin of
    the one workspace of single-workspace mode; in OAuth mode a bare id names nobody, and
    the start refuses it, see `bare`).
    """

    pairs: frozenset[tuple[str, str]] = frozenset()
    bare: frozenset[str] = frozenset()
    malformed: tuple[str, ...] = ()

    @classmethod
    def parse(cls, text: str) -> ConfiguredAdmins:
        """Read the comma-separated entries of `PUSHOPS_ADMINS` (`malformed`: the entries
        that are neither, such as `T123:` or `a:b:c`)."""
        pairs: set[tuple[str, str]] = set()
        bare: set[str] = set()
        malformed: list[str] = []
        for entry in (part.strip() for part in text.split(",")):
            team, colon, user = (part.strip() for part in entry.partition(":"))
            if not entry:
                continue
            if not colon:
                bare.add(entry)
            elif team and user and ":" not in user:
                pairs.add((team, user))
            else:
                malformed.append(entry)
        return cls(frozenset(pairs), frozenset(bare), tuple(malformed))

    def names(self, team_id: str, user_id: str, *, oauth: bool) -> bool:
        """Whether `user_id` is an admin of `team_id` by these entries."""
        return (team_id, user_id) in self.pairs or (not oauth and user_id in self.bare)
