"""Health, readiness and metrics endpoints, as an orchestrator and Prometheus see them."""

import gc

from tests.fakes.slack import RESPONSE_URL
from tests.plugins.slack import default_services


async def test_healthz_answers_while_the_process_is_up(pushops):
    response = await pushops.http.get("/healthz")

    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_is_200_when_the_readiness_check_passes(serve_pushops, slack_settings):
    async def reachable():
        return None

    async with serve_pushops(slack_settings, readiness=reachable) as app:
        response = await app.http.get("/readyz")

    assert response.status_code == 200
    assert response.json()["status"] == "ready"


async def test_readyz_is_503_when_the_database_is_unreachable(serve_pushops, slack_settings):
    async def unreachable():
        raise ConnectionRefusedError("database down")

    async with serve_pushops(slack_settings, readiness=unreachable) as app:
        response = await app.http.get("/readyz")
        health = await app.http.get("/healthz")

    assert response.status_code == 503
    assert response.json() == {"status": "unavailable", "reason": "ConnectionRefusedError"}
    assert health.status_code == 200


async def test_metrics_count_commands_in_prometheus_text(pushops):
    sent = await pushops.post_command("help")
    await sent.reply()
    await pushops.post_command("nope")

    response = await pushops.http.get("/metrics")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'pushops_commands_total{subcommand="help"} 1.0' in text
    assert 'pushops_commands_total{subcommand="unknown"} 1.0' in text
    assert 'pushops_slack_requests_total{kind="command"} 2.0' in text
    assert 'pushops_http_slack_events_total{status="200"} 2.0' in text
    assert "pushops_slack_ack_seconds_bucket" in text


async def test_shutdown_waits_for_work_after_the_ack(
    serve_pushops, slack_settings, fake_slack, sqlite_database, keyring
):
    services = default_services(slack_settings, sqlite_database, keyring)
    fake_slack.delay(RESPONSE_URL, 0.5)  # the reply is still on its way at shutdown
    async with serve_pushops(slack_settings, services=services) as app:
        sent = await app.post_command("help")
        assert sent.replies() == []
    # The server is stopped: the reply that follows the ack was still delivered.
    assert sent.replies(), "the reply was cut off by the shutdown"
    assert len(services.tasks) == 0


async def test_serving_leaves_the_garbage_collector_as_the_process_set_it(
    serve_pushops, slack_settings
):
    # Freezing the heap and raising the thresholds is `pushops serve`'s and `worker`'s
    # choice for their process (bot/collector.py); an app served in-process, as here, must
    # leave a test run's collector alone.
    gc.unfreeze()
    thresholds = gc.get_threshold()
    gc.set_threshold(700, 10, 10)
    try:
        async with serve_pushops(slack_settings) as pushops:
            assert (await pushops.http.get("/healthz")).status_code == 200
            assert gc.get_threshold() == (700, 10, 10)
            assert gc.get_freeze_count() == 0
    finally:
        gc.set_threshold(*thresholds)
