"""Each Slack user's own OneSignal external id (`/push me`): the audience of `send --test`.

Re-exported by `storage.queries`; the same conventions hold (keyword-only, scoped by team,
the caller's transaction).
"""

from __future__ import annotations

from typing import Final

from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import append_audit
from storage.errors import InvalidInput
from storage.models import UserLink

MAX_EXTERNAL_ID_LENGTH: Final = 128
"""The longest external id PushOps keeps (the column's size)."""


def validate_external_id(external_id: str) -> str:
    """`external_id` stripped, if usable as a OneSignal external id; InvalidInput otherwise."""
    value = external_id.strip()
    if not value:
        raise InvalidInput("The external id is empty.")
    if len(value) > MAX_EXTERNAL_ID_LENGTH:
        raise InvalidInput(
            f"That external id is {len(value)} characters long; "
            f"the limit is {MAX_EXTERNAL_ID_LENGTH}."
        )
    if any(char.isspace() or not char.isprintable() for char in value):
        raise InvalidInput("An external id has no spaces or control characters.")
    return value


async def get_linked_external_id(
    *, session: AsyncSession, team_id: str, user_id: str
) -> str | None:
    """The external id `user_id` linked in this workspace, or None."""
    link = await session.get(UserLink, (team_id, user_id))
    return link.external_id if link is not None else None


async def set_linked_external_id(
    *, session: AsyncSession, team_id: str, user_id: str, external_id: str
) -> bool:
    """Link `user_id` to `external_id` (replacing an earlier link); audited.

    Returns False, writing nothing, when that link was already there. The workspace row
    must exist (`ensure_workspace`).
    """
    value = validate_external_id(external_id)
    link = await session.get(UserLink, (team_id, user_id))
    if link is not None and link.external_id == value:
        return False
    previous = link.external_id if link is not None else None
    if link is None:
        session.add(UserLink(team_id=team_id, user_id=user_id, external_id=value))
    else:
        link.external_id = value
    await session.flush()
    await append_audit(
        session=session,
        team_id=team_id,
        actor=user_id,
        action="user.linked",
        target=user_id,
        details={"external_id": value, "previous": previous},
    )
    return True


async def unlink_external_id(*, session: AsyncSession, team_id: str, user_id: str) -> bool:
    """Forget `user_id`'s link; False when there was none. Audited."""
    link = await session.get(UserLink, (team_id, user_id))
    if link is None:
        return False
    await session.delete(link)
    await session.flush()
    await append_audit(
        session=session,
        team_id=team_id,
        actor=user_id,
        action="user.unlinked",
        target=user_id,
        details={"previous": link.external_id},
    )
    return True
