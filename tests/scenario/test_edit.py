"""Edit before it goes out: `/push edit ID` and the Edit button open the compose form filled
from an upcoming send; Save changes that same send (same id, short id and idempotency key),
which goes out once at its new time. Under an approval policy the edit voids the approvals
given and asks again in the same approvers' message. An edit that comes after the send went
out is refused and changes nothing. A finished send's "Send again" starts a new one."""

import asyncio
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from bot import const
from bot.onesignal.languages import LANGUAGES as LANGUAGE_NAMES
from storage import queries, workspaces
from storage.models import AuditEvent, SendState, utcnow
from tests.denials import wait_for_denials
from tests.fakes import signing
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.scenario.composekit import (
    by_id,
    initial_message,
    press_send,
    pushed_preview,
    shown_values,
    submit_shown,
    told,
)
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    BOB,
    CAROL,
    SEGMENT,
    all_sends,
    buttons,
    click,
    creates,
    only_send,
    require_approvals,
    serve_sending,
    settings,
    text_of,
    wait_for_state,
)


@pytest.fixture
async def app(serve_pushops, fake_slack, fake_onesignal, database, keyring, tmp_path):
    config = settings(fake_slack, fake_onesignal, tmp_path)
    async with serve_sending(serve_pushops, config, database, keyring) as running:
        yield running


async def schedule(app: Any, database: Any, when: str, text: str = "Big news") -> Any:
    """ALICE schedules a send to SEGMENT (`when`: `--in 1h`, say); the send and her reply."""
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" {when} "{text}"')
    reply = await sent.reply()
    return await only_send(database), reply


async def open_edit(app: Any, fake_slack: Any, short_id: str, *, user: str = ALICE) -> str:
    """`/push edit ID`; the edit form's view id once its segments are listed into it."""
    sent = await app.post_command(f"edit {short_id}", user=user)
    assert sent.response.status_code == 200
    updated = await fake_slack.wait_for("views.update")
    view_id: str = updated.args["view_id"]
    return view_id


async def save(app: Any, fake_slack: Any, view_id: str, *, user: str = ALICE, **typed: Any) -> Any:
    """Type `typed` into the edit form as shown and press Save."""
    shown = fake_slack.view(view_id)
    return await submit_shown(app, fake_slack, view_id, shown_values(shown, **typed), user=user)


async def edited_events(database: Any) -> list[dict[str, Any]]:
    async with database.sessions() as session:
        query = sa.select(AuditEvent).where(AuditEvent.action == "send.edited")
        return [event.details for event in await session.scalars(query)]


async def test_the_form_opens_filled_with_the_send_and_saves_into_it(
    app, fake_slack, fake_onesignal, database
):
    send, reply = await schedule(app, database, "--in 1h --title Launch --priority high")
    assert const.ACTION_EDIT_SEND in buttons(reply["blocks"])  # on the requester's answer

    view_id = await open_edit(app, fake_slack, send.short_id)

    form = fake_slack.view(view_id)
    assert form["callback_id"] == const.CALLBACK_COMPOSE_EDIT and form["submit"]["text"] == "Save"
    assert initial_message(form) == "Big news"
    blocks = by_id(form)
    assert blocks[const.BLOCK_COMPOSE_TITLE]["element"]["initial_value"] == "Launch"
    chosen = blocks[const.BLOCK_COMPOSE_SEGMENTS]["element"]["initial_options"]
    assert [option["value"] for option in chosen] == [SEGMENT]
    at = blocks[const.BLOCK_COMPOSE_AT]["element"]["initial_date_time"]
    assert at == int(send.due_at.timestamp())
    assert blocks["compose_priority"]["element"]["initial_option"]["value"] == "high"
    assert const.BLOCK_COMPOSE_EVERY not in blocks  # an upcoming send stays one send

    response = await save(app, fake_slack, view_id, **{const.BLOCK_COMPOSE_MESSAGE: "Bigger news"})

    assert response.status_code == 200 and not response.text.strip()
    answer = await told(fake_slack, send.short_id, "edited. Saved: its text.")
    assert "Bigger news" in text_of(answer)
    assert const.ACTION_EDIT_SEND in buttons(answer["blocks"])
    [saved] = await all_sends(database)
    assert (saved.id, saved.short_id, saved.state) == (send.id, send.short_id, SendState.SCHEDULED)
    assert saved.content["message"] == "Bigger news" and saved.options == {"priority": "high"}
    assert saved.due_at == send.due_at
    [details] = await edited_events(database)
    assert details["changed"] == ["content"] and details["to"] == "scheduled"
    assert creates(fake_onesignal) == []


