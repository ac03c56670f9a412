"""Messages about one send: its card, the preview, outcomes, the log-channel post, the DMs.

Every message names the send by its short id in code format (and the OneSignal id beside it
once it exists), its audience, and its time in the requester's zone and in UTC.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final
from zoneinfo import ZoneInfo

from bot import const
from bot.delivery import SendState
from bot.timeparse import ScheduledTime
from commands._format import Block, code, context, escape, section
from commands.views.limits import MESSAGE_BLOCKS, SECTION_TEXT, fit, listing, summarize

AUDIENCE_SHOWN: Final = 500
"""Characters (as sent) of an audience in any message about a send; longer ones are
summarized: a card holds the notification (up to a section), its facts and a reason (up to a
section), and a message posted through the Web API holds 12,000 characters in all."""
REASON_SHOWN: Final = 2000
"""Characters (as sent) of why a send failed, or what was said when it was cancelled."""
_EXCLUDED_SHOWN: Final = 150  # of AUDIENCE_SHOWN, for the excluded segments
_IDS_SHOWN: Final = 3  # external ids named; the rest are counted

_MESSAGE_SHOWN = 2000  # of a notification's text in a card; the rest is elided


@dataclass(frozen=True)
class FinalNumbers:
    """OneSignal's final counters of a send, by OneSignal's names, as they were read.

    Attributes:
        totals: `successful`, `received`, `failed`, `errored`, `converted` (clicks),
            `remaining`: those OneSignal reported, summed over the send's notifications.
        finished: whether OneSignal had completed (or stopped) every notification's delivery.
        read_at: when they were read.
    """

    totals: Mapping[str, int] = field(default_factory=dict)
    finished: bool = True
    read_at: datetime | None = None


FINAL_SHOWN: Final = (
    ("successful", "delivered"),
    ("received", "confirmed received"),
    ("converted", "clicked"),
    ("failed", "failed (unsubscribed)"),
    ("errored", "errored"),
)
"""OneSignal's counters in the order shown, with the words for them: `successful` is what
reached the push services, `received` the deliveries devices confirmed (a paid feature: free
accounts report 0, so 0 is not shown), `converted` the clicks (OneSignal's name for them)."""


@dataclass(frozen=True, kw_only=True)
class SendCard:
    """What a message about a send shows (see `commands.notify.card_of` for a row's card).

    Attributes:
        send_id: the send's UUID as text: the value of its buttons.
        audience: already described, in mrkdwn (`audience_text`: `segment Active Users`,
            `2 users: a, b`).
        timezone: the requester's IANA zone; times show in it and in UTC.
        reason: why it failed, or what was said when it was cancelled (for the user).
    """

    send_id: str
    short_id: str
    state: SendState
    app_name: str
    requester_id: str
    message: str
    audience: str
    timezone: str = "UTC"
    title: str | None = None
    url: str | None = None
    image: str | None = None
    due_at: datetime | None = None
    finished_at: datetime | None = None
    notification_id: str | None = None
    is_test: bool = False
    approvals_required: int = 0
    approvals_received: int = 0
    reason: str | None = None
    template: str | None = None
    languages: tuple[tuple[str, str | None, str | None], ...] = ()
    delivery: tuple[str, ...] = ()
    buttons: tuple[tuple[str, str], ...] = ()
    data: tuple[tuple[str, str], ...] = ()
    final: FinalNumbers | None = None


LANGUAGES_SHOWN: Final = 2000
"""Characters (as sent) of a send's other languages in a card."""
OPTIONS_SHOWN: Final = 1000
"""Characters (as sent) of a send's template and delivery options in a card."""


# --- text pieces -------------------------------------------------------------------------------


def audience_text(
    segments: Sequence[str] = (),
    excluded: Sequence[str] = (),
    external_ids: Sequence[str] = (),
) -> str:
    """Who a send reaches, in mrkdwn of at most AUDIENCE_SHOWN characters: `segment Active
    Users (excluding Churned)`, `30 segments: Active Users, Beta, … and 27 more`,
    `3 users: a, b, c`, `5,000 users: u0, u1, u2, … and 4,997 more`."""
    if external_ids:
        count = len(external_ids)
        shown = listing(external_ids, AUDIENCE_SHOWN - 20, render=escape, most=_IDS_SHOWN)
        return f"{count:,} user{'s' if count != 1 else ''}: {shown}"
    tail = ""
    if excluded:
        tail = f" (excluding {_segments(excluded, _EXCLUDED_SHOWN)})"
    return _segments(segments, AUDIENCE_SHOWN - len(tail)) + tail


def _segments(names: Sequence[str], budget: int) -> str:
    """`segment A`, `segments A, B`, or `30 segments: A, B, … and 27 more`."""
    if len(names) == 1:
        return f"segment {fit(escape(names[0]), budget - 8)}"
    counted = f"{len(names):,} segments: "
    shown, hidden = summarize(names, budget - len(counted), render=escape)
    return f"{counted}{shown}" if hidden else f"segments {shown}"


def zone_of(name: str) -> ZoneInfo:
    """The zone named `name`, or UTC when it is unknown here."""
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError, OSError):  # ZoneInfoNotFoundError is a KeyError
        return ZoneInfo("UTC")


