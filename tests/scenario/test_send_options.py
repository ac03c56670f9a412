"""`/push send` with OneSignal's templates, more languages and delivery options, through the
real door: what OneSignal receives (checked against its documented shape), what the preview
and the cards say, what is stored and audited; bad input is answered and writes nothing."""

from typing import Any

import pytest
import sqlalchemy as sa

from bot import const
from storage import workspaces
from storage.models import AuditEvent, SendState
from tests.fakes.onesignal.shapes import check_notification
from tests.fakes.slack import DEFAULT_TEAM_ID
from tests.onesignal.spec import check_request
from tests.scenario.sendkit import (
    ALICE,
    APPROVALS_CHANNEL,
    BOB,
    SEGMENT,
    all_sends,
    audit_actions,
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


async def _send_now(app: Any, database: Any, options: str) -> tuple[Any, dict[str, Any]]:
    """`send --yes` with `options`: the row once sent, and the reply."""
    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" {options}')
    reply = await sent.reply()
    send = await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)
    return send, reply


def _body(fake_onesignal: Any) -> dict[str, Any]:
    """The one create_notification body, valid against OneSignal's schema and shapes."""
    [request] = creates(fake_onesignal)
    check_request("create_notification", request)
    check_notification(request.json)
    body: dict[str, Any] = request.json
    return body


async def _created_details(database: Any) -> dict[str, Any]:
    async with database.sessions() as session:
        query = sa.select(AuditEvent.details).where(AuditEvent.action == "send.created")
        [details] = list(await session.scalars(query))
    return dict(details)


# --- languages ---------------------------------------------------------------------------


async def test_a_send_in_three_languages_carries_each_to_onesignal_and_the_card(
    app, fake_onesignal, database
):
    send, reply = await _send_now(
        app,
        database,
        '--title Update --title-de Neuigkeit --text-de "Neue Version" '
        '--text-FR "Nouvelle version" "New version"',
    )

    body = _body(fake_onesignal)
    assert body["contents"] == {"en": "New version", "de": "Neue Version", "fr": "Nouvelle version"}
    assert body["headings"] == {"en": "Update", "de": "Neuigkeit"}
    text = text_of(reply)
    assert "New version" in text
    assert "`de` *Neuigkeit* Neue Version" in text and "`fr` Nouvelle version" in text
    assert send.content["languages"] == {
        "de": {"message": "Neue Version", "title": "Neuigkeit"},
        "fr": {"message": "Nouvelle version"},
    }
    assert (await _created_details(database))["languages"] == ["en", "de", "fr"]


async def test_the_preview_shows_every_language(app, database):
    sent = await app.post_command(
        f'send --segment "{SEGMENT}" --text-de Hallo --text-ja こんにちは Hello'
    )

    text = text_of(await sent.reply())
    assert "Preview of" in text
    assert "Hello" in text and "`de` Hallo" in text and "`ja` こんにちは" in text


# --- templates ---------------------------------------------------------------------------


async def test_a_template_send_carries_the_template_and_shows_its_name_and_content(
    app, fake_onesignal, database
):
    template = fake_onesignal.add_template(
        fake_onesignal.app.id,
        "Weekly digest",
        content={"contents": {"en": "This week in the app"}, "headings": {"en": "Digest"}},
    )
    sent = await app.post_command(f'send --segment "{SEGMENT}" --template "weekly DIGEST"')
    preview = text_of(await sent.reply())
    draft = await only_send(database)
    assert "Template: Weekly digest" in preview
    assert "This week in the app" in preview and "*Digest*" in preview

    clicked = await click(app, const.ACTION_SEND_CONFIRM, str(draft.id))

    answer = await app.fake.wait_for_reply(clicked)
    await wait_for_state(database, draft.short_id, SendState.SENT)
    body = _body(fake_onesignal)
    assert body["template_id"] == template["id"]
    assert "contents" not in body and "headings" not in body  # OneSignal fills them in
    assert "Template: Weekly digest" in text_of(answer)
    assert draft.content["template"]["id"] == template["id"]
    assert (await _created_details(database))["template"] == {
        "id": template["id"],
        "name": "Weekly digest",
    }
    listed = fake_onesignal.requests_to("GET", "/templates")
    assert listed and listed[0].query["app_id"] == [fake_onesignal.app.id]


