"""Counts in what people read: `1 send`, never `1 sends`."""

from datetime import timedelta

import pytest

from bot.delivery.attempt import absent
from bot.words import plural
from storage.models import Send, SendState


@pytest.mark.parametrize(
    ("count", "expected"),
    [(0, "0 sends"), (1, "1 send"), (2, "2 sends"), (2000, "2,000 sends")],
)
def test_a_count_takes_the_plural_unless_it_is_one(count, expected):
    assert plural(count, "send") == expected


def test_an_irregular_plural_is_given():
    assert plural(1, "alias", "aliases") == "1 alias"
    assert plural(3, "alias", "aliases") == "3 aliases"


def test_a_batch_of_one_user_is_one_user():
    send = Send(
        short_id="7K3M9Q",
        state=SendState.SENDING,
        batches=[
            {"index": 0, "external_ids": 2000, "notification_id": "n-1", "error": None},
            {"index": 1, "external_ids": 1, "notification_id": None, "error": "HTTP 503"},
        ],
    )

    attempt = absent(send, [dict(b) for b in send.batches], late_by=timedelta(minutes=10))

    assert attempt.result.error is not None
    assert attempt.result.error.startswith("Partly delivered: 1 of 2 batches (1 user) were not")
