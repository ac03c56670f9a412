"""`/push` over Socket Mode: the app connects through apps.connections.open and acks envelopes."""

from tests.fakes.slack import DEFAULT_APP_TOKEN


async def test_help_over_socket_mode_is_acked_then_answered(pushops_socket, fake_slack):
    opened = await fake_slack.wait_for("apps.connections.open")
    assert opened.token == DEFAULT_APP_TOKEN

    sent = await pushops_socket.socket_command("help")

    assert sent.ack is not None and "envelope_id" in sent.ack
    reply = await sent.reply()
    assert reply["response_type"] == "ephemeral"
    assert "/push cancel ID" in reply["text"]


async def test_socket_mode_serves_no_http_door_but_keeps_health(pushops_socket):
    events = await pushops_socket.http.post("/slack/events", content="{}")
    health = await pushops_socket.http.get("/healthz")

    assert events.status_code in (404, 405)
    assert health.status_code == 200