@pytest.mark.parametrize("moved", ["earlier", "later"])
async def test_a_send_moved_in_time_goes_out_once_at_its_new_time(
    app, fake_slack, fake_onesignal, database, moved
):
    first = "--in 1h" if moved == "earlier" else "--in 3s"
    send, _ = await schedule(app, database, first)
    view_id = await open_edit(app, fake_slack, send.short_id)
    typed = (
        {const.BLOCK_COMPOSE_WHEN: "in", const.BLOCK_COMPOSE_IN: "2s"}
        if moved == "earlier"
        else {
            const.BLOCK_COMPOSE_WHEN: "at",
            const.BLOCK_COMPOSE_AT: int((utcnow() + timedelta(hours=2)).timestamp()),
        }
    )

    await save(app, fake_slack, view_id, **typed)
    await told(fake_slack, send.short_id, "edited. Saved: its time.")

    if moved == "earlier":
        sent = await wait_for_state(database, send.short_id, SendState.SENT)
        assert sent.due_at is not None and send.due_at is not None
        assert sent.due_at < send.due_at
        [request] = creates(fake_onesignal)
        assert request.json["idempotency_key"] == str(send.id)
    else:
        await asyncio.sleep(4.5)  # past the old time, and a sweep or two
        [kept] = await all_sends(database)
        assert kept.state == SendState.SCHEDULED and kept.due_at is not None
        assert kept.due_at > utcnow() + timedelta(hours=1)
        assert creates(fake_onesignal) == []
    [details] = await edited_events(database)
    assert details["changed"] == ["due_at"]
    assert details["due_at"]["old"] == send.due_at.isoformat()


async def test_an_edit_under_an_approval_policy_asks_the_approvers_again_in_their_message(
    app, fake_slack, fake_onesignal, database
):
    await require_approvals(database, fake_slack)
    send, _ = await schedule(app, database, "--in 1h")
    in_approvals = lambda call: call.args.get("channel") == APPROVALS_CHANNEL  # noqa: E731
    await fake_slack.wait_for("chat.postMessage", where=in_approvals)
    await click(app, const.ACTION_APPROVE, str(send.id), user=BOB, channel=APPROVALS_CHANNEL)
    approved = await wait_for_state(database, send.short_id, SendState.SCHEDULED)
    assert approved.approvals_received == 1
    await fake_slack.wait_for("chat.update", where=in_approvals)  # "Approved by Bob"

    view_id = await open_edit(app, fake_slack, send.short_id)
    await save(app, fake_slack, view_id, **{const.BLOCK_COMPOSE_MESSAGE: "Changed news"})

    answer = await told(fake_slack, send.short_id, "edited. Saved: its text.")
    assert "the approvers are asked again" in text_of(answer)
    asked = await fake_slack.wait_for(
        "chat.update",
        where=lambda call: in_approvals(call) and "Changed news" in text_of(call.args),
    )
    assert const.ACTION_APPROVE in buttons(asked.args["blocks"])
    assert "0 of 1 approval" in text_of(asked.args)
    assert f"Edited by <@{ALICE}>: approvals given before the edit no longer count" in (
        text_of(asked.args)
    )
    assert len(fake_slack.calls_to("chat.postMessage", where=in_approvals)) == 1  # not again
    waiting = await only_send(database)
    assert (waiting.state, waiting.approvals_received) == (SendState.PENDING_APPROVAL, 0)
    async with database.sessions() as session:
        kept = await queries.list_approvals(session=session, team_id=send.team_id, send_id=send.id)
    assert kept == []
    [details] = await edited_events(database)
    assert (details["from"], details["to"]) == ("scheduled", "pending_approval")

    await click(app, const.ACTION_APPROVE, str(send.id), user=BOB, channel=APPROVALS_CHANNEL)
    assert (await wait_for_state(database, send.short_id, SendState.SCHEDULED)).due_at
    assert creates(fake_onesignal) == []


