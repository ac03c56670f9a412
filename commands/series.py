"""`/push series`: the workspace's recurring sends with Pause, Resume and Stop; the series'
approval buttons; and what `/push send --every` and `/push cancel` say about a series.

Who may pause, resume or stop a series: its creator, anyone who may send, and admins; a
refusal is audited as `series.denied`. Every button is acknowledged first; the change (a
compare-and-set in the database, audited `series.<state>`) runs after the ack. A series
under an approval policy is approved once in the approvals channel (by approvers, never its
creator); its occurrences then need no approval of their own.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.delivery import Audience, Send, SendContent, SendRejected
from bot.outbox import OutboxEntry, OutboxKind, owe
from bot.policy import approvals_required
from bot.series import (
    Series,
    SeriesApproval,
    SeriesChange,
    SeriesState,
    describe,
    upcoming,
)
from bot.services import Services
from commands._format import code, context
from commands._parsing import parse_options
from commands.access import interaction_ids, may_see_sends, resolve_actor, senders_configured
from commands.context import (
    CommandContext,
    CommandError,
    Reply,
    Subcommand,
    refuse,
    send_uuid,
)
from commands.denials import Denial, deny
from commands.help import usage
from commands.send.storing import policy_of
from commands.views import series as views
from commands.views.sends import audience_text

URGENT: Final = 0
NOT_YOURS: Final = (
    "Only the series' creator, people who may send, and PushOps admins can pause, resume or "
    "stop a series."
)


def card_of(series: Series, *, next_count: int = 1) -> views.SeriesCard:
    """The series as its messages show it."""
    audience = Audience.from_stored(series.audience)
    content = series.content
    return views.SeriesCard(
        series_id=str(series.id),
        short_id=series.short_id,
        state=series.state.value,
        approval=series.approval.value,
        rule=describe(series),
        app_name=series.app_name,
        requester_id=series.requester_id,
        message=str(content.get("message", "")),
        title=content.get("title"),
        audience=audience_text(
            audience.segments, audience.excluded_segments, audience.external_ids
        ),
        timezone=series.timezone,
        upcoming=tuple(upcoming(series, next_count)),
        occurrences=series.occurrences,
        approvals_required=series.approvals_required,
        approvals_received=series.approvals_received,
    )


# --- /push series ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Edit:
    """`/push series edit ID [--title TEXT] MESSAGE`."""

    ref: str
    message: str
    title: str | None


async def before_ack(ctx: CommandContext) -> object:
    """`/push series` alone lists; `edit ID [--title TEXT] MESSAGE` gives a series new text."""
    if not ctx.args:
        return None
    if ctx.args[0].lower() != "edit":
        raise CommandError(f"`series` lists, or edits a series.\nUsage: {usage(const.SUB_SERIES)}")
    options = parse_options(ctx.args[1:], single=("--title",), usage=usage(const.SUB_SERIES))
    words = options.positional
    if len(words) < 2:
        raise CommandError(
            'Which series, and its new text? `/push series edit ID "New text"` (the ids are '
            f"in `/push series`).\nUsage: {usage(const.SUB_SERIES)}"
        )
    return _Edit(words[0], " ".join(words[1:]).strip(), options.one("--title"))


async def _edit(ctx: CommandContext, asked: _Edit) -> None:
    """Give the series new text (creator, senders, admins); approval is asked again when the
    policy wants it."""
    services = ctx.services
    series = await services.series.find(team_id=ctx.team_id, ref=asked.ref)
    if series is None:
        raise CommandError(f"There is no series {code(asked.ref)} here; `/push series` lists them.")
    await _may_change(services, ctx.client, ctx.team_id, ctx.user_id, series)
    try:
        content = SendContent.from_stored(
            series.content | {"message": asked.message, "title": asked.title}
        )
    except SendRejected as error:
        raise CommandError(str(error)) from None
    policy = await policy_of(services, ctx.team_id)
    audience = Audience.from_stored(series.audience)
    edited = await services.series.edit(
        team_id=ctx.team_id,
        series_id=series.id,
        content=content,
        actor=ctx.user_id,
        approvals_required=approvals_required(policy, audience, is_test=series.is_test),
    )
    if edited is None:
        raise CommandError(
            f"Series {code(series.short_id)} is {series.state.value}: it has no next "
            "occurrence to edit."
        )
    note = "Its next occurrences carry the new text."
    await confirm(services, edited, [note], _reply_of(ctx))


def _reply_of(ctx: CommandContext) -> Reply:
    async def reply(text: str, blocks: Sequence[dict[str, Any]]) -> None:
        await ctx.reply(text, blocks=blocks)

    return reply


async def listing(services: Services, team_id: str) -> tuple[str, list[dict[str, Any]]]:
    """The text and blocks of `/push series`."""
    found = await services.series.list(team_id=team_id, limit=views.MAX_SHOWN + 1)
    cards = [card_of(series) for series in found]
    return views.list_text(cards), views.list_blocks(cards)


async def handle(ctx: CommandContext) -> None:
    """Reply with the workspace's series, or edit one."""
    if isinstance(ctx.prepared, _Edit):
        await _edit(ctx, ctx.prepared)
        return
    await may_see_sends(ctx.services, ctx.client, ctx.team_id, ctx.user_id, area="series")
    text, blocks = await listing(ctx.services, ctx.team_id)
    await ctx.reply(text, blocks=blocks)


