"""Approval policy and roles: which sends need approval, who may send, approve, set up."""

from dataclasses import dataclass

import pytest

from bot.policy import (
    MAX_APPROVALS,
    Actor,
    ApprovalPolicy,
    PolicyError,
    Role,
    approvals_required,
)


@dataclass(frozen=True)
class Audience:
    segments: tuple[str, ...] = ()
    users: tuple[str, ...] = ()


SEGMENT = Audience(segments=("Subscribed Users",))
USERS = Audience(users=("cust-4711",))


@pytest.mark.parametrize(
    ("mode", "audience", "is_test", "needed"),
    [
        ("off", SEGMENT, False, 0),
        ("off", USERS, False, 0),
        ("segments", SEGMENT, False, 2),
        ("segments", USERS, False, 0),
        ("segments", SEGMENT, True, 0),
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
    assert approvals_required(policy, {"users": ["cust-1"]}, is_test=False) == 0


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
