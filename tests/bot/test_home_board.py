"""`HomeBoard`: a published Home is published again when a send it shows moves, once for
several moves (debounced), never more often than its pace allows; it reads no other
workspace's sends; a Home not opened for `watch_for` is let go."""

from datetime import timedelta

from bot.home import HomeBoard, HomePolicy
from bot.slack_limits import Limit
from storage import home as home_queries
from storage import queries
from storage.models import SendState, utcnow
from tests.plugins.database import OTHER_TEAM

TEAM = "T0PUSHOPS"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def _cancel(database, send) -> None:
    async with database.sessions.begin() as session:
        await queries.cancel_send(
            session=session, team_id=send.team_id, send_id=send.id, actor="U1"
        )


async def test_moves_are_published_once_each_look_and_within_the_pace(database, storage_factory):
    app = await storage_factory.app(TEAM, make_default=True)
    later = utcnow() + timedelta(hours=1)
    sends = [await storage_factory.send(app, due_at=later) for _ in range(3)]
    clock = Clock()
    board = HomeBoard(database, policy=HomePolicy(per_user=Limit(2, 10.0)), clock=clock)
    published: list[tuple[str, str]] = []

    async def publish(team_id: str, user_id: str) -> None:
        published.append((team_id, user_id))

    board.published(TEAM, "U0ALICE", {s.id: s.state for s in sends})
    await board.look(publish)
    assert published == []  # nothing moved

    await _cancel(database, sends[0])
    await _cancel(database, sends[1])
    await board.look(publish)
    assert published == [(TEAM, "U0ALICE")]  # two moves, one publish

    board.published(TEAM, "U0ALICE", {s.id: SendState.SCHEDULED for s in sends})  # stale on purpose
    await board.look(publish)
    assert len(published) == 2
    board.published(TEAM, "U0ALICE", {s.id: SendState.SCHEDULED for s in sends})
    await board.look(publish)
    assert len(published) == 2  # a third within 10 s would pass the pace: put off
    clock.now += 10.1
    await board.look(publish)
    assert len(published) == 3  # and done once the pace allows


async def test_another_workspaces_send_is_never_read_for_a_home(database, storage_factory):
    other = await storage_factory.app(OTHER_TEAM, make_default=True)
    theirs = await storage_factory.send(other, state=SendState.PENDING_APPROVAL)
    ours = await storage_factory.send(await storage_factory.app(TEAM, make_default=True))

    async with database.sessions() as session:
        states = await home_queries.send_states(
            session=session, team_id=TEAM, send_ids=[theirs.id, ours.id]
        )
        waiting, total = await home_queries.awaiting_approval(
            session=session, team_id=TEAM, approver_id="U0BOB", limit=10
        )

    assert states == {ours.id: SendState.SCHEDULED}
    assert (waiting, total) == ([], 0)


async def test_a_home_not_opened_for_a_while_is_let_go(database, storage_factory):
    app = await storage_factory.app(TEAM, make_default=True)
    send = await storage_factory.send(app, due_at=utcnow() + timedelta(hours=1))
    clock = Clock()
    board = HomeBoard(database, policy=HomePolicy(watch_for=60.0), clock=clock)
    published: list[tuple[str, str]] = []

    async def publish(team_id: str, user_id: str) -> None:
        published.append((team_id, user_id))

    board.published(TEAM, "U0ALICE", {send.id: send.state})
    clock.now += 30
    board.opened(TEAM, "U0ALICE")  # opened again: watched 60 s from now
    clock.now += 45
    await _cancel(database, send)
    await board.look(publish)
    assert published == [(TEAM, "U0ALICE")]

    board.published(TEAM, "U0ALICE", {send.id: SendState.SCHEDULED})
    clock.now += 61
    await board.look(publish)
    assert published == [(TEAM, "U0ALICE")]