def describe_time(moment: datetime, timezone: str) -> str:
    """`Tue 1 Dec 2026, 09:00 CET (08:00 UTC)`: `moment` in `timezone` and in UTC."""
    return ScheduledTime(moment.astimezone(UTC), zone_of(timezone)).describe()


def ids_text(card: SendCard) -> str:
    """`` `7K3M9Q` `` and, once it exists, `` (OneSignal `…`) ``."""
    text = code(card.short_id)
    if card.notification_id:
        text += f" (OneSignal {code(card.notification_id, limit=40)})"
    return text


_ENDED_AT: Final = frozenset(
    {SendState.SENT, SendState.FAILED, SendState.REJECTED, SendState.EXPIRED}
)
"""States whose card shows when the send ended rather than when it was due."""

_TIME_LABELS: Final[dict[SendState, str]] = {
    SendState.SENT: "Sent",
    SendState.FAILED: "Failed",
    SendState.CANCELLED: "Was due",
    SendState.REJECTED: "Rejected",
    SendState.EXPIRED: "Expired",
    SendState.MISSED: "Was due",
}


def when_text(card: SendCard, *, now: datetime | None = None) -> str:
    """When the send goes out (or went, or was due), in the requester's zone and in UTC.

    A send not yet out shows its due time, `now (…)` once it is due; one that ended shows
    when it ended, except a cancelled or missed one, which never went out: its due time.
    """
    moment = (card.finished_at or card.due_at) if card.state in _ENDED_AT else card.due_at
    if moment is None:
        return "as soon as it is approved" if card.state == SendState.PENDING_APPROVAL else "now"
    described = describe_time(moment, card.timezone)
    if card.state in (SendState.DRAFT, SendState.PENDING_APPROVAL, SendState.SCHEDULED):
        if moment <= (now or datetime.now(UTC)):
            return f"now ({described})"
    return described


def times_text(card: SendCard, *, now: datetime | None = None) -> str:
    """`When: …` or `Sent: …`; a cancelled send `Was due: … · Cancelled: …`, so that the
    time it was stopped never reads as the time it went out."""
    cancelled = card.state == SendState.CANCELLED
    parts = []
    if not (cancelled and card.due_at is None):  # a discarded preview was never due
        parts.append(f"{_TIME_LABELS.get(card.state, 'When')}: {when_text(card, now=now)}")
    if cancelled and card.finished_at is not None:
        parts.append(f"Cancelled: {describe_time(card.finished_at, card.timezone)}")
    return " · ".join(parts)


_HEADLINES: dict[SendState, str] = {
    SendState.DRAFT: "Preview of {ids}",
    SendState.PENDING_APPROVAL: "{ids} is waiting for approval",
    SendState.SCHEDULED: "{ids} is scheduled",
    SendState.SENDING: "{ids} is being sent",
    SendState.SENT: "{ids} was sent",
    SendState.FAILED: "{ids} failed",
    SendState.CANCELLED: "{ids} was cancelled",
    SendState.REJECTED: "{ids} was rejected",
    SendState.EXPIRED: "{ids} expired without enough approvals",
    SendState.MISSED: "{ids} was missed",
}


def headline(card: SendCard) -> str:
    """`` `7K3M9Q` was sent `` and the like, by state."""
    text = _HEADLINES[card.state].format(ids=ids_text(card))
    return f"{text} (test send)" if card.is_test else text


def facts(card: SendCard, *, now: datetime | None = None) -> str:
    """`App `x` · Audience: … · When: …` (one line of mrkdwn)."""
    parts = [f"App {code(card.app_name)}", f"Audience: {card.audience}"]
    times = times_text(card, now=now)
    return " · ".join([*parts, times] if times else parts)


def outcome_text(card: SendCard, *, now: datetime | None = None) -> str:
    """One line for a reply, a DM or a notification: headline, audience and time."""
    text = f"{headline(card)}. {facts(card, now=now)}."
    if card.reason:
        text += f"\n{reason_text(card.reason)}"
    return text


