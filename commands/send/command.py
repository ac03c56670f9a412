"""`/push send`: the compose form without arguments; with them the one-line grammar, answered
with a preview (Send / Cancel), straight on with `--yes`, or only to yourself with `--test`.

Before the ack (invariant 1) the words are parsed and checked, the requester is looked up
(their right to send, their time zone: Slack's answers and the workspace's roles are cached,
and the lookup is time-boxed) and the send's row is stored in one write transaction, so a
send the user is told about is never lost. If Slack is too slow to say who the requester is,
the row is stored right after the ack instead, still before anything is said to the user.
When other writers hold the database too long the send is refused as busy, with nothing
stored (`commands.send.storing.store`). OneSignal is only asked after the ack.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.delivery import (
    Audience,
    DeliveryOptions,
    Send,
    SendContent,
    SendRejected,
    SendState,
    TemplateRef,
)
from bot.policy import approvals_required
from bot.recurrence import RecurrenceError, parse_every
from bot.series import Series
from bot.services import Services
from bot.timeparse import ScheduledTime, TimeParseError, parse_when
from commands import series as series_views
from commands._format import Block, escape
from commands.access import interaction_ids
from commands.cards import card_of
from commands.context import (
    CommandContext,
    CommandError,
    Reply,
    Subcommand,
    button_send_id,
    load_send,
    refuse,
    replacing,
)
from commands.denials import Denial, record, target
from commands.send import form, shortcuts
from commands.send.grammar import SendRequest, parse_send
from commands.send.requester import Requester, requester
from commands.send.storing import (
    Draft,
    confirm_draft,
    go,
    linked_external_id,
    policy_of,
    preview_message,
    store,
    told_store_errors,
    unknown_app,
)
from commands.views import sends as views

LOOKUP_BUDGET: Final = 1.0
"""Seconds the requester lookup may take before the ack (dispatch allows 2 s in all)."""


@dataclass(frozen=True)
class _OpenForm:
    """`/push send` alone: open the compose form after the ack."""


@dataclass(frozen=True)
class _Deferred:
    """Store the send right after the ack: Slack was slow to say who asks, or the send names
    a OneSignal template, which is looked up only once Slack has its answer."""

    request: SendRequest


@dataclass(frozen=True)
class Stored:
    """A stored send and the notes its time carries (a clock change, an unknown zone)."""

    send: Send
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class StoredSeries:
    """A stored series and the notes its first time carries."""

    series: Series
    notes: tuple[str, ...] = ()


OPEN_FORM: Final = _OpenForm()


async def before_ack(ctx: CommandContext) -> object:
    """Parse, check, and store the send's row (see the module's docstring)."""
    if not ctx.args:
        return OPEN_FORM
    request = parse_send(ctx.args)
    if request.template is not None:  # OneSignal is asked for it after the ack only
        return _Deferred(request)
    try:
        async with asyncio.timeout(LOOKUP_BUDGET):
            person = await _requester(ctx)
    except TimeoutError:
        return _Deferred(request)
    return await store_request(ctx, request, person)


async def handle(ctx: CommandContext) -> None:
    """After the ack: open the form, or preview / send the stored send."""
    prepared = ctx.prepared
    if isinstance(prepared, _OpenForm):
        # Only who may send gets the form: the lookup is cached, well inside the trigger's 3 s.
        await _requester(ctx, what="open the compose form")
        await form.open_form(ctx)
        return
    if isinstance(prepared, _Deferred):
        prepared = await store_request(ctx, prepared.request, await _requester(ctx))
    if isinstance(prepared, StoredSeries):
        await _confirm_series(ctx, prepared)
        return
    if not isinstance(prepared, Stored):
        raise TypeError(f"unexpected preparation {prepared!r}")
    if prepared.send.state == SendState.DRAFT:
        await _preview(ctx, prepared)
    else:
        await go(ctx.services, prepared.send, _command_reply(ctx), notes=prepared.notes)


async def _requester(ctx: CommandContext, *, what: str = "send") -> Requester:
    return await requester(
        services=ctx.services,
        client=ctx.client,
        team_id=ctx.team_id,
        user_id=ctx.user_id,
        what=what,
    )


async def store_request(
    ctx: CommandContext, request: SendRequest, person: Requester
) -> Stored | StoredSeries:
    """Validate the request into a send (a draft unless `--yes`) or a series (`--every`)
    and store it; DB only."""
    if request.every is not None:
        return await store_series(ctx, request, person)
    when = _when(request, person)
    draft = await _draft(ctx, request, when)
    try:
        send = await store(
            ctx.services,
            team_id=ctx.team_id,
            requester=person,
            draft=draft,
            confirm=request.yes,
        )
    except SendRejected as error:
        raise CommandError(str(error)) from None
    return Stored(send=send, notes=when.notes if when is not None else ())


async def store_series(
    ctx: CommandContext, request: SendRequest, person: Requester
) -> StoredSeries:
    """Read `--every` and store the series once (no preview: the reply says when it goes,
    and `/push series` pauses or stops it); its occurrences are made when due."""
    try:
        recurrence = parse_every(
            request.every or "",
            at=request.at,
            until=request.until,
            times=request.times,
            tz=person.timezone,
        )
    except RecurrenceError as error:
        raise CommandError(str(error)) from None
    draft = await _draft(ctx, request, None)
    policy = await policy_of(ctx.services, ctx.team_id)
    needed = approvals_required(policy, draft.audience, is_test=draft.is_test)
    try:
        with told_store_errors(ctx.team_id, "series"):
            stored = await ctx.services.series.create(
                team_id=ctx.team_id,
                requester_id=person.actor.user_id,
                app_name=draft.app,
                content=draft.content,
                audience=draft.audience,
                recurrence=recurrence,
                approvals_required=needed,
                is_test=draft.is_test,
                options=draft.options,
            )
    except SendRejected as error:
        if error.field == "app":
            raise CommandError(await unknown_app(ctx.services, ctx.team_id, draft.app)) from None
        raise CommandError(str(error)) from None
    return StoredSeries(series=stored, notes=recurrence.notes)


async def _confirm_series(ctx: CommandContext, stored: StoredSeries) -> None:
    """After the ack: ask the approvers if it needs approval, and confirm it."""
    notes = [escape(note) for note in stored.notes]
    await series_views.confirm(ctx.services, stored.series, notes, _command_reply(ctx))


def _when(request: SendRequest, person: Requester) -> ScheduledTime | None:
    try:
        return parse_when(at=request.at, in_=request.in_, tz=person.timezone)
    except TimeParseError as error:
        option = "--at" if request.at is not None else "--in"
        raise CommandError(f"{option}: {error}") from None


async def _draft(ctx: CommandContext, request: SendRequest, when: ScheduledTime | None) -> Draft:
    external_ids = request.external_ids
    if request.test:
        external_ids = (await linked_external_id(ctx.services, ctx.team_id, ctx.user_id),)
    try:
        template = await _template(ctx, request)
        content = SendContent(
            message=request.message or None,
            title=request.title,
            url=request.url,
            image=request.image,
            languages=request.languages(),
            template=template,
        )
        audience = Audience(
            segments=request.segments,
            excluded_segments=request.excluded,
            external_ids=external_ids,
        )
        options = DeliveryOptions(**request.delivery())
    except SendRejected as error:
        raise CommandError(_option_error(error)) from None
    return Draft(
        app=request.app,
        content=content,
        audience=audience,
        due_at=when.utc if when is not None else None,
        is_test=request.test,
        options=options,
    )


async def _template(ctx: CommandContext, request: SendRequest) -> TemplateRef | None:
    """The template `--template` names, found in the send's app (after the ack only)."""
    if request.template is None:
        return None
    try:
        return await ctx.services.sends.templates.find(ctx.team_id, request.app, request.template)
    except SendRejected as error:
        if error.field != "app":
            raise
        raise SendRejected(
            "app", await unknown_app(ctx.services, ctx.team_id, request.app)
        ) from None


