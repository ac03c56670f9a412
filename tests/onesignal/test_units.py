"""Pure pieces of the client: error normalisation, status table, retry policy."""

from __future__ import annotations

import random

import pytest

from bot.onesignal import errors
from bot.onesignal.retry import RetryPolicy


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (None, []),
        ("App not found", ["App not found"]),
        (["a", "b"], ["a", "b"]),
        ([{"code": "user-2", "title": "User not found"}], ["User not found (user-2)"]),
        ([{"title": "Bad alias"}], ["Bad alias"]),
        (
            {"invalid_aliases": {"external_id": ["u1", "u2"]}},
            ["invalid_aliases: external_id: u1, u2"],
        ),
        ({"invalid_player_ids": ["p1"]}, ["invalid_player_ids: p1"]),
        ([1, {"x": 2}], ["1", "x: 2"]),
    ],
)
def test_errors_are_normalised_from_every_shape(raw: object, expected: list[str]) -> None:
    assert errors.normalize_errors(raw) == expected


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.BadRequest),
        (401, errors.Unauthorized),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (422, errors.BadRequest),
        (429, errors.RateLimited),
        (500, errors.ServerError),
        (503, errors.ServerError),
        (418, errors.OneSignalAPIError),
    ],
)
def test_status_table(status: int, cls: type[errors.OneSignalAPIError]) -> None:
    error = errors.error_for_status(status, operation="op", body={"errors": ["x"]})
    assert type(error) is cls
    assert str(error) == f"OneSignal op failed with HTTP {status}: x"


def test_non_json_error_body_is_kept_as_text() -> None:
    error = errors.error_for_status(502, operation="op", body="<html>Bad gateway</html>")
    assert error.errors == ["<html>Bad gateway</html>"]
    assert error.reference is None


def test_policy_backs_off_with_capped_full_jitter() -> None:
    policy = RetryPolicy(max_retries=4, base_delay=1.0, max_delay=3.0, rng=random.Random(7))
    delays = [policy.delay(n) for n in range(5)]
    ceilings = [1.0, 2.0, 3.0, 3.0]
    assert all(0 <= d <= c for d, c in zip(delays[:4], ceilings, strict=True))  # type: ignore[operator]
    assert delays[4] is None


def test_policy_honours_retry_after_up_to_the_cap() -> None:
    policy = RetryPolicy(max_retries=2, max_delay=10.0)
    assert policy.delay(0, retry_after=4.0) == 4.0
    assert policy.delay(0, retry_after=11.0) is None
    assert policy.delay(2, retry_after=1.0) is None


def test_policy_refuses_negative_settings() -> None:
    with pytest.raises(ValueError, match="negative"):
        RetryPolicy(max_retries=-1)
