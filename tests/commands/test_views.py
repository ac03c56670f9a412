"""The pure Block Kit builders: what a person sees about a send, the compose form, status, list."""

import json
from datetime import UTC, datetime
from typing import Any

from bot import const
from commands.views import compose, listing, sends, status
from storage.models import SendState

DUE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
NOW = datetime(2026, 11, 30, 12, 0, tzinfo=UTC)


def card(**overrides: Any) -> sends.SendCard:
    values: dict[str, Any] = {
        "send_id": "5f0c3c5e-0000-4000-8000-000000000001",
        "short_id": "7K3M9Q",
        "state": SendState.SCHEDULED,
        "app_name": "default",
        "requester_id": "U0ALICE",
        "message": "Version 2 is out",
        "title": "Release",
        "audience": "segment Active Users",
        "timezone": "Europe/Berlin",
        "due_at": DUE,
    }
    values.update(overrides)
    return sends.SendCard(**values)


def texts(blocks: Any) -> str:
    """All the text of `blocks`, as one string."""
    return json.dumps(blocks, ensure_ascii=False)


def buttons(blocks: Any) -> list[Any]:
    found: list[Any] = []
    for block in blocks:
        found += [e for e in block.get("elements", []) if e.get("type") == "button"]
        if block.get("accessory", {}).get("type") == "button":
            found.append(block["accessory"])
    return found


def test_an_outcome_names_ids_audience_and_time_in_both_zones():
    sent = card(state=SendState.SENT, notification_id="b1c2", finished_at=DUE)

    text = sends.outcome_text(sent, now=NOW)

    assert "`7K3M9Q`" in text and "OneSignal `b1c2`" in text
    assert "segment Active Users" in text
    assert "Tue 1 Dec 2026, 09:00 CET (08:00 UTC)" in text


def test_a_send_due_now_says_now_and_still_gives_the_time():
    draft = card(state=SendState.DRAFT, due_at=NOW)

    assert sends.when_text(draft, now=NOW).startswith("now (")
    assert sends.when_text(card(due_at=None, state=SendState.DRAFT)) == "now"


def test_an_unknown_zone_shows_utc():
    assert sends.describe_time(DUE, "Mars/Olympus") == "Tue 1 Dec 2026, 08:00 UTC"


def test_the_preview_carries_send_and_cancel_for_this_send_and_the_estimate():
    blocks = sends.preview_blocks(
        card(state=SendState.DRAFT), estimate="Reaches about 600 subscriptions."
    )

    [send, cancel] = buttons(blocks)
    assert (send["action_id"], send["value"]) == (const.ACTION_SEND_CONFIRM, card().send_id)
    assert (cancel["action_id"], cancel["value"]) == (const.ACTION_SEND_DISCARD, card().send_id)
    assert "Reaches about 600 subscriptions." in texts(blocks)
    assert "Preview of `7K3M9Q`" in texts(blocks)


def test_user_text_cannot_mention_everyone_or_break_the_quote():
    blocks = sends.card_blocks(card(message="<!channel> hi\nsecond line", title="*a*\nb"))

    content = blocks[1]["text"]["text"]
    assert "<!channel>" not in content and "&lt;!channel&gt;" in content
    assert content.splitlines()[:3] == [">**a* b*", ">&lt;!channel&gt; hi", ">second line"]


def test_a_long_message_still_fits_a_section():
    blocks = sends.card_blocks(card(message="x" * 5000, url="https://e.example/" + "y" * 900))

    assert all(len(b.get("text", {}).get("text", "")) <= 3000 for b in blocks)


def test_missed_and_approval_messages_have_their_buttons():
    missed = sends.missed_blocks(card(state=SendState.MISSED), grace="10 minutes")
    request = sends.approval_request_blocks(
        card(state=SendState.PENDING_APPROVAL, approvals_required=2, approvals_received=1)
    )

    assert [b["action_id"] for b in buttons(missed)] == [
        const.ACTION_MISSED_SEND_NOW,
        const.ACTION_MISSED_DROP,
    ]
    assert [b["action_id"] for b in buttons(request)] == [
        const.ACTION_APPROVE,
        const.ACTION_REJECT,
        const.ACTION_CANCEL_SEND,
    ]
    assert "1 of 2 approvals" in texts(request)
    assert buttons(sends.approval_closed_blocks(card(), outcome="Approved by <@U0BOB>")) == []


def test_the_compose_form_offers_listed_segments_and_hides_a_lone_app():
    view = compose.compose_view(
        compose.ComposeForm(apps=("default",), segments=("Active Users", "Beta"))
    )

    ids = [b.get("block_id") for b in view["blocks"]]
    assert const.BLOCK_COMPOSE_APP not in ids
    segments = view["blocks"][ids.index(const.BLOCK_COMPOSE_SEGMENTS)]
    assert segments["element"]["type"] == "multi_static_select"
    assert [o["value"] for o in segments["element"]["options"]] == ["Active Users", "Beta"]
    assert view["callback_id"] == const.CALLBACK_COMPOSE
    assert len(view["title"]["text"]) <= 24


def test_the_compose_form_falls_back_to_typed_segments_with_the_reason():
    view = compose.compose_view(
        compose.ComposeForm(
            apps=("a", "b"), app="b", segments=None, segments_note="Listing failed."
        )
    )

    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert by_id[const.BLOCK_COMPOSE_SEGMENTS]["element"]["type"] == "plain_text_input"
    assert by_id[const.BLOCK_COMPOSE_SEGMENTS]["hint"]["text"] == "Listing failed."
    assert by_id[const.BLOCK_COMPOSE_APP]["element"]["initial_option"]["value"] == "b"


