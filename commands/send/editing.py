"""`/push edit ID`, Edit and Send again: the compose form filled from a stored send.

Edit (the command, or the button on messages about an upcoming send) opens the form filled
with the send's content, audience, app, options and time, under its own callback id; its Save
changes that same send while it is still `scheduled` or `pending_approval` (`Sends.edit`: same
id, short id and idempotency key), before the ack, so a refusal shows in the form. After the
ack the send is dispatched again (its timer armed at the new time, or the approvers' request
updated in place) and the editor is told what was saved. The edit goes straight to Save, with
no preview step: the send it changes is shown in full in the answer, with Edit and Cancel.

Who may edit: the send's requester, while they may send (checked again on Save; the send id
the form carries is checked against the workspace, and never trusted for authority). Not
admins: whoever rewrites a send could then approve the words they wrote themselves, and the
approval policy is two people; others stop a send with Cancel. Send again (on a finished
send) opens the same form as a new send, through the ordinary compose path.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.delivery import (
    Audience,
    Edit,
    NotEditable,
    Send,
    SendContent,
    SendNotFound,
    SendRejected,
    SendState,
)
from bot.policy import approvals_required
from bot.services import Services
from commands._format import code
from commands._parsing import parse_options
from commands.access import interaction_ids, why_not
from commands.cards import card_of
from commands.context import (
    CommandContext,
    CommandError,
    Subcommand,
    button_send_id,
    load_send,
    send_uuid,
)
from commands.denials import Denial, deny, target
from commands.help import usage
from commands.notify import notifier_of
from commands.send import form
from commands.send.meta import Meta
from commands.send.requester import requester
from commands.send.shortcuts import refuse_opening
from commands.send.storing import answer, answer_where, policy_of
from commands.views import compose
from commands.views import sends as views
from commands.views.compose import ComposeInput
from commands.views.compose_options import FilledOptions, OptionsForm

log = logging.getLogger(__name__)

EDITABLE: Final = frozenset({SendState.SCHEDULED, SendState.PENDING_APPROVAL})

NOT_YOURS: Final = (
    "Only the person who asked for a send can edit it (so that nobody approves words they "
    "wrote themselves). Cancel stops it, and `/push send` makes a new one."
)
GONE: Final = "This send is not known here any more; nothing was changed."


def ended_words(short_id: str, state: str) -> str:
    """Why an upcoming send can no longer be edited, in the words of its state."""
    ids = code(short_id)
    if state in ("sending", "sent", "failed"):
        return f"{ids} has already gone out; nothing was changed."
    if state == "draft":
        return f"{ids} is a preview nobody sent; send it first, or compose a new one."
    return f"{ids} is {state}; nothing was changed. `/push send` makes a new one."


# --- the form filled from a send --------------------------------------------------------------


def filled_from(send: Send, *, keep_time: bool) -> tuple[ComposeInput, OptionsForm]:
    """The form's fields and options as the send has them (its time only with `keep_time`);
    CommandError when Slack's form cannot hold them whole."""
    try:
        content = SendContent.from_stored(send.content)
        audience = Audience.from_stored(send.audience)
    except SendRejected as error:  # stored before a limit of today's
        raise CommandError(f"{code(send.short_id)} cannot be shown in the form: {error}") from None
    later = keep_time and send.due_at is not None and send.due_at > datetime.now(UTC)
    typed = ComposeInput(
        app=send.app_name,
        title=content.title,
        message=content.message or "",
        segments=tuple(audience.segments),
        excluded=tuple(audience.excluded_segments),
        external_ids=tuple(audience.external_ids),
        url=content.url,
        image=content.image,
        when=compose.WHEN_AT if later else compose.WHEN_NOW,
        at=send.due_at if later else None,
    )
    options = FilledOptions(
        template_id=content.template.id if content.template is not None else None,
        languages={c: (t.message, t.title) for c, t in content.languages.items()},
        delivery=dict(send.options or {}),
    )
    shown = OptionsForm(languages=tuple(content.languages), filled=options)
    big = compose.too_big(compose.ComposeForm(filled=typed, options=shown, editing=keep_time))
    if big is not None:
        instead = (
            f"`/push cancel {send.short_id}` and `/push send` with the change"
            if keep_time
            else "`/push send`"
        )
        raise CommandError(
            f"{code(send.short_id)} does not fit in Slack's form: {big}. Use {instead} instead."
        )
    return typed, shown


async def may_edit(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, send: Send
) -> None:
    """Refuse (CommandError, audited) who may not edit `send`: it must be theirs, and they must
    have the right to send."""
    person = await requester(
        services=services, client=client, team_id=team_id, user_id=user_id, what="edit a send"
    )
    if send.requester_id == user_id:
        return
    actor = person.actor
    denial = Denial(
        team_id, user_id, "send", "edit a send", why_not(actor, "not_own_send"), target(send)
    )
    raise deny(services, denial, NOT_YOURS)


