"""Approval policy and roles: which sends need approval, who may send, approve, set up."""

from dataclasses import dataclass

import pytest

from bot.policy import (
    DEFAULT_USER_THRESHOLD,
    MAX_APPROVALS,
    MAX_USER_THRESHOLD,
    Actor,
    ApprovalPolicy,
    ConfiguredAdmins,
    PolicyError,
    Role,
    approvals_required,
)


@dataclass(frozen=True)
class Audience:
    segments: tuple[str, ...] = ()
    external_ids: tuple[str, ...] = ()


SEGMENT = Audience(segments=("Subscribed Users",))
USERS = Audience(external_ids=("cust-4711",))


@pytest.mark.parametrize(
    ("mode", "audience", "is_test", "needed"),
    [
        ("off", SEGMENT, False, 0),
        ("off", USERS, False, 0),
        ("segments", SEGMENT, False, 2),
        ("segments", USERS, False, 0),
        ("segments", SEGMENT, True, 2),  # a segment is no test, whatever the flag says
        ("all", USERS, False, 2),
        ("all", SEGMENT, False, 2),
        ("all", USERS, True, 2),  # /push me proves nothing: a test can reach anyone
        ("off", USERS, True, 0),
    ],
)
def test_approvals_required_by_mode_audience_and_test(mode, audience, is_test, needed):
    policy = ApprovalPolicy(mode=mode, approvals=2, channel_id=None if mode == "off" else "C0APPR")

    assert approvals_required(policy, audience, is_test=is_test) == needed


def test_approvals_required_reads_a_stored_audience_mapping_too():
    policy = ApprovalPolicy(mode="segments", channel_id="C0APPR")

    assert approvals_required(policy, {"segments": ["Beta"]}, is_test=False) == 1
    assert approvals_required(policy, {"external_ids": ["cust-1"]}, is_test=False) == 0
    many = {"external_ids": [f"cust-{n}" for n in range(DEFAULT_USER_THRESHOLD + 1)]}
    assert approvals_required(policy, many, is_test=False) == 1


def _ids(count):
    return Audience(external_ids=tuple(f"cust-{n}" for n in range(count)))


@pytest.mark.parametrize(
    ("threshold", "count", "needed"),
    [
        (100, 100, 0),
        (100, 101, 1),
        (0, 1, 1),
        (5, 5, 0),
        (5, 6, 1),
        (MAX_USER_THRESHOLD, 20_000, 0),
    ],
)
def test_under_segments_a_long_list_of_users_needs_approval_like_a_segment(
    threshold, count, needed
):
    policy = ApprovalPolicy(mode="segments", channel_id="C0APPR", user_threshold=threshold)

    assert approvals_required(policy, _ids(count), is_test=False) == needed


def test_a_test_send_to_ones_own_id_stays_free_under_segments_but_not_under_every_send():
    segments = ApprovalPolicy(mode="segments", channel_id="C0APPR", user_threshold=0)
    every = ApprovalPolicy(mode="all", channel_id="C0APPR")

    assert approvals_required(segments, _ids(1), is_test=True) == 0
    assert approvals_required(every, _ids(1), is_test=True) == 1
    # a stored "test" that reaches more than one id or a segment is no test: it waits
    assert approvals_required(segments, _ids(2), is_test=True) == 1
    assert approvals_required(segments, SEGMENT, is_test=True) == 1


def test_the_threshold_round_trips_and_a_policy_saved_before_it_gets_the_default():
    policy = ApprovalPolicy(mode="segments", channel_id="C1", user_threshold=7)

    assert ApprovalPolicy.from_settings({"approvals": policy.to_settings()}) == policy
    old = {"approvals": {"mode": "segments", "approvals": 1, "channel_id": "C1"}}
    assert ApprovalPolicy.from_settings(old).user_threshold == DEFAULT_USER_THRESHOLD == 100


@pytest.mark.parametrize("threshold", [-1, MAX_USER_THRESHOLD + 1, True, "10"])
def test_a_threshold_out_of_range_is_refused(threshold):
    with pytest.raises(PolicyError, match="listed users") as caught:
        ApprovalPolicy(mode="segments", channel_id="C1", user_threshold=threshold)
    assert caught.value.field == "user_threshold"