async def test_text_given_with_a_template_replaces_the_templates(app, fake_onesignal, database):
    template = fake_onesignal.add_template(fake_onesignal.app.id, "Promo")

    await _send_now(app, database, f"--template {template['id']} --text-de Rabatt Sale")

    body = _body(fake_onesignal)
    assert body["template_id"] == template["id"]
    assert body["contents"] == {"en": "Sale", "de": "Rabatt"}


# --- delivery options --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "fields", "shown"),
    [
        (
            "--local-time 9:30",
            {"delayed_option": "timezone", "delivery_time_of_day": "09:30"},
            "at 09:30 in each user's time zone",
        ),
        ("--when-active", {"delayed_option": "last-active"}, "when each user is usually active"),
        ("--throttle 500", {"throttle_rate_per_minute": "500"}, "at most 500 per minute"),
        ("--ttl 2h", {"ttl": 7200}, "expires after 2 hours offline"),
        ("--priority high", {"priority": 10}, "high priority"),
        ("--priority normal", {"priority": 5}, "normal priority"),
        ("--data plan=pro --data region=eu", {"data": {"plan": "pro", "region": "eu"}}, "plan=pro"),
    ],
)
async def test_each_delivery_option_reaches_onesignal_and_shows_on_the_card(
    app, fake_onesignal, database, options, fields, shown
):
    send, reply = await _send_now(app, database, f"{options} Hello")

    body = _body(fake_onesignal)
    assert {key: body.get(key) for key in fields} == fields
    assert shown in text_of(reply)
    assert send.options and (await _created_details(database))["options"] == send.options


@pytest.mark.parametrize(
    ("options", "stored", "shown"),
    [
        ("--local-time 9:30", {"local_time": "09:30"}, "at 09:30 in each user's time zone"),
        ("--when-active", {"when_active": True}, "when each user is usually active"),
        ("--throttle 500", {"throttle": 500}, "at most 500 per minute"),
        ("--ttl 2h", {"ttl": 7200}, "expires after 2 hours offline"),
        ("--priority high", {"priority": "high"}, "high priority"),
        ("--data plan=pro", {"data": {"plan": "pro"}}, "plan=pro"),
        (
            '--button "Read more|https://example.com/news"',
            {"buttons": [{"label": "Read more", "url": "https://example.com/news"}]},
            "Buttons: Read more (https://example.com/news)",
        ),
    ],
)
async def test_the_preview_shows_each_delivery_option_and_the_confirmed_card_keeps_it(
    app, fake_onesignal, database, options, stored, shown
):
    sent = await app.post_command(f'send --segment "{SEGMENT}" {options} Hello')

    preview = text_of(await sent.reply())
    draft = await only_send(database)
    assert "Preview of" in preview and shown in preview, preview
    assert draft.state == SendState.DRAFT and draft.options == stored
    assert creates(fake_onesignal) == []

    answer = await app.fake.wait_for_reply(
        await click(app, const.ACTION_SEND_CONFIRM, str(draft.id))
    )

    await wait_for_state(database, draft.short_id, SendState.SENT)
    assert shown in text_of(answer)
    assert _body(fake_onesignal)  # the one request, valid against OneSignal's spec
    assert (await _created_details(database))["options"] == stored


async def test_a_button_goes_to_web_push_with_its_link_and_to_apps_through_data(
    app, fake_onesignal, database
):
    send, reply = await _send_now(
        app, database, '--button "Read more|https://example.com/news" --data plan=pro Hello'
    )

    body = _body(fake_onesignal)
    assert body["buttons"] == [{"id": "button-1", "text": "Read more"}]
    assert body["web_buttons"] == [
        {"id": "button-1", "text": "Read more", "url": "https://example.com/news"}
    ]
    assert body["data"] == {
        "plan": "pro",
        "button_urls": {"button-1": "https://example.com/news"},
    }
    assert "Buttons: Read more (https://example.com/news)" in text_of(reply)
    assert send.options["buttons"] == [{"label": "Read more", "url": "https://example.com/news"}]
    assert (await _created_details(database))["options"]["buttons"] == send.options["buttons"]