def _editable(send: Send) -> None:
    if send.is_test:
        raise CommandError(
            f"{code(send.short_id)} is a test send; `/push send --test` makes a new one."
        )
    if send.state not in EDITABLE:
        raise CommandError(ended_words(send.short_id, send.state.value))


async def open_filled(
    services: Services,
    client: AsyncWebClient,
    *,
    team_id: str,
    user_id: str,
    send: Send,
    trigger_id: str,
    channel: str | None,
    again: bool = False,
) -> None:
    """Open the form filled from `send`: to save into it (an upcoming send, its requester or
    an admin), or `again`, as a new send (anyone who may send)."""
    if again:
        await requester(
            services=services, client=client, team_id=team_id, user_id=user_id,
            what="open the compose form",
        )  # fmt: skip
    else:
        await may_edit(services, client, team_id, user_id, send)
        _editable(send)
    typed, options = filled_from(send, keep_time=not again)
    await form.open_compose(
        services, client, team_id=team_id, trigger_id=trigger_id, channel=channel,
        filled=typed, options=options, editing=None if again else send.id,
        # An edit keeps the template text it was stored with; a new send reads it afresh.
        template=None if again else SendContent.from_stored(send.content).template,
    )  # fmt: skip


# --- /push edit ID -----------------------------------------------------------------------------


async def before_ack(ctx: CommandContext) -> object:
    """Only the words are checked before the ack; the form opens right after it."""
    words = parse_options(ctx.args, usage=usage(const.SUB_EDIT)).positional
    if len(words) != 1:
        raise CommandError(
            "Which send? Give its short id (like `7K3M9Q`); `/push list` shows the upcoming "
            f"ones.\nUsage: {usage(const.SUB_EDIT)}"
        )
    return words[0]


async def handle(ctx: CommandContext) -> None:
    """Open the form filled from the send, or say why it cannot be edited."""
    try:
        send = await ctx.services.recall.find(team_id=ctx.team_id, ref=str(ctx.prepared))
    except SendNotFound as error:
        raise CommandError(str(error)) from None
    await open_filled(
        ctx.services, ctx.client, team_id=ctx.team_id, user_id=ctx.user_id, send=send,
        trigger_id=ctx.trigger_id or "", channel=ctx.channel_id,
    )  # fmt: skip


# --- the buttons -------------------------------------------------------------------------------


async def _clicked(
    services: Services,
    body: dict[str, Any],
    respond: AsyncRespond | None,
    client: AsyncWebClient,
    *,
    again: bool,
) -> None:
    """Edit or Send again: the send (of this workspace) checked, then the form opened."""
    channel = (body.get("channel") or {}).get("id") or (body.get("container") or {}).get(
        "channel_id"
    )
    team_id, user_id = interaction_ids(body)
    try:
        team_id, user_id = interaction_ids(body, services=services, area="send")
        send = await load_send(services, team_id, button_send_id(body))
        if send is None:
            raise CommandError(GONE)
        await open_filled(
            services, client, team_id=team_id, user_id=user_id, send=send,
            trigger_id=str(body.get("trigger_id") or ""), channel=channel, again=again,
        )  # fmt: skip
    except CommandError as error:
        await refuse_opening(services, respond, team_id, user_id, str(error))


# --- saving ------------------------------------------------------------------------------------


async def _save(services: Services, body: dict[str, Any], client: AsyncWebClient) -> Edit:
    """Check the send, who saves it and the form, then save the edit (before the ack);
    FormErrors for anything refused, and then nothing is changed."""
    send = await _still_editable(services, body)
    ready = await form.prepare(services, body, client)
    user_id = ready.person.actor.user_id
    try:
        await may_edit(services, client, ready.team_id, user_id, send)
        policy = await policy_of(services, ready.team_id)
    except CommandError as error:
        raise form.FormErrors({const.BLOCK_COMPOSE_MESSAGE: str(error)}) from None
    draft = ready.draft
    try:
        return await services.sends.edit(
            team_id=ready.team_id,
            send_id=send.id,
            actor=user_id,
            app_name=draft.app,
            content=draft.content,
            audience=draft.audience,
            options=draft.options,
            due_at=_same_time(draft.due_at, send.due_at),
            timezone=ready.person.zone_name,
            approvals_required=approvals_required(policy, draft.audience, is_test=False),
        )
    except NotEditable as error:
        refused = ended_words(error.short_id, error.state)
        raise form.FormErrors({const.BLOCK_COMPOSE_MESSAGE: refused}) from None
    except SendNotFound:
        raise form.FormErrors({const.BLOCK_COMPOSE_MESSAGE: GONE}) from None
    except SendRejected as error:
        block = form.error_block(error.field, ready.typed, ready.view, str(error))
        raise form.FormErrors({block: str(error)}) from None


