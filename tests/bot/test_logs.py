"""Log lines never carry a secret, whatever the code or a library puts in them."""

import io
import json
import logging

import pytest

from bot.logs import Field, RedactingFilter, build_handler, fields_of, logfmt, redact
from bot.settings import Settings

SIGNING_SECRET = "0123456789abcdef-signing"
ONESIGNAL_KEY = "my-onesignal-rest-key-42"


@pytest.fixture
def settings():
    return Settings(
        _env_file=None,
        slack_bot_token="xoxb-111-222-abcdef",
        slack_signing_secret=SIGNING_SECRET,
        onesignal_app_id="1b2c3d4e-0000-4000-8000-00000000abcd",
        onesignal_api_key=ONESIGNAL_KEY,
        log_format="json",
    )


def _logger(settings: Settings, stream: io.StringIO) -> logging.Logger:
    logger = logging.getLogger(f"test.logs.{id(stream)}")
    logger.propagate = False
    logger.handlers[:] = [build_handler(settings, stream)]
    logger.setLevel(logging.DEBUG)
    return logger


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("token xoxb-123-456-abcdef leaked", "xoxb-123-456-abcdef"),
        ("refresh xoxe-1-abcdef leaked", "xoxe-1-abcdef"),
        ("app token xapp-1-A0-123-abc leaked", "xapp-1-A0-123-abc"),
        ("key os_v2_app_abcdefghijklmnop leaked", "os_v2_app_abcdefghijklmnop"),
        ("headers {'Authorization': 'Key abc123secret'} leaked", "abc123secret"),
        ("Authorization: Bearer abc123secret leaked", "abc123secret"),
    ],
)
def test_token_shapes_are_redacted(text, secret):
    cleaned = redact(text)

    assert secret not in cleaned
    assert "[redacted]" in cleaned
    assert cleaned.endswith(" leaked")


def test_configured_secrets_are_redacted_in_messages_args_and_tracebacks(settings):
    stream = io.StringIO()
    logger = _logger(settings, stream)

    try:
        raise RuntimeError(f"upstream said: bad key {ONESIGNAL_KEY}")
    except RuntimeError:
        logger.exception("call failed with secret %s", SIGNING_SECRET)

    line = stream.getvalue()
    assert SIGNING_SECRET not in line
    assert ONESIGNAL_KEY not in line
    entry = json.loads(line)
    assert entry["message"] == "call failed with secret [redacted]"
    assert "RuntimeError: upstream said: bad key [redacted]" in entry["exception"]


def test_json_format_is_one_object_per_line(settings):
    stream = io.StringIO()
    logger = _logger(settings, stream)

    logger.info("first")
    logger.warning("second\nwith a newline")

    lines = stream.getvalue().splitlines()
    assert [json.loads(line)["message"] for line in lines] == ["first", "second\nwith a newline"]
    assert json.loads(lines[1])["level"] == "WARNING"


def test_the_filter_keeps_records_flowing():
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "hello %s", ("xoxb-1-2",), None)

    assert RedactingFilter().filter(record) is True
    assert record.getMessage() == "hello [redacted]"


def test_fields_are_keys_in_json_and_key_value_pairs_in_text(settings):
    fields: dict[str, Field] = {"send": "7K3M9Q", "app": "Mobile App", "attempts": 2, "gone": None}
    json_stream, text_stream = io.StringIO(), io.StringIO()
    json_logger = _logger(settings, json_stream)
    text_logger = _logger(settings.model_copy(update={"log_format": "text"}), text_stream)

    for logger in (json_logger, text_logger):
        logger.warning("send.outcome %s", logfmt(fields), extra=fields_of(fields))

    entry = json.loads(json_stream.getvalue())
    assert entry["send"] == "7K3M9Q" and entry["app"] == "Mobile App" and entry["attempts"] == 2
    assert "gone" not in entry
    assert entry["message"] == 'send.outcome send=7K3M9Q app="Mobile App" attempts=2'
    assert text_stream.getvalue().rstrip().endswith(entry["message"])


def test_fields_never_replace_the_lines_own_keys_and_are_redacted(settings):
    stream = io.StringIO()
    logger = _logger(settings, stream)

    fields = {"level": "DEBUG", "reason": f"bad key {ONESIGNAL_KEY}"}
    logger.error("outcome", extra=fields_of(fields))

    entry = json.loads(stream.getvalue())
    assert entry["level"] == "ERROR"
    assert entry["reason"] == "bad key [redacted]"
    assert ONESIGNAL_KEY not in stream.getvalue()


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("plain", "plain"),
        ("two words", '"two words"'),
        ('say "hi"', '"say \\"hi\\""'),
        ("a=b", '"a=b"'),
        ("line\nbreak", '"line\\nbreak"'),
        ("Café", "Café"),
        (True, "true"),
        (3, "3"),
    ],
)
def test_logfmt_quotes_only_what_needs_it(value, shown):
    assert logfmt({"k": value}) == f"k={shown}"