async def test_a_local_time_send_scheduled_for_later_keeps_its_option(
    app, fake_onesignal, database
):
    sent = await app.post_command(f'send --yes --in 1s --local-time 08:00 --segment "{SEGMENT}" Hi')
    reply = await sent.reply()
    assert "at 08:00 in each user's time zone" in text_of(reply)

    await wait_for_state(database, (await only_send(database)).short_id, SendState.SENT)

    body = _body(fake_onesignal)
    assert body["delayed_option"] == "timezone" and body["delivery_time_of_day"] == "08:00"


async def test_a_send_delivered_per_time_zone_stays_cancellable_after_it_went_out(
    app, fake_onesignal, database
):
    send, _ = await _send_now(app, database, "--local-time 09:00 Hello")
    for _ in range(3):  # every step OneSignal takes: the last zones are still ahead
        fake_onesignal.advance_delivery(send.notification_id)

    sent = await app.post_command(f"cancel {send.short_id}")

    reply = await sent.reply()
    assert f"Asked OneSignal to stop `{send.short_id}`" in reply["text"]
    assert fake_onesignal.notifications[send.notification_id]["canceled"] is True
    assert (await only_send(database)).state == SendState.CANCELLED


async def test_a_send_delivered_at_once_is_no_longer_cancellable_once_all_have_it(
    app, fake_onesignal, database
):
    send, _ = await _send_now(app, database, "Hello")
    for _ in range(3):
        fake_onesignal.advance_delivery(send.notification_id)

    sent = await app.post_command(f"cancel {send.short_id}")

    assert "already delivered to everyone" in (await sent.reply())["text"]


# --- bad input ---------------------------------------------------------------------------


async def _assert_refused(
    sent: Any, database: Any, fake_onesignal: Any, audited: list[str], *expected: str
) -> None:
    """Answered with `expected`; no row, no audit event beyond `audited`, nothing sent."""
    reply = await sent.reply()
    assert sent.response.status_code == 200
    for words in expected:
        assert words in reply["text"], reply["text"]
    assert await all_sends(database) == []
    assert await audit_actions(database) == audited
    assert creates(fake_onesignal) == []


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        (
            "--text-xx Hallo Hello",
            ("--text-xx: OneSignal does not accept the language code 'xx'", "de, el, hi"),
        ),
        ("--title-en Hi Hello", ("English is the message itself",)),
        ("--text-de Hallo", ("English is required beside other languages",)),
        ("--when-active --local-time 09:00 Hello", ("Use --local-time or --when-active",)),
        ("--button Open Hello", ("The button 'Open' has no link", "Label|https://")),
        ("--button 'Open|not a link' Hello", ("is not a web address",)),
        (
            " ".join(f"--button 'B{i}|https://example.com/{i}'" for i in range(4)) + " Hello",
            ("That is 4 buttons; a notification has at most 3.",),
        ),
        ("--data plan Hello", ("The data 'plan' is not KEY=VALUE",)),
        ("--data button_urls=x Hello", ("button_urls is PushOps's own",)),
        ("--local-time 25:00 Hello", ("is not a time of day",)),
        ("--throttle fast Hello", ("The throttle 'fast' is not a whole number",)),
        ("--ttl 40d Hello", ("at most 28 days",)),
        ("--priority urgent Hello", ("The priority is high or normal.",)),
        ("--every-day Hello", ("Unknown option --every-day",)),
    ],
)
async def test_bad_options_are_answered_and_write_nothing(
    app, fake_onesignal, database, options, expected
):
    audited = await audit_actions(database)

    sent = await app.post_command(f'send --segment "{SEGMENT}" {options}')

    await _assert_refused(sent, database, fake_onesignal, audited, *expected)


