"""What every way of sending shares: storing a send, and taking it on after the ack.

The command line (`commands.send`), the compose form (`commands.send_form`) and the buttons
of previews and missed sends all end here, so a send is announced, dispatched and answered
the same way whichever door it came through.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import (
    Audience,
    SendContent,
    SendNotFound,
    SendRejected,
    SendService,
    StoreInterrupted,
    StoreRefused,
)
from bot.delivery.attempt import Attempt
from bot.errors import Unfinished
from bot.policy import ApprovalPolicy, PolicyError, approvals_required
from bot.services import Services
from commands._format import Block, escape, unknown_app_text
from commands.access import resolve_actor, team_facts, why_not
from commands.cards import card_of
from commands.context import CommandError
from commands.denials import Denial, deny, target
from commands.notify import notifier_of
from commands.requester import Requester
from commands.views import sends as views
from storage import queries
from storage.db import WriteBusy, limited_lock_wait
from storage.errors import AppNotFound
from storage.models import Send, SendState

log = logging.getLogger(__name__)

Reply = Callable[[str, Sequence[Block]], Awaitable[None]]
"""Answers the requester where they are (a response_url, an ephemeral message, a DM)."""


def sends_of(services: Services) -> SendService:
    """The send service, or a CommandError saying sending is not possible here."""
    sends = services.sends
    if sends is None:
        raise CommandError(
            "Sending is not set up in this PushOps: it runs without a database. "
            "Ask whoever runs it to set DATABASE_URL and PUSHOPS_SECRET_KEY."
        )
    return sends


async def policy_of(services: Services, team_id: str) -> ApprovalPolicy:
    """The workspace's approval policy (off when it has none; cached, see `team_facts`)."""
    settings = (await team_facts(services, team_id)).settings
    try:
        return ApprovalPolicy.from_settings(settings)
    except PolicyError as error:
        # Refuse rather than send without the approval the admins asked for.
        raise CommandError(f"{error}. Until then nothing can be sent.") from None


async def linked_external_id(services: Services, team_id: str, user_id: str) -> str:
    """The requester's own external id for `--test`; CommandError saying how to link one."""
    linked = None
    if services.database is not None:
        async with services.database.sessions() as session:
            linked = await queries.get_linked_external_id(
                session=session, team_id=team_id, user_id=user_id
            )
    if linked is None:
        raise CommandError(
            "--test sends only to your own external id, and you have none linked yet. "
            "Link it with `/push me YOUR_EXTERNAL_ID`, then try again."
        )
    return linked


@dataclass(frozen=True, kw_only=True)
class Draft:
    """A send as given, ready to store: validated content and audience."""

    app: str | None
    content: SendContent
    audience: Audience
    due_at: datetime | None
    is_test: bool = False


STORE_WAIT: Final = 1.0
"""Seconds storing a send may wait for another writer's lock before it gives up."""

BUSY: Final = (
    "PushOps is busy right now: nothing was stored and nothing will be sent. Try again in a moment."
)
REFUSED: Final = (
    "PushOps's database refused to store this send, so nothing was stored and nothing will be "
    "sent. Send it again once the database is back; your admin finds the details in PushOps's "
    "logs."
)
INTERRUPTED: Final = (
    "PushOps lost its database while storing this send, so it cannot tell whether it was "
    "stored. `/push list` shows it if it was, and then it goes out as planned; if it is not "
    "listed, nothing was stored and nothing will be sent."
)