_OPTION_OF: Final = {"template": "--template", "language": "--text-XX / --title-XX"}


def _option_error(error: SendRejected) -> str:
    """The refusal, naming the option it is about when the text alone may not say."""
    option = _OPTION_OF.get(error.field)
    return f"{option}: {error}" if option else str(error)


def _command_reply(ctx: CommandContext) -> Reply:
    async def reply(text: str, blocks: Sequence[Block]) -> None:
        await ctx.reply(text, blocks=blocks)

    return reply


async def _preview(ctx: CommandContext, stored: Stored) -> None:
    """The ephemeral preview: the send, how many it reaches, Send and Cancel."""
    await preview_message(ctx.services, stored.send, _command_reply(ctx), notes=stored.notes)


# --- the preview's buttons ------------------------------------------------------------------


async def _draft_of(
    services: Services, body: dict[str, Any], respond: AsyncRespond
) -> tuple[str, str, Send] | None:
    """(team, clicker, the draft) for a preview's button, or None after refusing."""
    try:
        team_id, user_id = interaction_ids(body, services=services, area="send")
    except CommandError as error:
        await refuse(respond, str(error))
        return None
    send = await load_send(services, team_id, button_send_id(body))
    if send is None:
        await refuse(respond, "This preview is no longer known here; send the command again.")
        return None
    if send.requester_id != user_id:
        denial = Denial(team_id, user_id, "send", "answer a preview", "not_requester", target(send))
        record(services, denial)
        await refuse(respond, f"Only <@{send.requester_id}>, who wrote this send, can answer it.")
        return None
    return team_id, user_id, send


