"""The audit trail of `/push user` lookups: who looked up which external id, in which app.

Same conventions as `storage.queries` (keyword-only, scoped by team, the caller's
transaction). Only the fact of the lookup is kept, never what OneSignal answered about the user.
"""

from __future__ import annotations

from typing import Final, Literal, TypeAlias

from sqlalchemy.ext.asyncio import AsyncSession

from storage.audit import append_audit
from storage.models import AuditEvent

LOOKUP_ACTION: Final = "user.lookup"
LookupOutcome: TypeAlias = Literal["ok", "not_found", "failed"]


async def record_user_lookup(
    *,
    session: AsyncSession,
    team_id: str,
    actor: str,
    external_id: str,
    app_name: str,
    outcome: LookupOutcome = "ok",
) -> AuditEvent:
    """Audit that `actor` looked up `external_id` in app `app_name` (the workspace must exist)."""
    return await append_audit(
        session=session,
        team_id=team_id,
        actor=actor,
        action=LOOKUP_ACTION,
        target=external_id,
        outcome=outcome,
        details={"app": app_name},
    )
