"""What every way of sending shares: storing a send, and taking it on after the ack.

The command line (`commands.send.command`), the compose form (`commands.send.form`) and the
buttons of previews and missed sends all end here, so a send is announced, dispatched and
answered the same way whichever door it came through.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

from slack_sdk.web.async_client import AsyncWebClient

from bot.delivery import (
    Audience,
    DeliveryOptions,
    Send,
    SendContent,
    SendRejected,
    SendState,
    StoreBusy,
    StoreInterrupted,
    StoreRefused,
)
from bot.delivery.attempt import Attempt
from bot.errors import Unfinished
from bot.policy import ApprovalPolicy, PolicyError, approvals_required
from bot.services import Services
from commands._format import Block, escape, unknown_app_text
from commands.access import team_facts
from commands.cards import card_of, estimate_text
from commands.context import CommandError, Reply
from commands.notify import notifier_of
from commands.outgoing import SLACK_ERRORS
from commands.send.requester import Requester, requester
from commands.views import sends as views

log = logging.getLogger(__name__)


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
    linked = await services.workspaces.linked_external_id(team_id, user_id)
    if linked is None:
        raise CommandError(
            "--test sends only to your own external id, and you have none linked yet. "
            "Link it with `/push me YOUR_EXTERNAL_ID`, then try again."
        )
    return linked


@dataclass(frozen=True, kw_only=True)
class Draft:
    """A send as given, ready to store: validated content, audience and delivery options."""

    app: str | None
    content: SendContent
    audience: Audience
    due_at: datetime | None
    is_test: bool = False
    options: DeliveryOptions | None = None


STORE_WAIT: Final = 1.0
"""Seconds storing a send may wait for another writer's lock before it gives up."""

BUSY: Final = (
    "PushOps is busy right now: nothing was stored and nothing will be sent. Try again in a moment."
)
REFUSED: Final = (
    "PushOps's database refused to store this {what}, so nothing was stored and nothing will be "
    "sent. Send it again once the database is back; your admin finds the details in PushOps's "
    "logs."
)
INTERRUPTED: Final = (
    "PushOps lost its database while storing this {what}, so it cannot tell whether it was "
    "stored. `/push {listing}` shows it if it was, and then it goes out as planned; if it is "
    "not listed, nothing was stored and nothing will be sent."
)


@contextmanager
def told_store_errors(team_id: str, what: str = "send") -> Iterator[None]:
    """Tell a store's failure (`StoreBusy`, `StoreRefused`, `StoreInterrupted`) as a
    CommandError saying what the requester may rely on; `what` is "send" or "series"."""
    try:
        yield
    except StoreBusy:
        raise CommandError(BUSY) from None
    except (StoreRefused, StoreInterrupted) as error:
        log.warning("could not store a %s of team %s: %s", what, team_id, error)
        if isinstance(error, StoreRefused):
            raise CommandError(REFUSED.format(what=what)) from None
        listing = "series" if what == "series" else "list"
        raise CommandError(INTERRUPTED.format(what=what, listing=listing)) from None


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
    sends = services.sends
    try:
        with told_store_errors(team_id):
            return await sends.create(
                team_id=team_id,
                requester_id=requester.actor.user_id,
                app_name=draft.app,
                content=draft.content,
                audience=draft.audience,
                due_at=draft.due_at,
                options=draft.options,
                timezone=requester.zone_name,
                confirm=confirm,
                is_test=draft.is_test,
                approvals_required=required,
                claim=confirm,  # `go` delivers it right after the ack
                submission=submission,  # a form stores one send (see `Sends.create`)
                lock_wait=STORE_WAIT,
            )
    except SendRejected as error:
        if error.field != "app":
            raise
        raise SendRejected("app", await unknown_app(services, team_id, draft.app)) from None