def test_too_many_segments_for_a_select_are_typed():
    many = tuple(f"Segment {i}" for i in range(compose.MAX_OPTIONS + 1))

    view = compose.compose_view(compose.ComposeForm(segments=many))

    by_id = {b.get("block_id"): b for b in view["blocks"]}
    assert by_id[const.BLOCK_COMPOSE_SEGMENTS]["element"]["type"] == "plain_text_input"


def test_reading_the_form_back():
    field = const.ACTION_COMPOSE_FIELD
    audience = const.ACTION_COMPOSE_AUDIENCE
    values: dict[str, Any] = {
        const.BLOCK_COMPOSE_APP: {const.ACTION_COMPOSE_APP: {"selected_option": {"value": "b"}}},
        const.BLOCK_COMPOSE_TITLE: {field: {"value": "  Hi  "}},
        const.BLOCK_COMPOSE_MESSAGE: {field: {"value": "Body"}},
        const.BLOCK_COMPOSE_SEGMENTS: {
            audience: {"selected_options": [{"value": "Active Users"}, {"value": "Beta"}]}
        },
        const.BLOCK_COMPOSE_EXCLUDE: {audience: {"value": "Churned, Old ones,"}},
        const.BLOCK_COMPOSE_USERS: {audience: {"value": None}},
        const.BLOCK_COMPOSE_URL: {field: {"value": ""}},
        const.BLOCK_COMPOSE_WHEN: {field: {"selected_option": {"value": compose.WHEN_AT}}},
        const.BLOCK_COMPOSE_AT: {field: {"selected_date_time": int(DUE.timestamp())}},
    }

    read = compose.read_compose(values)

    assert read.app == "b" and read.title == "Hi" and read.message == "Body"
    assert read.segments == ("Active Users", "Beta")
    assert read.excluded == ("Churned", "Old ones")
    assert read.external_ids == () and read.url is None
    assert (read.when, read.at) == (compose.WHEN_AT, DUE)


def test_external_ids_split_on_commas_spaces_and_lines_without_repeats():
    assert compose.split_ids("a, b\nc  a,,") == ("a", "b", "c")


def test_status_shows_totals_each_platform_and_refresh():
    view = status.StatusView(
        ref="7K3M9Q",
        card=card(state=SendState.SENT, notification_id="n1"),
        notification_ids=("n1",),
        counters={"successful": 1200, "failed": 3, "remaining": 0},
        per_platform={"ios": {"successful": 700}, "android": {"successful": 500, "failed": 3}},
        completed_at=DUE,
        timezone="Europe/Berlin",
    )

    blocks = status.status_blocks(view)

    text = texts(blocks)
    assert "successful 1,200, failed 3, remaining 0" in text
    assert "*iOS*: successful 700" in text and "*Android*: successful 500, failed 3" in text
    assert "Delivery completed Tue 1 Dec 2026, 09:00 CET (08:00 UTC)" in text
    [refresh, cancel] = buttons(blocks)  # a sent send can still be stopped at OneSignal
    assert (refresh["action_id"], refresh["value"]) == (const.ACTION_STATUS_REFRESH, "7K3M9Q")
    assert cancel["action_id"] == const.ACTION_CANCEL_SEND


def test_the_list_has_a_cancel_button_per_scheduled_send_only():
    scheduled = [card(short_id="AAAAAA", send_id="s1"), card(short_id="BBBBBB", send_id="s2")]
    recent = [card(short_id="CCCCCC", state=SendState.SENT, finished_at=DUE)]

    blocks = listing.list_blocks(scheduled, recent, now=NOW)

    assert [(b["action_id"], b["value"]) for b in buttons(blocks)] == [
        (const.ACTION_LIST_CANCEL, "s1"),
        (const.ACTION_LIST_CANCEL, "s2"),
    ]
    text = texts(blocks)
    assert text.index("AAAAAA") < text.index("BBBBBB") < text.index("CCCCCC")
    assert len(blocks) <= 50


def test_a_long_list_stays_under_slacks_block_limit():
    many = [card(short_id=f"{i:06d}", send_id=str(i)) for i in range(60)]

    blocks = listing.list_blocks(many, many)

    assert len(blocks) <= 50
    text = texts(blocks)
    assert "These are the 20 soonest; more are due later." in text
    assert "These are the 20 latest; older ones are not shown." in text
    assert (
        listing.list_text(many, many) == "more than 20 scheduled sends, more than 20 recent sends."
    )


def test_an_empty_list_says_so():
    text = texts(listing.list_blocks([], []))

    assert "Nothing is scheduled." in text and "No sends yet." in text


def test_a_cancelled_card_says_when_it_was_due_and_when_it_was_stopped():
    cancelled = card(state=SendState.CANCELLED, finished_at=NOW)

    text = sends.outcome_text(cancelled)

    assert (
        "Was due: Tue 1 Dec 2026, 09:00 CET (08:00 UTC) · "
        "Cancelled: Mon 30 Nov 2026, 13:00 CET (12:00 UTC)"
    ) in text
    assert "At:" not in text


def test_a_discarded_preview_says_only_when_it_was_discarded():
    discarded = card(state=SendState.CANCELLED, due_at=None, finished_at=NOW)

    assert sends.times_text(discarded) == "Cancelled: Mon 30 Nov 2026, 13:00 CET (12:00 UTC)"


def test_an_ended_send_names_what_its_time_is():
    sent = card(state=SendState.SENT, finished_at=DUE)
    failed = card(state=SendState.FAILED, finished_at=DUE)

    assert sends.times_text(sent) == "Sent: Tue 1 Dec 2026, 09:00 CET (08:00 UTC)"
    assert sends.times_text(failed) == "Failed: Tue 1 Dec 2026, 09:00 CET (08:00 UTC)"
