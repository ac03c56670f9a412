"""The final counters in a send's messages: OneSignal's counters under the names people know,
what was still to deliver when OneSignal had not finished, put in place of any shown before,
and within Block Kit's limits on the largest card."""

from datetime import UTC, datetime
from typing import Any

from bot import const
from commands.views import sends
from storage.models import SendState
from tests.commands.test_home_views import card as largest_card
from tests.fakes import blockkit

READ = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
HUGE = {name: 10**12 for name in ("successful", "received", "failed", "errored", "converted")}


def card(**overrides: Any) -> sends.SendCard:
    """The Home tests' largest card, sent, with a long reason, many languages and options, and
    the largest numbers read while OneSignal still delivered."""
    values: dict[str, Any] = {
        "state": SendState.SENT,
        "reason": "&" * 5000,
        "languages": tuple((f"l{i}", "T&" * 100, "M&" * 1000) for i in range(30)),
        "delivery": tuple("d&" * 200 for _ in range(20)),
        "final": sends.FinalNumbers({**HUGE, "remaining": 10**12}, False, READ),
    }
    return largest_card(1, **(values | overrides))


def test_the_numbers_use_peoples_words_for_onesignals_counters():
    final = sends.FinalNumbers(
        {"successful": 590, "received": 560, "converted": 41, "failed": 8, "errored": 2}
    )

    assert sends.final_text(final) == (
        "delivered 590 · confirmed received 560 · clicked 41 · failed (unsubscribed) 8 · errored 2"
    )


def test_confirmed_deliveries_a_free_account_reports_as_0_are_left_out():
    final = sends.FinalNumbers({"successful": 5, "received": 0, "converted": 0})

    assert sends.final_text(final) == "delivered 5 · clicked 0"


def test_numbers_read_while_onesignal_still_delivered_say_so_and_what_was_left():
    final = sends.FinalNumbers({"successful": 100, "remaining": 1200}, False, READ)

    block = sends.final_block(final, "Europe/Berlin")

    said = block["elements"][0]["text"]
    assert said.startswith("*Numbers so far (OneSignal still delivering)* from OneSignal, read ")
    assert said.endswith("delivered 100 · still to deliver 1,200")
    assert "10:00 CET (09:00 UTC)" in said


def test_new_numbers_replace_the_old_above_the_buttons():
    posted = sends.log_blocks(card(final=None))
    first = sends.final_block(sends.FinalNumbers({"successful": 1}), "UTC")
    second = sends.final_block(sends.FinalNumbers({"successful": 2}), "UTC")

    updated = sends.with_final(sends.with_final(posted, first), second)

    finals = [b for b in updated if b.get("block_id") == const.BLOCK_FINAL_NUMBERS]
    assert finals == [second]
    assert updated[-1]["type"] == "actions" and updated[-2] == second
    assert len(updated) == len(posted) + 1


def test_the_largest_card_with_the_largest_numbers_is_a_message_slack_takes():
    big = card()
    assert big.final is not None
    for blocks in (
        sends.log_blocks(big),
        sends.outcome_blocks(big),
        sends.with_final(sends.log_blocks(card(final=None)), sends.final_block(big.final, "UTC")),
    ):
        assert blockkit.message_problems(sends.outcome_text(big), blocks) == (None, [])
