"""A send to more external ids than one OneSignal call takes goes out in batches, each its own
notification: `/push status` and `/push cancel` find the send by any batch's id, read from
`send_notifications` (an indexed table), and the workspace's other sends are never scanned."""

from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from storage import queries, workspaces
from storage.models import Send, SendNotification, SendState, utcnow
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.plugins.database import OTHER_TEAM
from tests.scenario.sendkit import (
    ALICE,
    creates,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)

USERS = [f"cust-{i:04d}" for i in range(2_001)]  # 2,000 ids a call: two batches


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    for user in USERS:
        fake_onesignal.add_user(fake_onesignal.app.id, user)
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def _sent_in_two_batches(database: Any, storage_factory: Any) -> Send:
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID)
    assert default is not None
    send = await storage_factory.send(
        default,
        requester_id=ALICE,
        audience={"external_ids": USERS},
        due_at=utcnow() + timedelta(milliseconds=200),
    )
    return await wait_for_state(database, send.short_id, SendState.SENT)


async def _rows(database: Any) -> list[tuple[str, int]]:
    async with database.sessions() as session:
        query = sa.select(SendNotification.notification_id, SendNotification.batch)
        return [tuple(row) for row in (await session.execute(query.order_by("batch"))).all()]


async def test_every_batch_id_is_recorded_and_status_finds_the_send_by_the_second(
    app, fake_onesignal, database, storage_factory
):
    send = await _sent_in_two_batches(database, storage_factory)
    first, second = (batch["notification_id"] for batch in send.batches)

    status = await (await app.post_command(f"status {second}")).reply()

    assert len(creates(fake_onesignal)) == 2 and first == send.notification_id
    assert await _rows(database) == [(first, 0), (second, 1)]
    assert f"`{send.short_id}`" in text_of(status)


async def test_cancel_by_a_later_batch_id_stops_every_batch(
    app, fake_onesignal, database, storage_factory
):
    send = await _sent_in_two_batches(database, storage_factory)
    first, second = (batch["notification_id"] for batch in send.batches)

    reply = await (await app.post_command(f"cancel {second}")).reply()

    assert f"Asked OneSignal to stop `{send.short_id}`" in reply["text"]
    deleted = {r.path for r in fake_onesignal.requests_to("DELETE", "/notifications/")}
    assert deleted == {f"/notifications/{first}", f"/notifications/{second}"}
    assert fake_onesignal.notifications[second]["canceled"] is True


async def test_a_later_batch_id_is_found_through_its_row_alone(app, database, storage_factory):
    send = await _sent_in_two_batches(database, storage_factory)
    second = send.batches[1]["notification_id"]
    async with database.sessions.begin() as session:  # the JSON keeps it; the row is gone
        await session.execute(
            sa.delete(SendNotification).where(SendNotification.notification_id == second)
        )

    reply = await (await app.post_command(f"cancel {second}")).reply()

    # Without its row the id is no send of PushOps' here: a bare notification of the app.
    assert f"Asked OneSignal to stop notification {second} (app default)" in reply["text"]
    assert f"`{send.short_id}`" not in reply["text"]
    assert (await _state(database, send)) == SendState.SENT


async def test_a_batch_id_of_another_workspace_is_not_found_here(app, database, storage_factory):
    send = await _sent_in_two_batches(database, storage_factory)
    second = send.batches[1]["notification_id"]

    async with database.sessions() as session:
        elsewhere = await queries.find_send(session=session, team_id=OTHER_TEAM, ref=second)
    assert elsewhere is None


async def _state(database: Any, send: Send) -> SendState:
    async with database.sessions() as session:
        found = await queries.get_send(session=session, team_id=send.team_id, send_id=send.id)
    assert found is not None
    return found.state
