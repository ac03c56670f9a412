"""The Slack side of what happens to sends: DMs to the requester, the log channel, approvals.

`SlackNotifier` implements `bot.notifier.Notifier`; `register` plugs it into the services'
relay in `serve`, `plug_in` in `pushops worker`, so whichever process reaches an end of a send
tells it. Every end reaches the requester in a direct message from the app (ephemeral
replies cannot be edited, and a `response_url` dies after 30 minutes), except what they were
just answered about where they acted: a send a command is answering in place (`answering`),
their own cancel. The log channel, when the workspace has one, gets one message per send,
posted when the send is announced and updated in place at every later step; its channel and
ts are kept in the send's `slack_messages`.

Nothing here calls Slack: every message is owed through the Slack outbox (`Postbox`, rows of
`storage.outbox` drained by `bot.outbox.OutboxDrainer` and delivered by
`commands.outgoing.OutboxDelivery`), so a burst is paced by Slack's limits, a process that
dies leaves its messages to another, and updates of one message queued together are sent
once, the latest. Each DM is keyed by its send, outcome and the moment of the change, so an
outcome told twice is sent once; the log message is keyed by its send (`log:<id>`), the
approval request too (`approval:<id>`). What matters most goes first (`URGENT`).

A send that went out owes its final counters an hour later (`storage.outbox.COUNTERS`, made
from `Send.counters_due_at`): the drainer hands that row to `render_notice`, which reads them
once (`bot.delivery.counters`) and adds them to the log message and the requester's "was
sent" DM in place (`final_counters`).
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import uuid
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final

from slack_bolt.async_app import AsyncApp

from bot.delivery import Audience, Counted, Later, Send, SendRejected, SendState, Uncountable
from bot.digest import Coalescer
from bot.notifier import NotifierRelay
from bot.outbox import (
    COUNTERS,
    Failure,
    OutboxDrainer,
    OutboxEntry,
    OutboxKind,
    OutboxMessage,
    Outcome,
    Wait,
    find_owed,
    find_posted,
    owe,
)
from bot.policy import ApprovalPolicy, PolicyError
from bot.services import Services
from bot.slack_clients import ClientSource, client_source
from bot.slack_limits import Pacer
from bot.workspaces import Workspace
from commands._format import Block, context, escape
from commands.access import team_facts
from commands.cards import card_of, estimate_text
from commands.outgoing import OutboxDelivery
from commands.views import sends as views

LOG: Final = "log"
APPROVAL: Final = "approval"
"""Purposes of the Slack messages kept in `Send.slack_messages`."""

URGENT: Final = 0
NORMAL: Final = 1
ROUTINE: Final = 2
"""Priorities of owed messages, drained lowest first: approval requests, cancel confirmations
and failures before routine news of a send that went out."""

log = logging.getLogger(__name__)

_STILL_IN: Final = {
    "missed": SendState.MISSED,
    "held": SendState.PENDING_APPROVAL,
    "approval_requested": SendState.PENDING_APPROVAL,
}
"""Outcomes a send moves on from: a notice of one found after the send moved on (sent again,
approved, cancelled) is not told, the later change is."""

_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")


def grace_words(seconds: float) -> str:
    """`10 minutes`, `90 seconds`, `2 hours`."""
    for size, unit in ((3600, "hour"), (60, "minute")):
        if seconds >= size and seconds % size == 0:
            count = int(seconds // size)
            return f"{count} {unit}{'s' if count != 1 else ''}"
    count = int(seconds)
    return f"{count} second{'s' if count != 1 else ''}"


class SlackNotifier:
    """`bot.notifier.Notifier` in Slack messages (see the module's docstring)."""

    def __init__(self, *, services: Services, postbox: Postbox) -> None:
        self._services = services
        self._postbox = postbox
        self._answering: dict[uuid.UUID, list[str]] = {}

    # --- answering in place -----------------------------------------------------------------

    @contextlib.contextmanager
    def answering(self, send_id: uuid.UUID) -> Iterator[list[str]]:
        """While a command replies about this send itself, outcomes skip the requester's DM.

        Yields the list that collects the reasons of failures told meanwhile, for the reply.
        """
        reasons: list[str] = []
        self._answering[send_id] = reasons
        try:
            yield reasons
        finally:
            self._answering.pop(send_id, None)

    # --- the Notifier protocol -------------------------------------------------------------

    async def send_delivered(self, send: Send) -> None:
        """Update the log message; DM the requester unless a command answers in place."""
        card = card_of(send)
        owed = await self._log_entries(send, card, ROUTINE)
        if send.id not in self._answering:
            owed.append(
                self._dm(send, "delivered", views.outcome_text(card), views.outcome_blocks(card))
            )
        await self._postbox.owe(owed, settles=(send, "delivered"))

    async def send_failed(self, send: Send, reason: str) -> None:
        """Update the log message; DM the requester (with why) unless answered in place."""
        card = card_of(send, reason=reason)
        owed = await self._log_entries(send, card, NORMAL)
        answering = self._answering.get(send.id)
        if answering is not None:
            answering.append(reason)
        else:
            text, blocks = views.outcome_text(card), views.outcome_blocks(card)
            owed.append(self._dm(send, "failed", text, blocks, priority=URGENT))
        await self._postbox.owe(owed, settles=(send, "failed"))

    async def send_missed(self, send: Send) -> None:
        """Update the log message; ask the requester to send it now or drop it."""
        card = card_of(send)
        grace = grace_words(self._services.settings.misfire_grace)
        text, blocks = views.outcome_text(card), views.missed_blocks(card, grace=grace)
        owed = await self._log_entries(send, card, NORMAL)
        owed.append(self._dm(send, "missed", text, blocks, priority=URGENT))
        await self._postbox.owe(owed, settles=(send, "missed"))

    async def send_cancelled(self, send: Send, *, actor: str, outcome: str) -> None:
        """Update the log message and a pending approval request; tell the requester who
        cancelled it and when, unless they did it themselves (they were answered there)."""
        card = card_of(send)
        who = _who(actor)
        owed = await self._log_entries(send, card, NORMAL, note=stopped_note(send, actor))
        if send.approvals_received < send.approvals_required:  # it was waiting for approval
            owed += await self._approval_closed(send, f"Cancelled by {who} before a decision.")
        if actor != send.requester_id:
            moment = send.finished_at  # set by every move to cancelled
            when = f" on {views.describe_time(moment, card.timezone)}" if moment else ""
            text = f"{who} cancelled {views.ids_text(card)}{when}."
            blocks = views.outcome_blocks(card, note=f"Cancelled by {who}. {escape(outcome)}")
            owed.append(self._dm(send, "cancelled", text, blocks, priority=URGENT))
        await self._postbox.owe(owed, settles=(send, "cancelled"))

    async def send_rejected(self, send: Send, *, approver: str) -> None:
        """Close the approval request, update the log message, tell the requester."""
        who = _who(approver)
        owed = await self._approval_closed(send, f"Rejected by {who}; it will not be sent.")
        card = card_of(send)
        owed += await self._log_entries(send, card, ROUTINE)
        text = f"{who} rejected {views.ids_text(card)}; it will not be sent."
        blocks = views.outcome_blocks(card, note="Rejected by an approver; nothing was sent.")
        owed.append(self._dm(send, "rejected", text, blocks))
        await self._postbox.owe(owed, settles=(send, "rejected"))

    async def send_held(self, send: Send) -> None:
        """Ask the approvers; tell the requester why their send did not go out at its time."""
        owed = await self._request_entries(send)
        card = card_of(send)
        noun = "approval" if send.approvals_required == 1 else "approvals"
        note = (
            f"It was due, but the approval policy now in force asks for "
            f"{send.approvals_required} {noun} first: it goes out once approved, and you get "
            f"a message when it is decided. `/push cancel {send.short_id}` stops it."
        )
        text = f"{views.ids_text(card)} waits for approval. {note}"
        blocks = views.outcome_blocks(card, note=note)
        owed.append(self._dm(send, "held", text, blocks, priority=URGENT))
        await self._postbox.owe(owed, settles=(send, "held"))

    async def approval_requested(self, send: Send, *, edited_by: str | None = None) -> None:
        """Post the request with Approve / Reject to the approvals channel (or update the one
        posted, after `edited_by` changed the send); log it.

        Slack refusing the request is told to the requester (`refused`)."""
        owed = await self._request_entries(send, edited_by=edited_by)
        await self._postbox.owe(owed, settles=(send, "approval_requested"))

    async def _request_entries(
        self, send: Send, *, edited_by: str | None = None
    ) -> list[OutboxEntry]:
        """The approval request and the log message; without an approvals channel, a DM
        telling the requester so."""
        card = card_of(send)
        owed = await self._log_entries(send, card, ROUTINE)
        workspace = await self._workspace(send.team_id)
        channel = _approvals_channel(workspace)
        if channel is None:
            text = (
                f"{views.headline(card)}, but this workspace has no approvals channel. "
                "Ask a PushOps admin to choose one in `/push setup`."
            )
            owed.append(self._dm(send, "no_approvals_channel", text, None, priority=URGENT))
            return owed
        estimate = await self._estimate(send)
        blocks = views.approval_request_blocks(card, estimate=estimate, edited_by=edited_by)
        owed.append(
            self._message(send, APPROVAL, channel, views.outcome_text(card), blocks, URGENT)
        )
        return owed

    async def approval_expired(self, send: Send) -> None:
        """Close the request in the approvals channel, update the log, tell the requester."""
        card = card_of(send)
        owed = await self._approval_closed(
            send, "Nobody decided in time; it expired and was not sent."
        )
        owed += await self._log_entries(send, card, ROUTINE)
        text, blocks = views.outcome_text(card), views.outcome_blocks(card)
        owed.append(self._dm(send, "expired", text, blocks))
        await self._postbox.owe(owed, settles=(send, "expired"))

    # --- used by the commands as well ------------------------------------------------------

    async def announce(self, send: Send, *, reason: str | None = None) -> None:
        """Post the send to the log channel, or update the message already posted about it."""
        await self._postbox.owe(
            await self._log_entries(send, card_of(send, reason=reason), ROUTINE)
        )

    async def close_approval(self, send: Send, outcome: str, *, keep_buttons: bool = False) -> None:
        """Replace the approval request's buttons with `outcome` (mrkdwn).

        With `keep_buttons` (more approvals needed) the request stays open, `outcome` under it.
        """
        await self._postbox.owe(
            await self._approval_closed(send, outcome, keep_buttons=keep_buttons)
        )

    async def tell_requester(
        self,
        send: Send,
        text: str,
        blocks: Sequence[Block] | None = None,
        *,
        outcome: str | None = None,
    ) -> None:
        """A direct message from the app to the send's requester, once per `outcome` of each
        change of the send (by default, once per text)."""
        await self._postbox.owe([self._dm(send, outcome, text, blocks)])

    async def tell(
        self, team_id: str, user_id: str, text: str, blocks: Sequence[Block] | None = None
    ) -> None:
        """A direct message from the app to `user_id` (not about one change of a send)."""
        await self._postbox.owe(
            [
                OutboxEntry(
                    team_id=team_id,
                    key=f"dm:{uuid.uuid4()}",
                    kind=OutboxKind.DM,
                    purpose="note",
                    destination=user_id,
                    payload=_payload(text, blocks, {}),
                    priority=URGENT,
                )
            ]
        )

    async def render_notice(self, notice: OutboxMessage) -> Outcome | None:
        """Tell a change whose process committed it but died before telling it (a notice
        left pending, `storage.outbox.NOTICE`): as its notifier would have, from the send's
        row as it is now. A send's final counters come due (`COUNTERS`): read and shown."""
        if notice.send_id is None:
            return None
        send = await self._load(notice.team_id, notice.send_id)
        if send is None:  # the workspace was removed meanwhile: nobody to tell
            return None
        if notice.purpose == COUNTERS:
            return await self.final_counters(send)
        await self._retell(send, notice)
        return None

    async def _retell(self, send: Send, notice: OutboxMessage) -> None:
        outcome = notice.payload.get("outcome")
        args = notice.payload.get("args") or {}
        waits = _STILL_IN.get(str(outcome))
        if waits is not None and send.state != waits:  # it moved on: that change tells
            return
        if outcome == "delivered":
            await self.send_delivered(send)
        elif outcome == "failed":
            await self.send_failed(send, str(args.get("reason") or "Delivery failed."))
        elif outcome == "missed":
            await self.send_missed(send)
        elif outcome == "cancelled":
            actor, what = str(args.get("actor") or ""), str(args.get("outcome") or "")
            await self.send_cancelled(send, actor=actor, outcome=what)
        elif outcome == "rejected":
            await self.send_rejected(send, approver=str(args.get("approver") or ""))
        elif outcome == "expired":
            await self.approval_expired(send)
        elif outcome == "held":
            await self.send_held(send)
        elif outcome == "approval_requested":
            edited_by = args.get("edited_by")
            await self.approval_requested(send, edited_by=str(edited_by) if edited_by else None)

    async def final_counters(self, send: Send) -> Outcome | None:
        """Read `send`'s final counters from OneSignal (once) and show them: the log-channel
        message and the requester's DM about it are updated in place, or the requester gets
        a DM with them when none was posted alone (answered in place, told in a digest)."""
        read = await self._services.recall.counters.read(send)
        if isinstance(read, Later):
            return Failure(read.why) if read.counted else Wait(read.seconds, read.why)
        if isinstance(read, Uncountable):
            log.info("no final counters of send %s: %s", send.short_id, read.why)
            return None
        assert isinstance(read, Counted)
        card = card_of(read.send)
        if card.final is None:  # recorded, yet nothing to show: nothing changes
            return None
        final = views.final_block(card.final, card.timezone)
        owed = await self._log_final(read.send, card, final)
        owed.append(await self._dm_final(read.send, card, final))
        await self._postbox.owe(owed)
        return None

    async def _log_final(self, send: Send, card: views.SendCard, final: Block) -> list[OutboxEntry]:
        """The log message with the final counters added to what it last said."""
        channel = (await team_facts(self._services, send.team_id)).log_channel_id
        if not channel:
            return []
        last = await self._postbox.owed(send.team_id, f"{LOG}:{send.id}")
        if last is None or not last.payload.get("blocks"):
            text, blocks = views.outcome_text(card), views.log_blocks(card)
        else:
            text = str(last.payload.get("text") or views.outcome_text(card))
            blocks = views.with_final(last.payload["blocks"], final)
        return [self._message(send, LOG, channel, text, blocks, ROUTINE)]

    async def _dm_final(self, send: Send, card: views.SendCard, final: Block) -> OutboxEntry:
        """The requester's DM that it went out, updated with the final counters; a DM of
        its own with them when that one was never posted alone."""
        posted = await find_posted(
            self._services.database, team_id=send.team_id, send_id=send.id, purpose="delivered"
        )
        if posted is None or not posted.channel or not posted.payload.get("blocks"):
            numbers = views.final_text(card.final) if card.final else ""
            text = f"Final numbers of {views.ids_text(card)}: {numbers}"
            return self._dm(send, "final_numbers", text, views.outcome_blocks(card))
        return OutboxEntry(
            team_id=send.team_id,
            key=f"dm_final:{send.id}",
            kind=OutboxKind.MESSAGE,
            purpose="dm_final",
            destination=posted.channel,
            payload=_payload(
                str(posted.payload.get("text") or ""),
                views.with_final(posted.payload["blocks"], final),
                _facts(send),
            ),
            priority=ROUTINE,
            send_id=send.id,
            channel=posted.channel,
            ts=posted.ts,
        )

    async def refused(self, message: OutboxMessage, reason: str) -> None:
        """Slack refused an owed message for good: an approval request nobody will see is
        told to its requester, with what mends it."""
        if message.purpose != APPROVAL or message.send_id is None:
            return
        send = await self._load(message.team_id, message.send_id)
        if send is None:
            return
        text = views.approval_not_posted_text(card_of(send), message.destination, reason)
        await self._postbox.owe(
            [self._dm(send, "approval_not_posted", text, None, priority=URGENT)]
        )

    # --- the messages ------------------------------------------------------------------------

    def _dm(
        self,
        send: Send,
        outcome: str | None,
        text: str,
        blocks: Sequence[Block] | None,
        *,
        priority: int = NORMAL,
    ) -> OutboxEntry:
        """The requester's DM about one change of `send`, keyed so it is told once."""
        what = outcome or hashlib.sha256(text.encode()).hexdigest()[:12]
        return OutboxEntry(
            team_id=send.team_id,
            key=f"dm:{send.id}:{what}:{_moment(send)}",
            kind=OutboxKind.DM,
            purpose=outcome or "note",
            destination=send.requester_id,
            payload=_payload(text, blocks, _facts(send)),
            priority=priority,
            send_id=send.id,
        )

    def _message(
        self,
        send: Send,
        purpose: str,
        channel: str,
        text: str,
        blocks: Sequence[Block],
        priority: int,
    ) -> OutboxEntry:
        """The channel message `purpose` about `send`: posted once, then updated in place."""
        known: Any = send.slack_messages.get(purpose)
        place = known if isinstance(known, dict) and known.get("ts") else {}
        return OutboxEntry(
            team_id=send.team_id,
            key=f"{purpose}:{send.id}",
            kind=OutboxKind.MESSAGE,
            purpose=purpose,
            destination=channel,
            payload=_payload(text, blocks, _facts(send)),
            priority=priority,
            send_id=send.id,
            channel=str(place["channel"]) if place else None,
            ts=str(place["ts"]) if place else None,
        )

    async def _log_entries(
        self, send: Send, card: views.SendCard, priority: int, *, note: str | None = None
    ) -> list[OutboxEntry]:
        """The log message about `send` as `card` shows it (none without a log channel)."""
        # Most workspaces have no log channel: then this costs no read of the database.
        channel = (await team_facts(self._services, send.team_id)).log_channel_id
        if not channel:
            return []
        text, blocks = views.outcome_text(card), views.log_blocks(card, note=note)
        return [self._message(send, LOG, channel, text, blocks, priority)]

    async def _approval_closed(
        self, send: Send, outcome: str, *, keep_buttons: bool = False
    ) -> list[OutboxEntry]:
        """The approval request with `outcome` under it; none when none was asked for."""
        owed = await self._postbox.owed(send.team_id, f"{APPROVAL}:{send.id}")
        known: Any = send.slack_messages.get(APPROVAL)
        if owed is None and not isinstance(known, dict):
            return []
        card = card_of(send)
        if keep_buttons:
            blocks = [*views.approval_request_blocks(card), context(outcome)]
        else:
            blocks = views.approval_closed_blocks(card, outcome=outcome)
        channel = owed.destination if owed is not None else str(known.get("channel"))
        return [self._message(send, APPROVAL, channel, views.outcome_text(card), blocks, URGENT)]

    # --- plumbing ----------------------------------------------------------------------------

    async def _load(self, team_id: str, send_id: uuid.UUID) -> Send | None:
        return await self._services.recall.get(team_id=team_id, send_id=send_id)

    async def _workspace(self, team_id: str) -> Workspace | None:
        return await self._services.workspaces.get_workspace(team_id)

    async def _estimate(self, send: Send) -> str | None:
        try:
            audience = Audience.from_stored(send.audience)
        except (SendRejected, TypeError):
            return None
        estimate = await self._services.recall.estimate(
            team_id=send.team_id, app_name=send.app_name, audience=audience
        )
        return estimate_text(estimate)


class Postbox:
    """Where the notifier owes its messages: rows of the Slack outbox, written in one
    transaction and handed to the drainer at once (`wake`)."""

    def __init__(self, *, services: Services, drainer: OutboxDrainer) -> None:
        self._services = services
        self.drainer = drainer

    async def owe(
        self, entries: Sequence[OutboxEntry], *, settles: tuple[Send, str] | None = None
    ) -> None:
        """Owe Slack `entries` (channel messages replace their key's queued version);
        `settles` (send, outcome): the notices of that outcome, written with the change, are
        done in the same transaction."""
        if not entries and settles is None:
            return
        settled = (settles[0].team_id, settles[0].id, settles[1]) if settles else None
        await owe(self._services.database, entries, self.drainer, settles=settled)

    async def owed(self, team_id: str, key: str) -> OutboxMessage | None:
        """The row of `key`, if it was ever owed (and not pruned)."""
        return await find_owed(self._services.database, team_id=team_id, key=key)


def _payload(text: str, blocks: Sequence[Block] | None, facts: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "text": text,
        "blocks": list(blocks) if blocks is not None else None,
        "facts": dict(facts),
    }


def _facts(send: Send) -> dict[str, Any]:
    """What a digest needs to name the send without rendering it again."""
    card = card_of(send)
    return {
        "short_id": send.short_id,
        "state": send.state.value,
        "requester_id": send.requester_id,
        "app": send.app_name,
        "title": card.title,
        "label": card.title or card.message[:80],
        "message": card.message[:200],
        "ended_at": send.finished_at.isoformat() if send.finished_at else None,
        "timezone": send.timezone or "UTC",
        "audience": card.audience,
        "notification_id": send.notification_id,
        "is_test": send.is_test,
    }


def _moment(send: Send) -> str:
    """When the send last changed, in microseconds: a DM's key names the change it tells."""
    moment = send.updated_at or send.finished_at
    return str(int(moment.timestamp() * 1_000_000)) if moment is not None else "0"


def _approvals_channel(workspace: Workspace | None) -> str | None:
    if workspace is None:
        return None
    try:
        return ApprovalPolicy.from_settings(workspace.settings).channel_id
    except PolicyError:
        return None


def notifier_of(services: Services) -> SlackNotifier | None:
    """The Slack notifier plugged into the services, if any."""
    relay = getattr(services, "notifier", None)
    target = relay.target if isinstance(relay, NotifierRelay) else relay
    return target if isinstance(target, SlackNotifier) else None


def stopped_note(send: Send, actor: str) -> str:
    """`Stopped by @alice on Tue 1 Dec 2026, 09:00 CET (08:00 UTC).` (mrkdwn)."""
    moment = send.finished_at  # set by every move to cancelled
    when = f" on {views.describe_time(moment, send.timezone or 'UTC')}" if moment else ""
    return f"Stopped by {_who(actor)}{when}."


def _who(actor: str) -> str:
    """A Slack user as a mention; anyone else (a worker, a tool) as PushOps."""
    return f"<@{actor}>" if _SLACK_USER.fullmatch(actor) else "PushOps"


def plug_in(services: Services, clients: ClientSource) -> SlackNotifier:
    """Plug a `SlackNotifier` into the services' notifier relay, and start (with the
    services) the outbox drainer that delivers its messages with `clients`."""
    pacer = Pacer(services.slack_limits)
    policy = services.outbox_policy
    delivery = OutboxDelivery(clients, pacer, max_wait=policy.max_wait)
    drainer = OutboxDrainer(
        database=services.database,
        deliver=delivery,
        pacer=pacer,
        worker_id=services.deliverer.worker_id,
        policy=policy,
        coalesce=Coalescer(services.database, policy=services.digest_policy),
    )
    services.outbox = drainer
    services.on_startup.append(drainer.start)
    _stop_after_deliveries(services, drainer)
    postbox = Postbox(services=services, drainer=drainer)
    notifier = SlackNotifier(services=services, postbox=postbox)
    delivery.on_refused = notifier.refused
    drainer.notices = notifier.render_notice
    services.notifier.target = notifier
    return notifier


def _stop_after_deliveries(services: Services, drainer: OutboxDrainer) -> None:
    """Stop the drainer at shutdown after the deliverer wrote its last outcomes (the
    hooks run in reverse order), so what they owe Slack still goes out if it can."""
    hooks = services.on_shutdown
    closing = services.deliverer.aclose
    at = hooks.index(closing) if closing in hooks else len(hooks)
    hooks.insert(at, drainer.stop)


def register(app: AsyncApp, services: Services) -> None:
    """Plug a `SlackNotifier` writing with `app`'s client (or installations) into `services`."""
    plug_in(services, client_source(app.client, app.installation_store, services.database))