def reason_text(reason: str) -> str:
    """Why a send failed (or what was said about it), escaped, in at most REASON_SHOWN."""
    return fit(escape(reason), REASON_SHOWN)


def content_text(card: SendCard) -> str:
    """The notification as a quote: its title in bold, its message, link and image (and
    the template it comes from: its text when none of its own was given)."""
    message = card.message
    if len(message) > _MESSAGE_SHOWN:
        message = message[:_MESSAGE_SHOWN] + "…"
    lines = [f"*{escape(_one_line(card.title))}*"] if card.title else []
    lines.extend(escape(line) for line in message.splitlines() or [""])
    extras = [f"Link: {escape(card.url)}"] if card.url else []
    if card.image:
        extras.append(f"Image: {escape(card.image)}")
    room = SECTION_TEXT - sum(len(extra) + 1 for extra in extras)
    quoted = fit("\n".join(f">{line}" for line in lines), room)
    return "\n".join([quoted, *extras])


def _one_line(text: str) -> str:
    return " ".join(text.split())


def languages_text(card: SendCard) -> str | None:
    """Each other language on a line: `` `de` *Update* Neue Version ``; None when English only."""
    if not card.languages:
        return None
    lines = []
    for lang, title, message in card.languages:
        said = [f"*{escape(_one_line(title))}*"] if title else []
        said += [escape(_one_line(message))] if message else []
        lines.append(f"{code(lang)} {' '.join(said)}")
    return fit("\n".join(lines), LANGUAGES_SHOWN)


def options_text(card: SendCard) -> str | None:
    """`Template: … · Delivery: … · Buttons: … · Data: …`; None when the send has none."""
    parts = []
    if card.template:
        parts.append(f"Template: {escape(card.template)}")
    if card.delivery:
        parts.append(f"Delivery: {escape(', '.join(card.delivery))}")
    if card.buttons:
        shown = ", ".join(f"{escape(label)} ({escape(url)})" for label, url in card.buttons)
        parts.append(f"Buttons: {shown}")
    if card.data:
        parts.append("Data: " + ", ".join(f"{escape(k)}={escape(v)}" for k, v in card.data))
    return fit(" · ".join(parts), OPTIONS_SHOWN) if parts else None


# --- blocks ------------------------------------------------------------------------------------


def card_blocks(card: SendCard, *, now: datetime | None = None) -> list[Block]:
    """The headline, the notification, and its facts."""
    blocks = [section(f"*{headline(card)}*"), section(content_text(card))]
    blocks.extend(extras_blocks(card))
    blocks.append(context(f"{facts(card, now=now)} · requested by <@{card.requester_id}>"))
    if card.reason:
        blocks.append(section(reason_text(card.reason)))
    if card.final is not None:
        blocks.append(final_block(card.final, card.timezone))
    return blocks


def final_text(final: FinalNumbers) -> str:
    """`delivered 590 · confirmed received 560 · clicked 59 · failed (unsubscribed) 10 ·
    errored 0`, and what was still to deliver when OneSignal had not finished."""
    totals = final.totals
    shown = [
        f"{words} {totals[name]:,}"
        for name, words in FINAL_SHOWN
        if name in totals and (name != "received" or totals[name] > 0)
    ]
    remaining = totals.get("remaining", 0)
    if not final.finished and remaining > 0:
        shown.append(f"still to deliver {remaining:,}")
    return " · ".join(shown) or "OneSignal reported no counters"


def final_block(final: FinalNumbers, timezone: str) -> Block:
    """The final counters as a context line, marked so an update replaces it."""
    when = f", read {describe_time(final.read_at, timezone)}" if final.read_at else ""
    status = "Final numbers" if final.finished else "Numbers so far (OneSignal still delivering)"
    block = context(f"*{status}* from OneSignal{when}: {final_text(final)}")
    return {**block, "block_id": const.BLOCK_FINAL_NUMBERS}


def with_final(blocks: Sequence[Block], final: Block) -> list[Block]:
    """`blocks` (a message as it was posted) with the final counters `final` in place of
    any shown before, above its buttons; within the blocks a message may hold."""
    kept = [b for b in blocks if b.get("block_id") != const.BLOCK_FINAL_NUMBERS]
    at = len(kept)
    while at > 0 and kept[at - 1].get("type") == "actions":
        at -= 1
    if len(kept) >= MESSAGE_BLOCKS:  # never so many: a card is a handful of blocks
        return kept
    return [*kept[:at], final, *kept[at:]]


def extras_blocks(card: SendCard) -> list[Block]:
    """The other languages (a section) and the template and options (a context)."""
    blocks = []
    languages = languages_text(card)
    if languages:
        blocks.append(section(languages))
    options = options_text(card)
    if options:
        blocks.append(context(options))
    return blocks