async def test_an_unknown_template_is_answered_with_the_apps_templates(
    app, fake_onesignal, database
):
    fake_onesignal.add_template(fake_onesignal.app.id, "Welcome")
    fake_onesignal.add_template(fake_onesignal.app.id, "Weekly digest")
    audited = await audit_actions(database)

    sent = await app.post_command(f'send --yes --segment "{SEGMENT}" --template Digest')

    await _assert_refused(
        sent,
        database,
        fake_onesignal,
        audited,
        "There is no template 'Digest'. This app's templates: Welcome, Weekly digest.",
    )


# --- approvals, status, batches -------------------------------------------------------------


async def test_a_send_with_options_is_approved_once_and_keeps_them(
    app, fake_slack, fake_onesignal, database
):
    await require_approvals(database, fake_slack)
    sent = await app.post_command(
        f'send --yes --segment "{SEGMENT}" --when-active --button "Open|https://example.com" '
        "--text-de Neuigkeiten News"
    )
    await sent.reply()
    send = await only_send(database)
    request = await fake_slack.wait_for(
        "chat.postMessage", where=lambda c: c.args.get("channel") == APPROVALS_CHANNEL
    )
    asked = text_of(request.args)
    assert "when each user is usually active" in asked and "Buttons: Open" in asked
    assert "`de` Neuigkeiten" in asked
    assert creates(fake_onesignal) == []

    await click(app, const.ACTION_APPROVE, str(send.id), user=BOB, channel=APPROVALS_CHANNEL)

    await wait_for_state(database, send.short_id, SendState.SENT)
    body = _body(fake_onesignal)
    assert body["delayed_option"] == "last-active"
    assert body["contents"] == {"en": "News", "de": "Neuigkeiten"}
    assert body["web_buttons"][0]["url"] == "https://example.com"


async def test_status_of_a_send_delivered_per_time_zone_reads_onesignals_counters(
    app, fake_onesignal, database
):
    send, _ = await _send_now(app, database, "--local-time 09:00 Hello")
    for _ in range(3):
        fake_onesignal.advance_delivery(send.notification_id)

    sent = await app.post_command(f"status {send.short_id}")

    text = text_of(await sent.reply())
    assert f"`{send.short_id}`" in text
    assert "Delivery: at 09:00 in each user's time zone" in text
    assert "Delivery still in progress" in text
    assert fake_onesignal.notifications[send.notification_id]["completed_at"] is None


async def test_every_batch_of_a_large_send_carries_the_same_options(
    app, fake_onesignal, database, storage_factory
):
    users = [f"cust-{i:04d}" for i in range(2_001)]  # 2,000 ids a call: two batches
    for user in users:
        fake_onesignal.add_user(fake_onesignal.app.id, user)
    async with database.sessions() as session:
        default = await workspaces.get_app(session=session, team_id=DEFAULT_TEAM_ID)
    assert default is not None
    send = await storage_factory.send(
        default,
        requester_id=ALICE,
        content={"message": "Hello", "languages": {"fr": {"message": "Bonjour"}}},
        audience={"external_ids": users},
        options={"local_time": "18:00", "throttle": 100, "data": {"plan": "pro"}},
    )

    await wait_for_state(database, send.short_id, SendState.SENT)

    first, second = creates(fake_onesignal)
    for request in (first, second):
        check_request("create_notification", request)
        check_notification(request.json)
    audience = {"include_aliases", "idempotency_key", "name"}
    same = {k: v for k, v in first.json.items() if k not in audience}
    assert same == {k: v for k, v in second.json.items() if k not in audience}
    assert same["contents"] == {"en": "Hello", "fr": "Bonjour"}
    assert same["delivery_time_of_day"] == "18:00" and same["throttle_rate_per_minute"] == "100"
    assert same["data"] == {"plan": "pro"}


async def test_the_apps_templates_are_listed_once_for_sends_close_together(
    app, fake_onesignal, database
):
    template = fake_onesignal.add_template(fake_onesignal.app.id, "Welcome")

    for _ in range(2):
        sent = await app.post_command(f'send --segment "{SEGMENT}" --template Welcome')
        assert "Template: Welcome" in text_of(await sent.reply())

    asked = [r.path for r in fake_onesignal.requests_to("GET", "/templates")]
    assert asked == ["/templates", f"/templates/{template['id']}"]  # once each, then kept
    assert len(await all_sends(database)) == 2
