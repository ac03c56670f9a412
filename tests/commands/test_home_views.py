"""The Home tab's builder: within Block Kit's limits whatever the numbers and the texts, and
the buttons each of one's own sends gets are the caller's choice."""

from datetime import UTC, datetime
from typing import Any

from bot import const
from commands.views import home, sends
from commands.views.limits import VIEW_BLOCKS
from storage.models import SendState
from tests.fakes import blockkit

DUE = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)


def card(n: int, **overrides: Any) -> sends.SendCard:
    values: dict[str, Any] = {
        "send_id": f"5f0c3c5e-0000-4000-8000-{n:012d}",
        "short_id": f"K{n:05d}",
        "state": SendState.SCHEDULED,
        "app_name": "a" * 64,
        "requester_id": "U0ALICE",
        "message": "<!channel> & " * 400,
        "title": "T&" * 40,
        "url": "https://example.com/" + "x" * 1900,
        "image": "https://example.com/" + "y" * 1900,
        "audience": "segments " + "&amp;" * 100,
        "timezone": "Europe/Berlin",
        "due_at": DUE,
        "notification_id": "n" * 64,
    }
    return sends.SendCard(**(values | overrides))


def worst(**overrides: Any) -> home.HomeState:
    values: dict[str, Any] = {
        "user_id": "U0ALICE",
        "mine": [card(i) for i in range(200)],
        "mine_total": 10_000,
        "approvals": [card(i, state=SendState.PENDING_APPROVAL) for i in range(200)],
        "approvals_total": 10_000,
        "recent": [
            home.RecentSend(card=card(i, state=SendState.SENT), counters={"recipients": 10**9})
            for i in range(200)
        ],
        "recent_total": 10_000,
        "is_admin": True,
        "warnings": ["w&<>" * 2000] * 10,
        "notice": "n" * 5000,
    }
    return home.HomeState(**(values | overrides))


def test_the_worst_case_home_is_valid_and_says_how_many_more():
    view = home.home_view(worst())

    assert blockkit.view_problems(view) == []
    assert len(view["blocks"]) <= VIEW_BLOCKS
    contexts = [b["elements"][0]["text"] for b in view["blocks"] if b["type"] == "context"]
    assert f"and {10_000 - home.MAX_MINE:,} more: `/push list`" in contexts
    assert f"and {10_000 - home.MAX_APPROVALS:,} more: `/push list`" in contexts
    assert f"and {10_000 - home.MAX_RECENT:,} more: `/push list`" in contexts


def test_each_own_send_gets_the_buttons_the_caller_gives_it():
    def more(c: sends.SendCard) -> list[dict[str, Any]]:
        status = sends.button("Status", "pushops_home_status", c.send_id)
        return [*home.send_buttons(c), status]

    view = home.home_view(worst(), buttons=more)

    assert blockkit.view_problems(view) == []
    own = [b for b in view["blocks"] if b["type"] == "actions" and len(b["elements"]) == 3]
    ids = {tuple(e["action_id"] for e in b["elements"]) for b in own}
    assert (const.ACTION_EDIT_SEND, const.ACTION_HOME_CANCEL, "pushops_home_status") in ids


def test_an_upcoming_send_of_ones_own_has_edit_and_cancel():
    view = home.home_view(worst())

    assert blockkit.view_problems(view) == []
    own = [b for b in view["blocks"] if b["type"] == "actions" and len(b["elements"]) == 2]
    ids = {tuple(e["action_id"] for e in b["elements"]) for b in own}
    assert (const.ACTION_EDIT_SEND, const.ACTION_HOME_CANCEL) in ids


def test_an_empty_home_of_a_member_offers_compose_only():
    view = home.home_view(home.HomeState(user_id="U0CAROL"))

    assert blockkit.view_problems(view) == []
    [top] = [b for b in view["blocks"] if b["type"] == "actions"]
    assert [e["action_id"] for e in top["elements"]] == [const.ACTION_HOME_COMPOSE]