async def _confirm(
    services: Services, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
) -> None:
    found = await _draft_of(services, body, respond)
    if found is None:
        return
    team_id, user_id, draft = found
    try:
        confirmed = await confirm_draft(
            services, client, team_id=team_id, user_id=user_id, draft=draft
        )
    except CommandError as error:
        await refuse(respond, str(error))
        return
    if confirmed is None:
        await _already_answered(services, team_id, draft, respond)
        return
    await go(services, confirmed, replacing(respond))


async def _discard(services: Services, body: dict[str, Any], respond: AsyncRespond) -> None:
    found = await _draft_of(services, body, respond)
    if found is None:
        return
    team_id, user_id, draft = found
    if not await services.sends.discard(team_id=team_id, send_id=draft.id, actor=user_id):
        await _already_answered(services, team_id, draft, respond)
        return
    card = card_of(await load_send(services, team_id, draft.id) or draft)
    await replacing(respond)(
        f"Cancelled {views.ids_text(card)}: nothing was sent.",
        views.outcome_blocks(card, note="Nothing was sent."),
    )


async def _already_answered(
    services: Services, team_id: str, draft: Send, respond: AsyncRespond
) -> None:
    """A second click (or one on an old preview): show where the send is now."""
    current = await load_send(services, team_id, draft.id) or draft
    card = card_of(current)
    await replacing(respond)(
        views.outcome_text(card),
        views.outcome_blocks(card, note="This preview was already answered."),
    )


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the preview's Send and Cancel buttons, the compose form and its shortcuts."""

    async def on_confirm(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        services.after_ack(
            _confirm(services, body, respond, client), respond=respond, kind="block_actions"
        )

    async def on_discard(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        services.after_ack(_discard(services, body, respond), respond=respond, kind="block_actions")

    app.action(const.ACTION_SEND_CONFIRM)(on_confirm)
    app.action(const.ACTION_SEND_DISCARD)(on_discard)
    form.register(app, services)
    shortcuts.register(app, services)


SUBCOMMAND = Subcommand(name=const.SUB_SEND, handle=handle, before_ack=before_ack)