async def test_an_edit_saved_after_the_send_went_out_is_refused_and_changes_nothing(
    app, fake_slack, fake_onesignal, database
):
    send, _ = await schedule(app, database, "--in 2s")
    view_id = await open_edit(app, fake_slack, send.short_id)
    await wait_for_state(database, send.short_id, SendState.SENT)

    response = await save(app, fake_slack, view_id, **{const.BLOCK_COMPOSE_MESSAGE: "Too late"})

    assert response.json() == {
        "response_action": "errors",
        "errors": {
            const.BLOCK_COMPOSE_MESSAGE: f"`{send.short_id}` has already gone out; "
            "nothing was changed."
        },
    }
    [request] = creates(fake_onesignal)
    assert request.json["contents"] == {"en": "Big news"}
    assert (await only_send(database)).content["message"] == "Big news"
    assert await edited_events(database) == []


async def test_someone_elses_send_cannot_be_edited(app, fake_slack, database):
    await require_approvals(database, fake_slack)  # CAROL: a member without a role
    send, _ = await schedule(app, database, "--in 1h", text="Mine")

    sent = await app.post_command(f"edit {send.short_id}", user=CAROL)

    reply = await sent.reply()
    assert "Only the person who asked for a send can edit it" in reply["text"]
    assert fake_slack.calls_to("views.open") == []
    [denied] = await wait_for_denials(database, 1, "send.denied")  # as every refusal is
    assert denied.actor == CAROL and denied.target == f"send {send.short_id}"
    assert denied.details["what"] == "edit a send"


async def test_an_admin_cannot_edit_anothers_send_and_could_not_approve_their_own_words(
    app, fake_slack, database, storage_factory
):
    await require_approvals(database, fake_slack)
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID, name="default")
    assert default is not None
    send = await storage_factory.send(
        default, requester_id=BOB, state=SendState.PENDING_APPROVAL,
        due_at=utcnow() + timedelta(hours=1), content={"message": "Bob's news"},
        audience={"segments": [SEGMENT]}, approvals_required=1,
    )  # fmt: skip

    sent = await app.post_command(f"edit {send.short_id}")  # ALICE, an admin and approver

    reply = await sent.reply()
    assert "Only the person who asked for a send can edit it" in reply["text"]
    assert fake_slack.calls_to("views.open") == []
    assert (await only_send(database)).content == {"message": "Bob's news"}


async def test_send_again_opens_the_form_filled_as_a_new_send(
    app, fake_slack, fake_onesignal, database
):
    send, reply = await schedule(app, database, "--title Launch")
    assert send.state == SendState.SENT  # answered once it went out
    again_button = buttons(reply["blocks"])[const.ACTION_SEND_AGAIN]
    assert const.ACTION_EDIT_SEND not in buttons(reply["blocks"])

    await click(app, const.ACTION_SEND_AGAIN, again_button["value"])

    opened = await fake_slack.wait_for("views.open")
    form = opened.args["view"]
    assert form["callback_id"] == const.CALLBACK_COMPOSE  # a new send, the ordinary way
    assert initial_message(form) == "Big news"
    updated = await fake_slack.wait_for("views.update")
    view_id = updated.args["view_id"]

    response = await submit_shown(app, fake_slack, view_id)
    preview_id, _ = pushed_preview(fake_slack, response)
    await press_send(app, fake_slack, preview_id)

    first, again = await all_sends(database)
    assert first.id == send.id and again.id != send.id and again.short_id != send.short_id
    await wait_for_state(database, again.short_id, SendState.SENT)
    keys = [request.json["idempotency_key"] for request in creates(fake_onesignal)]
    assert keys == [str(send.id), str(again.id)]
    assert creates(fake_onesignal)[1].json["headings"] == {"en": "Launch"}