def button(text: str, action_id: str, value: str, *, style: str | None = None) -> dict[str, Any]:
    """A button element; `style` is "primary" or "danger"."""
    element: dict[str, Any] = {
        "type": "button",
        "action_id": action_id,
        "text": {"type": "plain_text", "text": text},
        "value": value,
    }
    if style:
        element["style"] = style
    return element


def actions(*elements: dict[str, Any], block_id: str | None = None) -> Block:
    """An actions block of `elements`."""
    block: Block = {"type": "actions", "elements": list(elements)}
    if block_id:
        block["block_id"] = block_id
    return block


STOPPABLE: Final = frozenset(
    {SendState.PENDING_APPROVAL, SendState.SCHEDULED, SendState.SENDING, SendState.SENT}
)
"""States in which a send can still be stopped: not gone out yet (it never will), or gone
out (OneSignal is asked to stop delivering it; it answers when that is too late)."""
_NOT_OUT: Final = frozenset({SendState.PENDING_APPROVAL, SendState.SCHEDULED})


def stoppable(card: SendCard) -> bool:
    """Whether messages about the send carry a Cancel button."""
    return card.state in STOPPABLE


def cancel_button(card: SendCard, action_id: str = const.ACTION_CANCEL_SEND) -> dict[str, Any]:
    """Cancel, confirmed first: the emergency brake on a message about the send (or, with
    its own `action_id`, on the Home tab)."""
    if card.state in _NOT_OUT:
        consequence = "It will not go out; nobody receives it."
    else:
        consequence = "OneSignal stops delivering it; phones that already have it keep it."
    element = button("Cancel", action_id, card.send_id, style="danger")
    element["confirm"] = {
        "title": {"type": "plain_text", "text": "Stop this send?"},
        "text": {"type": "mrkdwn", "text": f"Stop {code(card.short_id)}? {consequence}"},
        "confirm": {"type": "plain_text", "text": "Stop it"},
        "deny": {"type": "plain_text", "text": "Keep it"},
        "style": "danger",
    }
    return element


def cancel_actions(card: SendCard) -> list[Block]:
    """An actions block with Cancel when the send can still be stopped; none otherwise."""
    return [actions(cancel_button(card))] if stoppable(card) else []


AGAIN: Final = frozenset(
    {SendState.SENT, SendState.FAILED, SendState.CANCELLED, SendState.REJECTED, SendState.EXPIRED}
)
"""Finished sends whose messages offer "Send again" (a missed one has its own Send now)."""


def editable(card: SendCard) -> bool:
    """Whether the send may still be edited: it has not started going out (nor a test)."""
    return card.state in _NOT_OUT and not card.is_test


def edit_button(card: SendCard) -> dict[str, Any]:
    """Edit: the compose form filled from the upcoming send, saving into it."""
    return button("Edit", const.ACTION_EDIT_SEND, card.send_id)


def send_actions(card: SendCard) -> list[Block]:
    """The requester's buttons on a message about their send: Edit and Cancel while it has
    not gone out, Cancel while it can be stopped, Send again once it is finished."""
    elements = [edit_button(card)] if editable(card) else []
    if stoppable(card):
        elements.append(cancel_button(card))
    if card.state in AGAIN and not card.is_test:
        elements.append(button("Send again", const.ACTION_SEND_AGAIN, card.send_id))
    return [actions(*elements)] if elements else []


def preview_blocks(card: SendCard, *, estimate: str, notes: Sequence[str] = ()) -> list[Block]:
    """The preview of a draft: the card, the audience estimate, notes, Send and Cancel.

    `notes` are mrkdwn (a clock change, the approvals it needs); escape user text in them.
    """
    blocks = card_blocks(card)
    blocks.append(context(escape(estimate)))
    blocks.extend(context(note) for note in notes)
    blocks.append(
        actions(
            button("Send", const.ACTION_SEND_CONFIRM, card.send_id, style="primary"),
            button("Cancel", const.ACTION_SEND_DISCARD, card.send_id),
        )
    )
    return blocks


def preview_text(card: SendCard, *, estimate: str) -> str:
    """The notification text of a preview."""
    return f"{headline(card)}. {facts(card)}. {estimate}"


def outcome_blocks(
    card: SendCard, *, note: str | None = None, now: datetime | None = None
) -> list[Block]:
    """A reply or DM about what happened to a send, with an optional note under it.

    `note` is mrkdwn (channel links, mentions); escape user text in it before.
    """
    blocks = card_blocks(card, now=now)
    if note:
        blocks.append(context(note))
    return blocks + send_actions(card)


