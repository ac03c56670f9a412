"""The `/push audit` details: what a person reads, every field an admin needs, nothing cut."""

import pytest

from commands.views.audit import details_text

DUE = "2026-12-01T08:00:00+00:00"
DUE_SHOWN = "<!date^1796112000^{date_short_pretty} {time}|2026-12-01 08:00 UTC>"


@pytest.mark.parametrize(
    ("details", "shown"),
    [
        (
            {"send_id": "5f0c", "app": "main", "state": "pending_approval", "due_at": DUE,
             "test": False, "segments": ["Active Users", "Beta"], "external_ids": 0},
            f"app `main`, pending approval, due {DUE_SHOWN}, audience “Active Users”, “Beta”",
        ),
        (
            {"app": "main", "state": "draft", "due_at": None, "test": True, "segments": [],
             "external_ids": 1},
            "app `main`, draft, due now, test send, audience 1 user by external id",
        ),
        (
            {"send_id": "5f0c", "from": "sending", "to": "failed", "attempt": 3,
             "error": "OneSignal refused it (HTTP 400)"},
            "sending → failed, attempt 3, why “OneSignal refused it (HTTP 400)”",
        ),
        (
            {"from": "sending", "to": "sending", "attempt": 1, "retry_at": DUE},
            f"sending → sending, attempt 1, next try {DUE_SHOWN}",
        ),
        ({"reason": None}, ""),
        ({"reason": "<!here> wrong text"}, "reason “&lt;!here&gt; wrong text”"),
        (
            {"onesignal_app_id": "8f1c", "default": True, "key_id": "k1"},
            "OneSignal app id `8f1c`, the default app, key `k1`",
        ),
        ({"from_key_id": "k0", "to_key_id": "k1"}, "key `k0` → `k1`"),
        ({"role": "sender"}, "role sender"),
        ({"external_id": "cust-2", "previous": "cust-1"}, "external id `cust-2`, was `cust-1`"),
        ({"log_channel_id": "C0LOG"}, "log channel <#C0LOG>"),
        ({"log_channel_id": None}, "log channel: none"),
        ({"settings": ["approvals"]}, "changed approvals"),
        ({"resent": True}, "sent again"),
        ({"answers": {"n-1": "cancelled"}}, "OneSignal answered n-1 cancelled"),
        ({"something_new": [1, 2], "flag": False}, "flag: no, something_new: 1, 2"),
    ],
    ids=[
        "created to segments", "created to users", "failed", "retry", "no reason",
        "reason escaped", "app added", "key rotated", "role", "user linked", "log channel",
        "log channel off", "settings", "resent", "recall", "unknown fields, by name",
    ],
)  # fmt: skip
def test_details_read_as_words(details, shown):
    assert details_text(details) == shown


def test_many_details_are_cut_between_whole_parts():
    details = {f"field_{i}": "x" * 50 for i in range(10)}

    text = details_text(details)

    assert text.endswith(", …")
    assert len(text) <= 245
    assert text.count("x" * 50) == text.count("field_")  # no value cut in two


def test_details_read_in_the_same_order_whatever_order_they_were_stored_in():
    # Stored details come back with their keys sorted (their canonical text): the order they
    # show in is the view's own, the same for an event of an older release.
    edited = {"to": "scheduled", "from": "scheduled", "changed": ["due_at"], "due_at": None}

    assert details_text(edited) == details_text(dict(sorted(edited.items())))
    assert details_text(edited).startswith("changed: due_at, scheduled → scheduled")