Move = Callable[..., Awaitable[SeriesChange | None]]


async def _clicked(
    services: Services,
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    *,
    move: Callable[[Services], Move],
    what: str,
) -> None:
    """Pause, Resume or Stop: check who clicked, change the series, answer, list again."""
    try:
        team_id, user_id = interaction_ids(body, services=services, area="series")
        series = await _clicked_series(services, team_id, body)
        await _may_change(services, client, team_id, user_id, series)
        change = await move(services)(team_id=team_id, series_id=series.id, actor=user_id)
    except CommandError as error:
        await refuse(respond, str(error))
        return
    if change is None:
        current = await services.series.get(team_id=team_id, series_id=series.id) or series
        message = f"Series {code(current.short_id)} is {current.state.value} already."
    else:
        cancelled = [send.short_id for send in change.cancelled]
        message = views.changed_text(card_of(change.series), what, cancelled)
    await respond(text=message, replace_original=False, response_type="ephemeral")
    text, blocks = await listing(services, team_id)
    await respond(text=text, blocks=blocks, replace_original=True)


async def _clicked_series(services: Services, team_id: str, body: dict[str, Any]) -> Series:
    actions = body.get("actions") or [{}]
    series_id = send_uuid(actions[0].get("value"))
    series = None
    if series_id is not None:
        series = await services.series.get(team_id=team_id, series_id=series_id)
    if series is None:
        raise CommandError("That series is not known here; `/push series` again.")
    return series


async def _may_change(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, series: Series
) -> None:
    if series.requester_id == user_id:
        return
    actor = await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)
    if actor.is_admin() or actor.can_send(
        senders_configured=await senders_configured(services, team_id)
    ):
        return
    why = "guest" if actor.is_guest else "not_sender"
    denial = Denial(team_id, user_id, "series", "change a series", why, f"series {series.short_id}")
    raise deny(services, denial, NOT_YOURS)


# --- approval ---------------------------------------------------------------------------------


async def request_approval(services: Services, series: Series) -> str | None:
    """Owe the approval request to the approvals channel; the channel, or None without one."""
    policy = await policy_of(services, series.team_id)
    if not policy.channel_id:
        return None
    card = card_of(series)
    entry = OutboxEntry(
        team_id=series.team_id,
        key=f"approval:series:{series.id}",
        kind=OutboxKind.MESSAGE,
        purpose="approval",
        destination=policy.channel_id,
        payload={
            "text": f"Approval asked for series {series.short_id}",
            "blocks": views.approval_request_blocks(card),
            "facts": {"short_id": series.short_id, "requester_id": series.requester_id},
        },
        priority=URGENT,
    )
    await owe(services.database, [entry], services.outbox)
    return policy.channel_id


async def _decided(
    services: Services,
    body: dict[str, Any],
    respond: AsyncRespond,
    client: AsyncWebClient,
    *,
    approve: bool,
) -> None:
    """Approve or Reject on a series' approval request."""
    try:
        team_id, user_id = interaction_ids(body, services=services, area="approvals")
        series = await _clicked_series(services, team_id, body)
        await _may_decide(services, client, team_id, user_id, series)
    except CommandError as error:
        await refuse(respond, str(error))
        return
    decided = await services.series.decide(
        team_id=team_id, series_id=series.id, approver_id=user_id, approve=approve
    )
    if decided is None:
        await refuse(respond, f"Series {code(series.short_id)} no longer waits for approval.")
        return
    card = card_of(decided)
    if approve and decided.approval.value != "approved":
        outcome = f"Approved by <@{user_id}>; it needs {card.approvals_required} in all."
        blocks = [*views.approval_request_blocks(card), context(outcome)]
    else:
        word = "Approved" if approve else "Rejected"
        outcome = f"{word} by <@{user_id}>." + (
            " Its occurrences go out as planned." if approve else " Nothing of it will be sent."
        )
        blocks = views.approval_closed_blocks(card, outcome)
        await _tell_requester(services, decided, outcome)
    await respond(text=outcome, blocks=blocks, replace_original=True)


