"""Digests read as one message about many sends, and stay within Slack's limits at any size."""

from datetime import UTC, datetime, timedelta

from bot.delivery import SendState
from commands.views.digests import DigestItem, digest_blocks, digest_text
from tests.fakes import blockkit

NINE = datetime(2026, 12, 4, 9, 0, 12, tzinfo=UTC)


def _item(n: int, state: SendState = SendState.SENT, **fields: object) -> DigestItem:
    values: dict[str, object] = {
        "short_id": f"7K3M{n:02d}",
        "state": state,
        "label": f"Release {n}",
        "audience": "segment Active Users",
        "ended_at": NINE + timedelta(seconds=n % 40),
    }
    values.update(fields)
    return DigestItem(**values)  # type: ignore[arg-type]


def _all_text(blocks):
    return "\n".join(
        block.get("text", {}).get("text", "")
        + "".join(e.get("text", "") for e in block.get("elements", []))
        for block in blocks
    )


def test_a_log_digest_names_how_many_went_out_when_and_each_send():
    items = [_item(n) for n in range(12)]

    text = digest_text(items)
    blocks = digest_blocks(items)

    assert text.startswith(
        "12 sends went out at 09:00 UTC: `7K3M00` Release 0 to segment Active Users, "
    )
    shown = _all_text(blocks)
    assert "*12 sends went out at 09:00 UTC*" in shown
    assert all(f"• `7K3M{n:02d}` Release {n} to segment Active Users" in shown for n in range(12))
    assert "each send's own message in the log channel" in shown
    assert blockkit.message_problems(text, blocks) == (None, [])


def test_a_requesters_digest_speaks_to_them_in_their_zone():
    items = [_item(n) for n in range(3)]

    text = digest_text(items, timezone="Europe/Berlin", mine=True)

    assert text.startswith("3 of your sends went out at 10:00 CET: `7K3M00` Release 0")


def test_sends_ending_over_minutes_are_dated_from_the_first_to_the_last():
    items = [_item(0), _item(1, ended_at=NINE + timedelta(minutes=2))]

    assert digest_text(items).startswith("2 sends went out between 09:00 and 09:02 UTC:")


def test_a_mixed_digest_counts_each_outcome_and_says_why_a_send_failed():
    items = [_item(0), _item(1), _item(2, SendState.FAILED, reason="Invalid <segment> & co")]

    blocks = digest_blocks(items)

    shown = _all_text(blocks)
    assert "*3 sends ended at 09:00 UTC: 2 went out, 1 failed*" in shown
    assert "`7K3M00` Release 0 to segment Active Users: went out" in shown
    assert (
        "`7K3M02` Release 2 to segment Active Users: failed (Invalid &lt;segment&gt; &amp; co)"
        in shown
    )


def test_a_thousand_sends_fit_in_one_message_and_the_rest_are_counted():
    items = [_item(n, label="L" * 500) for n in range(1000)]

    text, blocks = digest_text(items), digest_blocks(items)

    assert blockkit.message_problems(text, blocks) == (None, [])
    assert text.endswith(" more") and len(text) < 3200
    listed = _all_text(blocks).count("• ")
    assert f"… and {1000 - listed:,} more not listed" in _all_text(blocks)


def test_titles_are_escaped_and_shortened_in_a_line():
    items = [_item(0, label="<!channel> a & b\nsecond line " + "x" * 100), _item(1)]

    shown = _all_text(digest_blocks(items))

    assert "&lt;!channel&gt; a &amp; b second line xxx" in shown and "<!channel>" not in shown
    assert "x" * 100 not in shown