async def store(
    services: Services,
    *,
    team_id: str,
    requester: Requester,
    draft: Draft,
    confirm: bool,
    submission: str | None = None,
) -> Send:
    """Store the send (a draft awaiting its preview's Send, or confirmed); DB only.

    One write transaction (the row and its audit event); the roles and policy it needs come
    from a cache. It waits for other writers at most `STORE_WAIT` s and then refuses with
    `BUSY` having stored nothing; a store that got its locks is never cut short, so whoever
    is told it failed can be sure nothing goes out. A database that refuses the write says
    so (`REFUSED`: nothing stored), and one lost at the commit says that it cannot tell
    (`INTERRUPTED`). SendRejected (bad field, unknown app) comes out for the caller to show;
    an unknown app's is worded like every other command's.
    """
    policy = await policy_of(services, team_id)
    required = approvals_required(policy, draft.audience, is_test=draft.is_test)
    sends = sends_of(services)
    try:
        with limited_lock_wait(STORE_WAIT):
            return await sends.create(
                team_id=team_id,
                requester_id=requester.actor.user_id,
                app_name=draft.app,
                content=draft.content,
                audience=draft.audience,
                due_at=draft.due_at,
                timezone=requester.zone_name,
                confirm=confirm,
                is_test=draft.is_test,
                approvals_required=required,
                claim=confirm,  # `go` delivers it right after the ack
                submission=submission,  # a form stores one send (see `SendService.create`)
            )
    except WriteBusy:
        raise CommandError(BUSY) from None
    except (StoreRefused, StoreInterrupted) as error:
        log.warning("could not store a send of team %s: %s", team_id, error)
        raise CommandError(
            INTERRUPTED if isinstance(error, StoreInterrupted) else REFUSED
        ) from None
    except SendRejected as error:
        if error.field != "app":
            raise
        raise SendRejected("app", await unknown_app(services, team_id, draft.app)) from None
    except AppNotFound:  # removed while the send was being stored
        raise SendRejected("app", await unknown_app(services, team_id, draft.app)) from None


async def app_names(services: Services, team_id: str) -> list[str]:
    """The names of the workspace's apps (none without a database)."""
    if services.database is None:
        return []
    async with services.database.sessions() as session:
        return [app.name for app in await queries.list_apps(session=session, team_id=team_id)]


async def unknown_app(services: Services, team_id: str, name: str | None) -> str:
    """`unknown_app_text` for app `name` (None: the default) with the apps there are now."""
    return unknown_app_text(name, await app_names(services, team_id))


def approvals_note(send: Send, policy: ApprovalPolicy) -> str | None:
    """`Needs 1 approval in #approvals before it goes out.` when the send needs any."""
    if send.approvals_required <= 0:
        return None
    noun = "approval" if send.approvals_required == 1 else "approvals"
    where = f" in <#{policy.channel_id}>" if policy.channel_id else ""
    return f"Needs {send.approvals_required} {noun}{where} before it goes out."


async def go(services: Services, send: Send, reply: Reply, *, notes: Sequence[str] = ()) -> None:
    """Take a confirmed send on: announce it, deliver or arm it, answer with what happened.

    A send due now is delivered while the requester waits for this answer, so its outcome
    comes here rather than in a DM; a later one (or one waiting for approval) is told by DM.
    Heavy work: it waits for a place (`Services.heavy_work`). If the database refuses to
    record what OneSignal answered, the requester is told what is known at once, and the
    usual answer follows once it is recorded. An unexpected failure is told without asking
    to try again: the send may have gone out.
    """
    async with services.heavy_work():
        try:
            current, reason = await _take_on(services, send, reply)
            await services.acks_first()
            await answer(services, current, reply, notes=notes, reason=reason)
        except CommandError:
            raise
        except Exception as error:  # broad: re-raised with what the requester may rely on
            raise Unfinished(views.unfinished_text(send.short_id)) from error


async def _take_on(services: Services, send: Send, reply: Reply) -> tuple[Send, str | None]:
    """Announce, then deliver (due now) or dispatch the send; (its row now, why it failed)."""
    sends = sends_of(services)
    notifier = notifier_of(services)
    if notifier is not None and send.state != SendState.PENDING_APPROVAL:
        await notifier.announce(send)
        await services.acks_first()
    if not (sends.claimed_here(send) or _due_now(send)):  # claimed here: stored by `store`
        await sends.dispatch(send)  # arms its timer, or asks the approvers
        return send, None
    answering: AbstractContextManager[list[str]] = (
        notifier.answering(send.id) if notifier is not None else nullcontext([])
    )

    async def recording(attempt: Attempt) -> None:
        text = views.recording_text(send.short_id, attempt.notification_ids, attempt.reason)
        await reply(text, views.recording_blocks(text))

    with answering as reasons:  # the row as delivery left it: no re-read
        delivered = await sends.deliver(send, unrecorded=recording)
    if delivered is None:  # not claimed here: another worker took it, or it is not due yet
        delivered = await sends.find(team_id=send.team_id, ref=send.short_id)
        if delivered.state == SendState.SCHEDULED:
            await sends.dispatch(delivered)
    return delivered, reasons[-1] if reasons else None