async def test_edit_on_the_home_opens_the_form_filled_from_the_send(app, fake_slack, database):
    send, _ = await schedule(app, database, "--in 1h")
    event = {"type": "app_home_opened", "user": ALICE, "channel": "D0HOME", "tab": "home"}
    await app.post_event(signing.event_callback(event, team_id=DEFAULT_TEAM_ID))
    published = await fake_slack.wait_for("views.publish")
    home = published.args["view"]
    assert buttons(home["blocks"])[const.ACTION_EDIT_SEND]["value"] == str(send.id)

    payload = signing.block_actions(
        action_id=const.ACTION_EDIT_SEND, user_id=ALICE, team_id=DEFAULT_TEAM_ID,
        response_url="", value=str(send.id), view={**home, "type": "home"},
    )  # fmt: skip
    assert (await app.post_action(payload)).status_code == 200

    opened = await fake_slack.wait_for("views.open")
    assert opened.args["view"]["callback_id"] == const.CALLBACK_COMPOSE_EDIT
    assert initial_message(opened.args["view"]) == "Big news"


# Every OneSignal language but English and the three a full form has no blocks left for.
LANGUAGES = [code for code in LANGUAGE_NAMES if code != "en"]
FITTING = 39
SEGMENTS = [f"Segment {i:02d} " + "x" * 89 for i in range(29)]  # 2,956 characters typed
EXCLUDED = [f"Other {i:02d} " + "y" * 91 for i in range(29)]


async def _worst_send(storage_factory: Any, database: Any, languages: list[str]) -> Any:
    """ALICE's send an hour from now at the largest sizes a send may have."""
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID, name="default")
    assert default is not None
    content = {  # 3,450 of the 3,500 bytes a push holds, with 39 languages
        "message": "Z&<" * 500,  # 2,500 characters once escaped for Slack
        "title": "T" * 100,
        "url": "https://example.com/" + "u" * 150,
        "image": "https://example.com/" + "i" * 150,
        "languages": {code: {"message": "M&" * 10, "title": "T&" * 5} for code in languages},
    }
    options = {
        "local_time": "09:00",
        "throttle": 1_000_000,
        "ttl": 2_419_200,
        "priority": "high",
        "buttons": [
            {"label": "L" * 40, "url": "https://example.com/" + str(i) * 100} for i in range(3)
        ],
        "data": {f"key{i}": "v" * 40 for i in range(20)},
    }
    return await storage_factory.send(
        default, requester_id=ALICE, due_at=utcnow() + timedelta(hours=1), content=content,
        audience={"segments": SEGMENTS, "excluded_segments": EXCLUDED}, options=options,
    )  # fmt: skip


async def test_the_edit_form_and_its_answer_hold_a_send_of_the_largest_sizes(
    app, fake_slack, fake_onesignal, database, storage_factory
):
    for name in SEGMENTS + EXCLUDED:  # listed in the selects: chosen options there
        fake_onesignal.add_segment(fake_onesignal.app.id, name, size=1)
    send = await _worst_send(storage_factory, database, LANGUAGES[:FITTING])

    view_id = await open_edit(app, fake_slack, send.short_id)
    form = fake_slack.view(view_id)
    assert initial_message(form) == "Z&<" * 500
    assert by_id(form)["compose_text_" + LANGUAGES[0]]["element"]["initial_value"] == "M&" * 10
    await save(app, fake_slack, view_id, **{const.BLOCK_COMPOSE_TITLE: "Shorter"})
    await told(fake_slack, send.short_id, "edited. Saved: its text.")
    assert fake_slack.take_refusals() == []
    [saved] = await all_sends(database)
    assert saved.content["languages"] == send.content["languages"]
    assert saved.options == send.options
    assert (
        saved.audience["segments"] == SEGMENTS and saved.audience["excluded_segments"] == EXCLUDED
    )


async def test_a_send_larger_than_the_form_holds_is_not_opened_and_the_person_is_told(
    app, fake_slack, database, storage_factory
):
    send = await _worst_send(storage_factory, database, LANGUAGES[: FITTING + 1])

    sent = await app.post_command(f"edit {send.short_id}")

    reply = await sent.reply()
    assert (
        f"`{send.short_id}` does not fit in Slack's form: its {FITTING + 1} languages"
        in (reply["text"])
    )
    assert fake_slack.calls_to("views.open") == []