def missed_blocks(card: SendCard, *, grace: str) -> list[Block]:
    """The DM about a missed send: what was missed, and Send now / Drop."""
    blocks = card_blocks(card)
    blocks.append(
        section(
            f"It was found more than {grace} late, so it was not sent blindly. "
            "Send it now, or drop it?"
        )
    )
    blocks.append(
        actions(
            button("Send now", const.ACTION_MISSED_SEND_NOW, card.send_id, style="primary"),
            button("Drop", const.ACTION_MISSED_DROP, card.send_id, style="danger"),
        )
    )
    return blocks


def approval_request_blocks(
    card: SendCard, *, estimate: str | None = None, edited_by: str | None = None
) -> list[Block]:
    """The approval request in the approvals channel, with Approve and Reject; after an edit
    (`edited_by`), it says so: approvals given to the earlier words no longer count."""
    blocks = [
        section(
            f"*<@{card.requester_id}> asks to send {ids_text(card)}* ({_approvals_count(card)})"
        ),
        *(
            [context(f"Edited by <@{edited_by}>: approvals given before the edit no longer count.")]
            if edited_by
            else []
        ),
        section(content_text(card)),
        *extras_blocks(card),
        context(facts(card)),
    ]
    if estimate:
        blocks.append(context(escape(estimate)))
    blocks.append(
        actions(
            button("Approve", const.ACTION_APPROVE, card.send_id, style="primary"),
            button("Reject", const.ACTION_REJECT, card.send_id, style="danger"),
            cancel_button(card),
        )
    )
    return blocks


def _approvals_count(card: SendCard) -> str:
    needed = max(card.approvals_required, 1)
    noun = "approval" if needed == 1 else "approvals"
    return f"{card.approvals_received} of {needed} {noun}"


_CHANNEL_TROUBLE: Final = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
"""Slack's refusals that inviting the app to the approvals channel mends."""


def approval_not_posted_text(card: SendCard, channel: str, why: str) -> str:
    """The requester's message when Slack refused the approval request (`why`: Slack's
    error): nobody can approve the send without it, so say what mends it."""
    text = (
        f"{headline(card)}, but I could not post the approval request in <#{channel}>: "
        f"Slack answered {escape(why)}."
    )
    cancel = f"`{const.SLASH_COMMAND} cancel {card.short_id}` withdraws it"
    if why in _CHANNEL_TROUBLE:
        return f"{text} Invite me there (`/invite @PushOps`), then send again; {cancel}."
    return f"{text} Nobody can approve it without that request: {cancel}."


def approval_closed_blocks(card: SendCard, *, outcome: str) -> list[Block]:
    """The approval request once decided, expired or withdrawn: no buttons, what happened.

    `outcome` is mrkdwn (mentions allowed); escape user text in it before.
    """
    return [
        section(f"*{headline(card)}*"),
        section(content_text(card)),
        context(f"{facts(card)} · requested by <@{card.requester_id}>"),
        section(outcome),
    ]


def log_blocks(card: SendCard, *, note: str | None = None) -> list[Block]:
    """The log-channel message about a send (posted once, then updated in place), with
    Cancel while it can be stopped. `note` is mrkdwn (who stopped it, and when)."""
    blocks = card_blocks(card)
    if note:
        blocks.append(context(note))
    return blocks + cancel_actions(card)


def recording_text(short_id: str, notification_ids: Sequence[str], reason: str | None) -> str:
    """While the database refuses to record a delivery: what is known, and that it is kept.

    Never "failed" or "try again" for what OneSignal accepted: it is going out.
    """
    waiting = "The database refuses writes for now, so PushOps keeps trying to record"
    said = f"\n{reason_text(reason)}" if reason else ""
    if not notification_ids:
        why = reason_text(reason or "not sent yet.")
        return f"`{short_id}`: {why} {waiting} that, and answers here once it is recorded."
    noun = "notification" if len(notification_ids) == 1 else "notifications"
    return (
        f"OneSignal has `{short_id}` ({noun} {', '.join(notification_ids)}); recording it. "
        f"{waiting} it and answers here once it is recorded. OneSignal is sending it: "
        f"please don't send it again.{said}"
    )


def recording_blocks(text: str) -> list[Block]:
    """`recording_text` as a message."""
    return [section(text)]


def unfinished_text(short_id: str) -> str:
    """After an unexpected failure while taking on a send: what the requester can rely on."""
    return (
        f"Something went wrong on my side while handling `{short_id}`, so I cannot say "
        f"whether it went out. `/push status {short_id}` shows where it is: please look "
        "there before sending it again."
    )
