"""No API key in a log line, a repr or an exception text, whatever goes wrong."""

from __future__ import annotations

import logging
import uuid
from typing import Any

import httpx
import pytest

from bot.onesignal import OneSignalClient, OneSignalError
from tests.onesignal.conftest import make_client


async def test_keys_never_reach_logs_reprs_or_errors(
    fake_onesignal: Any, http_client: httpx.AsyncClient, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    keys = [fake_onesignal.app.rest_api_key, fake_onesignal.org_api_key]
    texts: list[str] = []
    fake_onesignal.faults.statuses([503, 429], path="/notifications", retry_after=0.01)
    fake_onesignal.faults.drop_connections(1, path="/apps")
    async with make_client(fake_onesignal, http_client=http_client) as client:
        texts.append(repr(client))
        texts.append(str(vars(client)))
        texts.append(repr(await client.get_notifications(fake_onesignal.app.id, limit=1)))
        apps = await client.get_apps()
        texts += [repr(apps), str(apps[0]), apps[0].model_dump_json()]
        texts.append(repr(await client.get_app(fake_onesignal.app.id)))
        for failing in (
            client.fetch_user(fake_onesignal.app.id, "external_id", "nobody"),
            client.create_notification({"app_id": fake_onesignal.app.id, "contents": {"en": "x"}}),
            client.get_notifications(str(uuid.uuid4())),
        ):
            with pytest.raises(OneSignalError) as caught:
                await failing
            texts += [str(caught.value), repr(caught.value), repr(caught.value.__dict__)]
    async with make_client(
        fake_onesignal, http_client=http_client, rest_api_key="os_v2_app_wrongkey"
    ) as wrong:
        with pytest.raises(OneSignalError) as caught:
            await wrong.get_notifications(fake_onesignal.app.id)
        texts += [str(caught.value), repr(caught.value.__dict__), repr(wrong)]
    texts.append(caplog.text)
    assert "retry" in caplog.text  # the log did record the faults
    for text in texts:
        for key in [*keys, "os_v2_app_wrongkey"]:
            assert key not in text


async def test_a_key_echoed_by_the_server_is_scrubbed(
    fake_onesignal: Any, http_client: httpx.AsyncClient
) -> None:
    """OneSignal quotes a bad value back in its error; were it a key, it would not show."""
    key = fake_onesignal.app.rest_api_key
    async with make_client(fake_onesignal, http_client=http_client) as client:
        with pytest.raises(OneSignalError) as caught:
            await client.create_notification(
                {
                    "app_id": fake_onesignal.app.id,
                    "contents": {"en": "x"},
                    "included_segments": ["Active Users"],
                    "send_after": key,  # a caller's slip, echoed by the API's 400
                }
            )
    assert "[redacted]" in str(caught.value)
    assert key not in str(caught.value)
    assert key not in repr(getattr(caught.value, "body", None))


def test_empty_key_is_refused() -> None:
    with pytest.raises(ValueError, match="rest_api_key is empty"):
        OneSignalClient(rest_api_key=" ")