def test_the_policy_round_trips_through_workspace_settings():
    policy = ApprovalPolicy(mode="all", approvals=3, channel_id="C0APPR")
    workspace_settings = {"approvals": policy.to_settings(), "other": 1}

    assert ApprovalPolicy.from_settings(workspace_settings) == policy
    assert ApprovalPolicy.from_settings(policy.to_settings()) == policy  # the entry itself
    assert ApprovalPolicy.from_settings({}) == ApprovalPolicy()  # none stored: off
    assert not ApprovalPolicy().enabled


@pytest.mark.parametrize(
    "stored",
    [
        {"approvals": "yes"},
        {"approvals": {"mode": "sometimes", "approvals": 1, "channel_id": "C1"}},
        {"approvals": {"mode": "all", "approvals": 1}},
        {"approvals": {"mode": "all", "approvals": 0, "channel_id": "C1"}},
    ],
)
def test_a_broken_stored_policy_raises_instead_of_turning_approvals_off(stored):
    with pytest.raises(PolicyError, match="set it again in /push setup"):
        ApprovalPolicy.from_settings(stored)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"mode": "segments"}, "Choose the channel"),
        ({"approvals": 0}, f"between 1 and {MAX_APPROVALS}"),
        ({"approvals": MAX_APPROVALS + 1}, f"between 1 and {MAX_APPROVALS}"),
        ({"approvals": True}, "whole number"),
        ({"mode": "never"}, "Unknown approval mode"),
    ],
)
def test_a_policy_that_cannot_work_is_refused(kwargs, message):
    with pytest.raises(PolicyError, match=message):
        ApprovalPolicy(**kwargs)


def test_an_admin_holds_every_role():
    admin = Actor("T1", "U1", frozenset({Role.ADMIN}))

    assert admin.is_admin() and admin.can_approve()
    assert admin.roles == frozenset(Role)
    assert admin.can_send(senders_configured=True)


def test_anyone_may_send_until_senders_are_named():
    nobody = Actor("T1", "U2", frozenset())
    sender = Actor("T1", "U3", frozenset({Role.SENDER}))

    assert nobody.can_send(senders_configured=False)
    assert not nobody.can_send(senders_configured=True)
    assert sender.can_send(senders_configured=True)
    assert not nobody.is_admin() and not sender.is_admin()


def test_only_approvers_and_admins_may_approve():
    assert Actor("T1", "U4", frozenset({Role.APPROVER})).can_approve()
    assert not Actor("T1", "U5", frozenset({Role.SENDER})).can_approve()


def test_a_guest_may_do_nothing_without_a_role_given_by_name():
    guest = Actor("T1", "U6", frozenset(), is_guest=True)

    assert not guest.can_send(senders_configured=False)  # open sending is for members
    assert not guest.can_cancel_any() and not guest.can_look_up_users()
    assert not guest.can_approve() and not guest.can_see_sends()
    named = Actor("T1", "U6", frozenset({Role.SENDER}), is_guest=True)
    assert named.can_send(senders_configured=True) and named.can_see_sends()


def test_a_responder_stops_and_looks_up_but_neither_sends_nor_approves():
    responder = Actor("T1", "U7", frozenset({Role.RESPONDER}))

    assert responder.can_cancel_any() and responder.can_look_up_users()
    assert responder.can_see_sends()
    assert not responder.can_send(senders_configured=True) and not responder.can_approve()


def test_a_plain_member_sees_sends_and_may_send_until_senders_are_named_but_no_more():
    member = Actor("T1", "U8", frozenset())

    assert member.can_see_sends() and member.can_send(senders_configured=False)
    assert not member.can_cancel_any() and not member.can_look_up_users()
    sender = Actor("T1", "U9", frozenset({Role.SENDER}))
    assert sender.can_cancel_any() and sender.can_look_up_users()


def test_pushops_admins_pairs_name_one_workspace_and_bare_ids_only_single_workspace_mode():
    admins = ConfiguredAdmins.parse(" T1:U1, U2 ,T2:U3,, T3:, :U4, T4:U5:X ")

    assert admins.pairs == {("T1", "U1"), ("T2", "U3")}
    assert admins.bare == {"U2"}
    assert admins.malformed == ("T3:", ":U4", "T4:U5:X")
    assert admins.names("T1", "U1", oauth=True) and not admins.names("T2", "U1", oauth=True)
    assert admins.names("T9", "U2", oauth=False) and not admins.names("T9", "U2", oauth=True)
    assert admins.names("T1", "U1", oauth=False)  # a pair holds in single-workspace mode too