def _due_now(send: Send) -> bool:
    return send.state == SendState.SCHEDULED and (
        send.due_at is None or send.due_at <= datetime.now(UTC)
    )


async def answer(
    services: Services,
    send: Send,
    reply: Reply,
    *,
    notes: Sequence[str] = (),
    reason: str | None = None,
) -> None:
    """Reply with the send's card (and `reason` it failed, even partly), and what comes next."""
    if reason is None and send.state == SendState.FAILED:
        reason = send.last_error
    card = card_of(send, reason=reason)
    follow = _what_next(send, await policy_of(services, send.team_id))
    said = [escape(text) for text in notes]
    note = " ".join([*said, follow]) if follow else " ".join(said) or None
    await reply(views.outcome_text(card), views.outcome_blocks(card, note=note))


def _what_next(send: Send, policy: ApprovalPolicy) -> str | None:
    cancel = f"`/push cancel {send.short_id}` stops it."
    if send.state == SendState.PENDING_APPROVAL:
        return f"{approvals_note(send, policy)} You get a message when it is decided."
    if send.state == SendState.SCHEDULED and not _due_now(send):
        return f"{cancel} You get a message when it goes out."
    if send.state in (SendState.SCHEDULED, SendState.SENDING):
        return f"It is on its way; you get a message with the result. {cancel}"
    return None


def send_uuid(value: object) -> uuid.UUID | None:
    """The send UUID a button carries, or None for a malformed one."""
    try:
        return uuid.UUID(str(value))
    except ValueError:
        return None


def button_send_id(body: Mapping[str, Any]) -> uuid.UUID | None:
    """The send UUID in the value of the button clicked in `body`."""
    actions = body.get("actions") or [{}]
    return send_uuid(actions[0].get("value"))


async def load_send(services: Services, team_id: str, send_id: uuid.UUID | None) -> Send | None:
    """The send with this UUID in this workspace (another workspace's is not found)."""
    if services.database is None or send_id is None:
        return None
    async with services.database.sessions() as session:
        return await queries.get_send(session=session, team_id=team_id, send_id=send_id)


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
        send: Send | None = await sends_of(services).find(team_id=team_id, ref=ref)
    except SendNotFound:
        if send_uuid(ref.strip().strip("`")) is None:
            return
        send = None
    await may_cancel(services, client, team_id, user_id, send, ref=ref)


GUEST_SEES_NOTHING: Final = (
    "Guests of this workspace see PushOps sends only once a PushOps admin gives them a role "
    "by name in `/push setup`."
)


async def may_see_sends(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, *, area: str
) -> None:
    """Refuse (audited as `<area>.denied`) a guest holding no role: sends are for members."""
    actor = await resolve_actor(team_id=team_id, user_id=user_id, client=client, services=services)
    if not actor.can_see_sends():
        raise deny(services, Denial(team_id, user_id, area, area, "guest"), GUEST_SEES_NOTHING)


async def refuse(respond: AsyncRespond, message: str) -> None:
    """An ephemeral answer to a clicker that leaves the message clicked on as it is."""
    await respond(text=message, response_type="ephemeral", replace_original=False)


def replacing(respond: AsyncRespond) -> Reply:
    """A reply that replaces the message whose button was clicked."""

    async def reply(text: str, blocks: Sequence[Block]) -> None:
        await respond(text=text, blocks=list(blocks), replace_original=True)

    return reply
