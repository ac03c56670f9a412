"""The compose form's private_metadata: what it carries back, within Slack's 3,000 characters."""

import json

from bot.delivery import TemplateRef
from commands.send.meta import SLACK_METADATA_LIMIT, Meta

DIGEST = TemplateRef(id="tpl-1", name="Weekly digest", message="This week", title="Digest")


def test_the_chosen_template_comes_back_with_the_form():
    meta = Meta(channel="C1", app="default", send="abc", template=DIGEST)

    assert Meta.load(meta.dump()) == meta


def test_a_template_too_long_for_slack_is_left_out_and_the_rest_kept():
    huge = DIGEST.model_copy(update={"message": "x" * SLACK_METADATA_LIMIT})

    text = Meta(channel="C1", app="default", template=huge).dump()

    assert len(text) <= SLACK_METADATA_LIMIT
    assert Meta.load(text) == Meta(channel="C1", app="default")


def test_a_template_not_of_our_shape_is_ignored():
    text = json.dumps({"app": "default", "template": {"id": 5, "extra": True}})

    assert Meta.load(text) == Meta(app="default")


def test_metadata_that_is_not_ours_loads_empty():
    assert Meta.load("not json") == Meta() == Meta.load('["a"]')
