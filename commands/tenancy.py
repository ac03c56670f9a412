"""Single-workspace mode serves its token's workspace only: a request for any other is refused.

With `SLACK_BOT_TOKEN` PushOps acts with one workspace's token, whatever `team_id` a signed
request names (a shared channel, Slack Connect, a second workspace of the same app). Such a
request would read and write the rows of a workspace PushOps does not serve, and act in Slack
with the wrong token. So it is answered with a refusal before any listener runs, and audited
in the token's workspace when that has a row (it is then logged otherwise). An org-wide token
(Enterprise Grid) serves every workspace of its org: there the org must match.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Final

from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from bot.services import Services
from commands.denials import Denial, record

log = logging.getLogger(__name__)

ELSEWHERE: Final = (
    "This PushOps serves one Slack workspace, and your request comes from another one. Ask "
    "an admin of your workspace to set PushOps up there."
)

Next = Callable[[], Awaitable[BoltResponse]]
Middleware = Callable[[AsyncBoltRequest, Next], Awaitable[BoltResponse]]


def own_workspace_only(services: Services) -> Middleware:
    """Bolt middleware refusing requests for another workspace than the token's."""

    async def guard(req: AsyncBoltRequest, next: Next) -> BoltResponse:
        context = req.context
        served = context.authorize_result
        if served is None or _same_workspace(served.team_id, served.enterprise_id, req):
            return await next()
        asked = str(context.team_id or context.enterprise_id or "none")
        user = str(context.user_id or "unknown")
        if served.team_id:
            where = f"team {asked}"[:200]
            denial = Denial(
                served.team_id, user, "workspace", "use PushOps", "other_workspace", where
            )
            record(services, denial, create_workspace=False)
        else:
            log.warning("refused a request of %s for team %s: not this token's", user, asked)
        return BoltResponse(status=200, body=ELSEWHERE)

    return guard


def _same_workspace(team_id: str | None, enterprise_id: str | None, req: AsyncBoltRequest) -> bool:
    """Whether the request is for the token's workspace (or, for an org-wide token, whose
    `auth.test` names the org or no workspace, for a workspace of its org)."""
    org_wide = not team_id or team_id == enterprise_id or team_id.startswith("E")
    if org_wide:
        return enterprise_id is None or req.context.enterprise_id == enterprise_id
    return req.context.team_id == team_id
