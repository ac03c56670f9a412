"""The buttons on messages about a send that wait for someone: Approve / Reject on an approval
request, and Send now / Drop on the direct message about a missed send.

Every click is checked again on the server (invariant 6): the clicker's workspace is the
request's, the send belongs to it, the clicker may do this (an approver who is not the
requester; for a missed send, its requester, who may still send, under the approval policy
of now), and the send is still in the state the button was made for. The state machine's
compare-and-set keeps a double click from acting twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Final

from slack_bolt.async_app import AsyncApp
from slack_bolt.context.ack.async_ack import AsyncAck
from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot import const
from bot.delivery import (
    Audience,
    DecisionRefused,
    NoLongerPending,
    Send,
    SendNotFound,
    SendState,
)
from bot.policy import approvals_required
from bot.services import Services
from commands.access import interaction_ids, resolve_actor, why_not
from commands.cancel import cancel
from commands.cards import card_of
from commands.context import (
    CommandError,
    Respond,
    button_send_id,
    load_send,
    refuse,
    replacing,
)
from commands.denials import Denial, deny, target
from commands.notify import notifier_of
from commands.send.requester import requester
from commands.send.storing import go, policy_of
from commands.views import sends as views

_STATE_WORDS: Final = {
    SendState.SCHEDULED: "is scheduled",
    SendState.SENDING: "is being sent",
    SendState.SENT: "was already sent",
    SendState.FAILED: "failed",
    SendState.CANCELLED: "was cancelled",
    SendState.REJECTED: "was rejected",
    SendState.EXPIRED: "expired",
    SendState.MISSED: "was missed",
    SendState.PENDING_APPROVAL: "is waiting for approval",
    SendState.DRAFT: "is only a draft",
}

Handler = Callable[[Services, dict[str, Any], Respond, AsyncWebClient], Awaitable[None]]


def _state_words(send: Send) -> str:
    return f"{views.ids_text(card_of(send))} {_STATE_WORDS[send.state]}"


async def _clicked(
    services: Services, body: dict[str, Any], expected: SendState, area: str
) -> tuple[str, str, Send]:
    """(team, clicker, send) for a click on a button made for a send in `expected`.

    CommandError (the refusal to show the clicker) when someone of another workspace
    clicked, the send is unknown here (a button PushOps made names a send of its own
    workspace, so that is audited as `<area>.denied`), or it has moved on since the button
    was made.
    """
    team_id, user_id = interaction_ids(body, services=services, area=area)
    send = await load_send(services, team_id, button_send_id(body))
    if send is None:
        denial = Denial(team_id, user_id, area, "decide on a send", "unknown_send")
        raise deny(services, denial, "That send is not known in this workspace.")
    if send.state != expected:
        raise CommandError(f"{_state_words(send)}; this button no longer applies.")
    return team_id, user_id, send


# --- approvals -------------------------------------------------------------------------------


async def _check_approver(
    services: Services,
    client: AsyncWebClient,
    team_id: str,
    user_id: str,
    send: Send,
    decision: str,
) -> None:
    """Refuse (audited as `approval.denied`) the requester and whoever is no approver."""
    if user_id == send.requester_id:
        denial = Denial(team_id, user_id, "approval", decision, "own_send", target(send))
        message = f"You asked for {views.ids_text(card_of(send))}; someone else has to approve it."
        raise deny(services, denial, message)
    actor = await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)
    if not actor.can_approve():
        why = why_not(actor, "not_approver")
        denial = Denial(team_id, user_id, "approval", decision, why, target(send))
        raise deny(services, denial, NOT_AN_APPROVER)


NOT_AN_APPROVER: Final = (
    "Only PushOps approvers can approve or reject sends. Ask a PushOps admin for the approver "
    "role in `/push setup`."
)


async def approve_clicked(
    services: Services, body: dict[str, Any], respond: Respond, client: AsyncWebClient
) -> None:
    """Approve on a request (or the Home tab): checked, recorded, the request updated;
    `respond` answers the clicker."""
    team_id, user_id, send = await _clicked(services, body, SendState.PENDING_APPROVAL, "approval")
    await _check_approver(services, client, team_id, user_id, send, "approve")
    notifier = notifier_of(services)
    try:
        result = await services.sends.approve(team_id=team_id, send_id=send.id, approver_id=user_id)
    except NoLongerPending:
        raise await _moved_on(services, send, "approval") from None
    except (DecisionRefused, SendNotFound) as error:
        raise CommandError(str(error)) from None
    if result is None:
        raise CommandError("That send is not known in this workspace.")
    if result.state == SendState.PENDING_APPROVAL:
        if notifier is not None:
            await notifier.close_approval(result, _still_needed(result, user_id), keep_buttons=True)
        await refuse(respond, f"Your approval of {views.ids_text(card_of(result))} is recorded.")
        return
    if notifier is not None:
        await notifier.close_approval(result, f"Approved by <@{user_id}>.")
        if result.state == SendState.SCHEDULED:  # later: delivered, failed... are told by DM
            card = card_of(result)
            await notifier.tell_requester(
                result,
                f"<@{user_id}> approved {views.ids_text(card)}.",
                views.outcome_blocks(card, note=f"Approved by <@{user_id}>."),
                outcome="approved",
            )


async def _moved_on(services: Services, send: Send, decision: str) -> CommandError:
    """The refusal of a decision on a send that left pending approval meanwhile (a cancel,
    an expiry, another approver's rejection won the race): nothing of it was recorded."""
    current = await load_send(services, send.team_id, send.id) or send
    return CommandError(f"{_state_words(current)} meanwhile; your {decision} was not recorded.")


def _still_needed(send: Send, user_id: str) -> str:
    left = send.approvals_required - send.approvals_received
    noun = "approval" if left == 1 else "approvals"
    return f"Approved by <@{user_id}>; {left} more {noun} needed."


async def reject_clicked(
    services: Services, body: dict[str, Any], respond: Respond, client: AsyncWebClient
) -> None:
    """Reject on a request (or the Home tab): checked and recorded; the notifier tells."""
    team_id, user_id, send = await _clicked(services, body, SendState.PENDING_APPROVAL, "approval")
    await _check_approver(services, client, team_id, user_id, send, "reject")
    try:
        result = await services.sends.reject(
            team_id=team_id, send_id=send.id, approver_id=user_id, reason=None
        )
    except NoLongerPending:
        raise await _moved_on(services, send, "rejection") from None
    except (DecisionRefused, SendNotFound) as error:
        raise CommandError(str(error)) from None
    if result is None:
        raise CommandError("That send is not known in this workspace.")
    # The rejection's messages (request closed, log, the requester's DM) are the notifier's.


# --- missed sends ----------------------------------------------------------------------------


async def _missed(
    services: Services, body: dict[str, Any], area: str, what: str
) -> tuple[str, str, Send]:
    """(team, clicker, send) for Send now / Drop: its requester's decision only."""
    team_id, user_id, send = await _clicked(services, body, SendState.MISSED, area)
    if user_id != send.requester_id:
        denial = Denial(team_id, user_id, area, what, "not_requester", target(send))
        message = f"Only <@{send.requester_id}>, who asked for this send, can decide."
        raise deny(services, denial, message)
    return team_id, user_id, send


async def _send_now(
    services: Services, body: dict[str, Any], respond: Respond, client: AsyncWebClient
) -> None:
    team_id, user_id, send = await _missed(services, body, "send", "send a missed send now")
    # As on a preview's Send: the right to send and the approval policy are checked again,
    # since roles and policy may have changed since the send was asked for.
    await requester(
        services=services,
        client=client,
        team_id=team_id,
        user_id=user_id,
        what="send a missed send now",
    )
    policy = await policy_of(services, team_id)
    needed = approvals_required(policy, Audience.from_stored(send.audience), is_test=send.is_test)
    resent = await services.sends.resend_missed(
        team_id=team_id, send_id=send.id, actor=user_id, approvals_required=needed, claim=True
    )
    if resent is None:  # a second click, or a Drop, came first
        again = await load_send(services, team_id, send.id)
        raise CommandError(f"{_state_words(again or send)}; this button no longer applies.")
    await go(services, resent, replacing(respond))


async def _drop(
    services: Services, body: dict[str, Any], respond: Respond, client: AsyncWebClient
) -> None:
    team_id, user_id, send = await _missed(services, body, "cancel", "drop a missed send")
    outcome = await cancel(services, team_id=team_id, ref=send.short_id, actor=user_id)
    card = card_of(outcome.send or send)
    await replacing(respond)(
        outcome.message, views.outcome_blocks(card, note="Dropped; nothing was sent.")
    )


# --- listeners -------------------------------------------------------------------------------


def _listener(services: Services, handler: Handler) -> Callable[..., Awaitable[None]]:
    """Ack at once; run `handler` after the ack, its CommandError told to the clicker only."""

    async def work(body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient) -> None:
        try:
            await handler(services, body, respond, client)
        except CommandError as error:
            await refuse(respond, str(error))

    async def listener(
        ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond, client: AsyncWebClient
    ) -> None:
        await ack()
        services.after_ack(work(body, respond, client), respond=respond, kind="block_actions")

    return listener


def register(app: AsyncApp, services: Services) -> None:
    """Listen to Approve / Reject and Send now / Drop."""
    app.action(const.ACTION_APPROVE)(_listener(services, approve_clicked))
    app.action(const.ACTION_REJECT)(_listener(services, reject_clicked))
    app.action(const.ACTION_MISSED_SEND_NOW)(_listener(services, _send_now))
    app.action(const.ACTION_MISSED_DROP)(_listener(services, _drop))
