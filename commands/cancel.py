"""`/push cancel ID` and the Cancel button: the emergency brake.

The command acts at once; the button (on every message about a send that can still be
stopped) asks Slack's confirm dialog first. Both go through the same cancel and the same
check of who may stop a send, and say exactly what happened (stopped before sending, asked
OneSignal to stop it, or too late).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.delivery import CancelOutcome, Send, SendNotFound
from bot.services import Services
from commands import series
from commands._format import Block, escape
from commands._parsing import parse_options
from commands.access import interaction_ids, resolve_actor, why_not
from commands.cards import card_of
from commands.context import (
    CommandContext,
    CommandError,
    Subcommand,
    button_send_id,
    load_send,
    refuse,
    send_uuid,
)
from commands.denials import Denial, deny, target
from commands.help import usage
from commands.notify import stopped_note
from commands.views import sends as views


def one_ref(ctx: CommandContext, name: str) -> str:
    """The single id after `/push <name>`; CommandError with the usage otherwise."""
    words = parse_options(ctx.args, usage=usage(name)).positional
    if len(words) != 1:
        what = "Which send?" if not words else "Give one id at a time."
        raise CommandError(
            f"{what} Give its short id (like `7K3M9Q`) or its OneSignal id; `/push list` "
            f"shows recent sends.\nUsage: {usage(name)}"
        )
    return words[0]


async def before_ack(ctx: CommandContext) -> object:
    """Only the words are checked before the ack; the brake itself acts right after it."""
    return one_ref(ctx, const.SUB_CANCEL)


async def handle(ctx: CommandContext) -> None:
    """Cancel the send, update its messages, and say what happened."""
    ref = str(ctx.prepared) if ctx.prepared is not None else one_ref(ctx, const.SUB_CANCEL)
    await cancellable(ctx.services, ctx.client, ctx.team_id, ctx.user_id, ref)
    outcome = await cancel(ctx.services, team_id=ctx.team_id, ref=ref, actor=ctx.user_id)
    if outcome.send is None:
        await ctx.reply(outcome.message)
        return
    card = card_of(outcome.send)
    note = escape(outcome.message)
    occurrence = await series.occurrence_note(ctx.services, outcome.send)
    if occurrence is not None:
        note = f"{note} {occurrence}"
    await ctx.reply(outcome.message, blocks=views.outcome_blocks(card, note=note))


async def cancel(services: Services, *, team_id: str, ref: str, actor: str) -> CancelOutcome:
    """Cancel `ref`; the notifier updates the send's messages and tells its requester."""
    try:
        return await services.recall.cancel(team_id=team_id, ref=ref, actor=actor)
    except SendNotFound as error:
        raise CommandError(str(error)) from None


NOT_YOURS: Final = (
    "You can cancel only your own sends. Stopping someone else's send, or a notification "
    "PushOps did not send, needs the sender, responder or admin role: ask a PushOps admin "
    "in `/push setup`."
)
NOT_YOURS_GUEST: Final = (
    "Guests of this workspace can cancel only their own sends. Stopping anyone else's needs "
    "the sender or responder role, given to you by name by a PushOps admin in `/push setup`."
)


async def may_cancel(
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    user_id: str,
    send: Send | None,
    *,
    ref: str = "",
) -> None:
    """Refuse (a CommandError, audited as `cancel.denied`) who may not stop `send`.

    Its requester always may. Anyone else's send, or a notification PushOps did not make
    (`send` None, `ref` its id), needs the sender, responder or admin role.
    """
    if send is not None and send.requester_id == user_id:
        return
    actor = await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)
    if actor.can_cancel_any():
        return
    aimed = target(send) if send is not None else f"notification {ref}"[:200]
    why = why_not(actor, "not_own_send" if send is not None else "not_a_pushops_send")
    denial = Denial(team_id, user_id, "cancel", "cancel", why, aimed)
    raise deny(services, denial, NOT_YOURS_GUEST if actor.is_guest else NOT_YOURS)


async def cancellable(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, ref: str
) -> None:
    """`may_cancel` for the send `ref` names (a short or OneSignal id). A ref that names no
    send and is no OneSignal id either passes: cancelling it answers that it is unknown."""
    try:
        send: Send | None = await services.recall.find(team_id=team_id, ref=ref)
    except SendNotFound:
        if send_uuid(ref.strip().strip("`")) is None:
            return
        send = None
    await may_cancel(services, client, team_id, user_id, send, ref=ref)


# --- the Cancel button ------------------------------------------------------------------------

STOPPED: Final = frozenset({"stopped_before_sending", "cancelled_at_onesignal"})
"""Cancel outcomes after which the send is cancelled (the others leave it as it was)."""

UNKNOWN_SEND: Final = "That send is not known in this workspace."


async def stop_clicked(
    services: Services, body: Mapping[str, Any], client: AsyncWebClient
) -> tuple[str, CancelOutcome]:
    """(clicker, outcome) of a click on a Cancel button: everything checked again here.

    The workspace is the request's, the send (the button's value) must be one of its own,
    and the clicker must be allowed to stop it (`may_cancel`). CommandError, audited as
    `cancel.denied`, otherwise: a forged or stale value names no send of this workspace.
    """
    team_id, user_id = interaction_ids(body, services=services, area="cancel")
    send = await load_send(services, team_id, button_send_id(body))
    if send is None:
        raise deny(
            services, Denial(team_id, user_id, "cancel", "cancel", "unknown_send"), UNKNOWN_SEND
        )
    await may_cancel(services, client, team_id, user_id, send)
    return user_id, await cancel(services, team_id=team_id, ref=send.short_id, actor=user_id)


def stopped_blocks(outcome: CancelOutcome, user_id: str) -> list[Block]:
    """The message clicked on, once the send is stopped: who stopped it and when, and what
    that means."""
    assert outcome.send is not None
    note = f"{stopped_note(outcome.send, user_id)} {escape(outcome.message)}"
    return views.outcome_blocks(card_of(outcome.send), note=note)


def _outbox_owned(body: Mapping[str, Any], send: Send) -> bool:
    """Whether the message clicked on is one the outbox keeps up to date (the log-channel
    post, the approval request): the cancel's news updates it there, in order with the
    send's other news, so replacing it here too would race that update."""
    container = body.get("container") or {}
    where = (str(container.get("channel_id")), str(container.get("message_ts")))
    return any(
        isinstance(place, dict) and (str(place.get("channel")), str(place.get("ts"))) == where
        for place in send.slack_messages.values()
    )


async def _button_clicked(
    services: Services, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
) -> None:
    try:
        user_id, outcome = await stop_clicked(services, body, client)
    except CommandError as error:
        await refuse(respond, str(error))
        return
    if outcome.send is None or outcome.kind not in STOPPED:
        await refuse(respond, outcome.message)
        return
    if _outbox_owned(body, outcome.send):
        await refuse(respond, outcome.message)
        return
    blocks = stopped_blocks(outcome, user_id)
    await respond(text=outcome.message, blocks=blocks, replace_original=True)


def register(app: AsyncApp, services: Services) -> None:
    """Listen to the Cancel buttons on messages about a send."""

    async def on_cancel(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        stopping = _button_clicked(services, body, respond, client)
        services.after_ack(stopping, respond=respond, kind="block_actions")

    app.action(const.ACTION_CANCEL_SEND)(on_cancel)


SUBCOMMAND = Subcommand(name=const.SUB_CANCEL, handle=handle, before_ack=before_ack)