async def _still_editable(services: Services, body: dict[str, Any]) -> Send:
    """The send the form edits, of the submitter's workspace and still upcoming (checked
    first: a time that passed because the send went out is not the problem to name)."""
    view = body.get("view") or {}
    team_id, _ = interaction_ids(body)
    meta = Meta.of(view)
    send = await load_send(services, team_id, send_uuid(meta.send))
    try:
        if send is None:
            raise CommandError(GONE)
        _editable(send)
    except CommandError as error:
        raise form.FormErrors({const.BLOCK_COMPOSE_MESSAGE: str(error)}) from None
    return send


def _same_time(typed: datetime | None, stored: datetime | None) -> datetime | None:
    """The time to save: the stored one when the form shows it unchanged (Slack's picker
    keeps whole seconds, the stored time may not)."""
    if typed is not None and stored is not None and abs(typed - stored) < timedelta(seconds=1):
        return stored
    return typed


CHANGED_WORDS: Final = {
    "content": "its text",
    "audience": "its audience",
    "app": "its app",
    "options": "its options",
    "due_at": "its time",
}


def saved_note(edit: Edit) -> str:
    """What the edit changed, in words (`Saved: its text and its time.`)."""
    what = [CHANGED_WORDS[name] for name in edit.changed]
    listed = ", ".join(what[:-1]) + f" and {what[-1]}" if len(what) > 1 else what[0]
    note = f"Saved: {listed}."
    if edit.send.state == SendState.PENDING_APPROVAL:
        note += " Approvals given before the edit no longer count: the approvers are asked again."
    return note


async def _after_save(
    services: Services, body: dict[str, Any], client: AsyncWebClient, edit: Edit
) -> None:
    """After the ack: take the edited send on (its new time, or its approvers asked again in
    their message) and tell the editor what was saved."""
    team_id, user_id = interaction_ids(body)
    channel = Meta.of(body.get("view")).channel
    reply = answer_where(services, client, team_id, user_id, channel)
    send = edit.send
    if not edit.changed:
        await answer(services, send, reply, notes=["Nothing was changed."])
        return
    notifier = notifier_of(services)
    if notifier is not None and send.state == SendState.SCHEDULED:
        if edit.was == SendState.PENDING_APPROVAL:
            closed = f"Edited by <@{user_id}>; it needs no approval now."
            await notifier.close_approval(send, closed)
        await notifier.announce(send)  # the log channel's message shows the edit
    if send.state == SendState.PENDING_APPROVAL:  # asked again, in their message
        await services.notifier.approval_requested(send, edited_by=user_id)
    else:
        await services.deliverer.dispatch(send)  # its timer
    current = await services.recall.get(team_id=team_id, send_id=send.id) or send
    card = card_of(current)
    note = saved_note(edit)
    await reply(f"{views.ids_text(card)} edited. {note}", views.outcome_blocks(card, note=note))


async def _save_late(
    services: Services, body: dict[str, Any], client: AsyncWebClient, task: asyncio.Task[Edit]
) -> None:
    """A Save answered before it was stored: say what came of it."""
    try:
        edit = await task
    except form.FormErrors as error:
        team_id, user_id = interaction_ids(body)
        channel = Meta.of(body.get("view")).channel
        reply = answer_where(services, client, team_id, user_id, channel)
        await reply(f"Your edit was not saved: {' '.join(error.errors.values())}", [])
        return
    await _after_save(services, body, client, edit)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to Edit, Send again, and the Save of the edit form."""

    def on(again: bool) -> Any:
        async def listener(
            ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
        ) -> None:
            await ack()
            where = respond if body.get("response_url") else None
            services.after_ack(
                _clicked(services, body, where, client, again=again),
                respond=where,
                kind="block_actions",
            )

        return listener

    async def on_save(ack: AsyncAck, body: dict[str, Any], client: AsyncWebClient) -> None:
        edit = await form.within_ack_budget(
            services,
            ack,
            _save(services, body, client),
            late=lambda task: _save_late(services, body, client, task),
        )
        if edit is None:
            return
        await ack()
        services.after_ack(
            _after_save(services, body, client, edit), respond=None, kind="view_submission"
        )

    app.action(const.ACTION_EDIT_SEND)(on(False))
    app.action(const.ACTION_SEND_AGAIN)(on(True))
    app.view(const.CALLBACK_COMPOSE_EDIT)(on_save)


SUBCOMMAND = Subcommand(name=const.SUB_EDIT, handle=handle, before_ack=before_ack)