async def _may_decide(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, series: Series
) -> None:
    actor = await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)
    target = f"series {series.short_id}"
    if not actor.can_approve():
        denial = Denial(team_id, user_id, "approvals", "decide", "not_approver", target)
        raise deny(services, denial, "Only approvers can approve or reject a series.")
    if series.requester_id == user_id:
        denial = Denial(team_id, user_id, "approvals", "decide", "own_request", target)
        raise deny(services, denial, "You cannot approve or reject your own series.")


async def _tell_requester(services: Services, series: Series, outcome: str) -> None:
    text = f"Series {code(series.short_id)}: {outcome}"
    entry = OutboxEntry(
        team_id=series.team_id,
        key=f"dm:series:{series.id}:{series.approval.value}",
        kind=OutboxKind.DM,
        purpose=series.approval.value,
        destination=series.requester_id,
        payload={"text": text, "blocks": None, "facts": {"short_id": series.short_id}},
        priority=URGENT,
    )
    await owe(services.database, [entry], services.outbox)


# --- what /push cancel says of an occurrence ----------------------------------------------------


async def occurrence_note(services: Services, send: Send | None) -> str | None:
    """For an occurrence of a series: only it was cancelled, and how to stop the series."""
    if send is None or send.series_id is None:
        return None
    series = await services.series.of_send(send)
    if series is None or series.state in (SeriesState.STOPPED, SeriesState.FINISHED):
        return None
    return views.occurrence_note(series.short_id)


def created_reply(series: Series, notes: Sequence[str]) -> tuple[str, list[dict[str, Any]]]:
    """The confirmation of a new series, with its next occurrences."""
    card = card_of(series, next_count=views.NEXT_SHOWN)
    return views.created_text(card), views.created_blocks(card, notes=notes)


async def confirm(services: Services, series: Series, notes: Sequence[str], reply: Reply) -> None:
    """Answer a new series (the command's or the form's): ask the approvers first when it
    needs approval, then confirm it with its next occurrences. `notes` are mrkdwn."""
    said = list(notes)
    if series.approval == SeriesApproval.PENDING:
        channel = await request_approval(services, series)
        noun = "approval" if series.approvals_required == 1 else "approvals"
        where = f" in <#{channel}>" if channel else ""
        said.append(
            f"Needs {series.approvals_required} {noun}{where} before its first occurrence; "
            "approved once, every occurrence goes without asking. You get a message when it "
            "is decided."
            + (
                ""
                if channel
                else " This workspace has no approvals channel: ask a PushOps admin to choose "
                "one in `/push setup`."
            )
        )
    text, blocks = created_reply(series, said)
    await reply(text, blocks)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to Pause, Resume and Stop, and to the series' Approve and Reject."""

    def on(move: Callable[[Services], Move], what: str) -> Any:
        async def listener(
            ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
        ) -> None:
            await ack()
            services.after_ack(
                _clicked(services, body, respond, client, move=move, what=what),
                respond=respond,
                kind="block_actions",
            )

        return listener

    def decision(approve: bool) -> Any:
        async def listener(
            ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
        ) -> None:
            await ack()
            services.after_ack(
                _decided(services, body, respond, client, approve=approve),
                respond=respond,
                kind="block_actions",
            )

        return listener

    app.action(const.ACTION_SERIES_PAUSE)(on(lambda s: s.series.pause, "paused"))
    app.action(const.ACTION_SERIES_RESUME)(on(lambda s: s.series.resume, "resumed"))
    app.action(const.ACTION_SERIES_STOP)(on(lambda s: s.series.stop, "stopped"))
    app.action(const.ACTION_SERIES_APPROVE)(decision(True))
    app.action(const.ACTION_SERIES_REJECT)(decision(False))


SUBCOMMAND = Subcommand(name=const.SUB_SERIES, handle=handle, before_ack=before_ack)