async def app_names(services: Services, team_id: str) -> list[str]:
    """The names of the workspace's apps, default first."""
    return await services.workspaces.app_names(team_id)


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
    Heavy work: it waits for a place (`Admission.heavy_work`). If the database refuses to
    record what OneSignal answered, the requester is told what is known at once, and the
    usual answer follows once it is recorded. An unexpected failure is told without asking
    to try again: the send may have gone out.
    """
    async with services.admission.heavy_work():
        try:
            current, reason = await _take_on(services, send, reply)
            await services.admission.acks_first()
            await answer(services, current, reply, notes=notes, reason=reason)
        except CommandError:
            raise
        except Exception as error:  # broad: re-raised with what the requester may rely on
            raise Unfinished(views.unfinished_text(send.short_id)) from error


async def _take_on(services: Services, send: Send, reply: Reply) -> tuple[Send, str | None]:
    """Announce, then deliver (due now) or dispatch the send; (its row now, why it failed)."""
    deliverer = services.deliverer
    notifier = notifier_of(services)
    if notifier is not None and send.state != SendState.PENDING_APPROVAL:
        await notifier.announce(send)
        await services.admission.acks_first()
    if not (deliverer.claimed_here(send) or _due_now(send)):  # claimed here: stored by `store`
        await deliverer.dispatch(send)  # arms its timer, or asks the approvers
        return send, None
    answering: AbstractContextManager[list[str]] = (
        notifier.answering(send.id) if notifier is not None else nullcontext([])
    )

    async def recording(attempt: Attempt) -> None:
        text = views.recording_text(send.short_id, attempt.notification_ids, attempt.reason)
        await reply(text, views.recording_blocks(text))

    with answering as reasons:  # the row as delivery left it: no re-read
        delivered = await deliverer.deliver(send, unrecorded=recording)
    if delivered is None:  # not claimed here: another worker took it, or it is not due yet
        delivered = await services.recall.find(team_id=send.team_id, ref=send.short_id)
        if delivered.state == SendState.SCHEDULED:
            await deliverer.dispatch(delivered)
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


async def reach(services: Services, send: Send) -> str:
    """How many subscriptions the send's audience reaches now (OneSignal; heavy work)."""
    try:
        async with services.admission.heavy_work():
            estimate = await services.recall.estimate(
                team_id=send.team_id,
                app_name=send.app_name,
                audience=Audience.from_stored(send.audience),
            )
    except SendRejected as error:  # its app was removed meanwhile
        return str(error)
    return estimate_text(estimate)


async def preview_message(
    services: Services, send: Send, reply: Reply, *, notes: Sequence[str] = ()
) -> None:
    """Answer with the preview of a draft as a message: the send, its reach, Send and Cancel."""
    said = list(notes)
    needs = approvals_note(send, await policy_of(services, send.team_id))
    if needs:
        said.append(needs)
    card = card_of(send)
    text = await reach(services, send)
    await reply(
        views.preview_text(card, estimate=text),
        views.preview_blocks(card, estimate=text, notes=said),
    )


async def confirm_draft(
    services: Services, client: AsyncWebClient, *, team_id: str, user_id: str, draft: Send
) -> Send | None:
    """A preview's Send: the right to send checked again (roles may have changed since), the
    approvals the policy asks for now, then draft -> scheduled or pending (compare-and-set).

    None when it was confirmed or dropped already (Send pressed twice): it goes out once.
    CommandError when the person may not send.
    """
    await requester(
        services=services, client=client, team_id=team_id, user_id=user_id,
        what="confirm a preview",
    )  # fmt: skip
    policy = await policy_of(services, team_id)
    needed = approvals_required(policy, Audience.from_stored(draft.audience), is_test=draft.is_test)
    return await services.sends.confirm(
        team_id=team_id, send_id=draft.id, actor=user_id, approvals_required=needed
    )


def answer_where(
    services: Services, client: AsyncWebClient, team_id: str, user_id: str, channel: str | None
) -> Reply:
    """Answers in the channel a form was opened from (only to the requester), else by DM."""

    async def reply(text: str, blocks: Sequence[Block]) -> None:
        if channel:
            try:
                await client.chat_postEphemeral(
                    channel=channel, user=user_id, text=text, blocks=list(blocks)
                )
                return
            except SLACK_ERRORS as error:  # not in that channel, say: a DM will do
                log.info("ephemeral answer not posted: %s", type(error).__name__)
        notifier = notifier_of(services)
        if notifier is not None:
            await notifier.tell(team_id, user_id, text, blocks)

    return reply
