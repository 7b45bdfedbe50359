"""Discord and Slack message shapes within every limit, and their answer tables (pure)."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import msgspec
import pytest

from consumers.delivery.retry import AttemptResult
from consumers.notify import discord, slack
from consumers.notify.limits import units
from consumers.notify.template import event_context
from eventlog.model import Event
from tests.consumers.notify.fakes import _discord_problem, _slack_problem

NOW = 1_700_000_000.0


def event(data: object) -> Event:
    return Event(
        stream="s",
        offset=3,
        id="e",
        type="big.event",
        key=None,
        time=datetime(2026, 1, 1, tzinfo=UTC),
        data=msgspec.Raw(msgspec.json.encode(data)),
    )


def result(status: int, body: bytes = b"", **headers: str) -> AttemptResult:
    return AttemptResult(
        status, {k.replace("_", "-"): v for k, v in headers.items()}, body, None, "", 0.01
    )


HUGE = {"t": "T" * 9000, "d": "D" * 9000, "n": "N" * 900, "v": "V" * 3000, "e": "😀" * 3000}


def discord_message(options: dict[str, Any], data: object = HUGE) -> dict[str, Any]:
    ev = event(data)
    return discord.build_message(discord.parse_options(options), ev, event_context(ev))


def test_discord_content_and_every_embed_limit_hold_for_huge_values() -> None:
    fields = [{"name": "{data.n}", "value": "{data.v}", "inline": True}] * 25
    options = {
        "template": "{data.e}",
        "username": "U" * 100,
        "embed": {
            "title": "{data.t}",
            "description": "{data.d}",
            "footer": "{data.t}",
            "fields": fields,
            "color": 0x5865F2,
        },
    }
    message = discord_message(copy.deepcopy(options))
    assert _discord_problem(message) is None  # what the fake (Discord's limits) accepts
    assert units(message["content"]) <= 2000
    assert message["content"].endswith(" chars]")
    assert len(message["username"]) <= 80
    embed = message["embeds"][0]
    assert len(embed["title"]) == 256
    # Fields had to be dropped, and it says how many.
    assert embed["description"].endswith(f"\n[+{25 - len(embed['fields'])} fields]")
    assert message["allowed_mentions"] == {"parse": []}
    # Deterministic: the same event gives the same message.
    assert message == discord_message(copy.deepcopy(options))


def test_discord_empty_render_still_sends_something_and_blank_fields_are_filled() -> None:
    message = discord_message({"template": "{data.missing}"}, data={})
    assert message["content"] == "big.event in s at offset 3"
    with_embed = discord_message(
        {"template": "", "embed": {"fields": [{"name": "{data.x}", "value": "{data.y}"}]}}, {}
    )
    assert "content" not in with_embed
    assert with_embed["embeds"][0]["fields"][0]["name"] == "\u200b"
    assert _discord_problem(with_embed) is None


def test_discord_embed_url_is_left_out_unless_it_renders_to_a_link() -> None:
    options = {"embed": {"title": "t", "url": "{data.link}"}}
    assert "url" not in discord_message(options, {})["embeds"][0]
    assert "url" not in discord_message(options, {"link": "javascript:alert(1)"})["embeds"][0]
    linked = discord_message(options, {"link": "https://shop.example/o/1"})["embeds"][0]
    assert linked["url"] == "https://shop.example/o/1"


def test_discord_wait_url_keeps_other_parameters() -> None:
    assert discord.wait_url("https://discord.com/api/webhooks/1/t") == (
        "https://discord.com/api/webhooks/1/t?wait=true"
    )
    assert discord.wait_url("https://discord.com/api/webhooks/1/t?thread_id=9&wait=false") == (
        "https://discord.com/api/webhooks/1/t?thread_id=9&wait=true"
    )


@pytest.mark.parametrize(
    ("options", "where"),
    [
        ({"template": "{oops"}, "options.template"),
        ({"embed": {"fields": [{"name": "{", "value": "v"}]}}, "options.embed.fields[0].name"),
        ({"embed": {"color": -1}}, "options.embed.color"),
        ({"templat": "x"}, "options"),
        ({"avatar_url": "ftp://x"}, "options.avatar_url"),
        ({"username": "  "}, "options.username"),
        ({"embed": {"url": "{"}}, "options.embed.url"),
    ],
)
def test_discord_bad_options_name_the_option(options: dict[str, Any], where: str) -> None:
    with pytest.raises(ValueError) as exc:
        discord.parse_options(options)
    assert str(exc.value).startswith(where + ":")


def test_plain_options_are_not_templates_and_every_other_text_is() -> None:
    assert discord.parse_options({"username": "{bot}"}).username == "{bot}"
    fields = [{"name": "ok", "value": "{"}] * 2
    with pytest.raises(ValueError, match=r"^options\.fields\[0\]\.value:"):
        slack.parse_options({"fields": fields})
    with pytest.raises(ValueError, match=r"^options\.title:"):
        slack.parse_options({"title": "}"})


def test_discord_answer_table() -> None:
    ok = discord.classify(result(200, b'{"id": "1"}'), NOW)
    assert ok.verdict == "delivered"
    limited = discord.classify(
        result(429, b'{"retry_after": 0.384, "global": false}', retry_after="1"), NOW
    )
    assert (limited.verdict, limited.retry_after) == ("rate_limited", 0.384)
    header_only = discord.classify(result(429, b"<html>", retry_after="2"), NOW)
    assert header_only.retry_after == 2.0
    assert (
        discord.classify(result(404, b'{"message": "Unknown Webhook", "code": 10015}'), NOW).verdict
        == "disable"
    )
    assert (
        discord.classify(result(400, b'{"message": "Invalid Form Body"}'), NOW).verdict == "failed"
    )
    assert discord.classify(result(502), NOW).verdict == "retry"


def slack_message(options: dict[str, Any], data: object = HUGE) -> dict[str, Any]:
    ev = event(data)
    return slack.build_message(slack.parse_options(options), ev, event_context(ev))


def test_slack_text_and_block_limits_hold_for_huge_values() -> None:
    fields = [{"name": "{data.n}", "value": "{data.v}"}] * 12
    message = slack_message({"template": "{data.d}", "title": "{data.t}", "fields": fields})
    assert _slack_problem(message) is None
    assert units(message["text"]) <= 4000
    header, section, field_section, note = message["blocks"]
    assert len(header["text"]["text"]) == 150
    assert units(section["text"]["text"]) <= 3000
    assert len(field_section["fields"]) == 10
    assert note["elements"][0]["text"] == "[+2 fields]"


def test_slack_plain_text_message_and_escaping() -> None:
    message = slack_message({"template": "{type}: {data.t}"}, {"t": "<@U123> & <!here>"})
    assert message == {"text": "big.event: &lt;@U123&gt; &amp; &lt;!here&gt;"}


def test_slack_answer_table() -> None:
    assert slack.classify(result(200, b"ok"), NOW).verdict == "delivered"
    limited = slack.classify(result(429, b"", retry_after="3"), NOW)
    assert (limited.verdict, limited.retry_after) == ("rate_limited", 3.0)
    assert slack.classify(result(403, b"invalid_token"), NOW).verdict == "disable"
    assert slack.classify(result(403, b"action_prohibited"), NOW).verdict == "failed"
    assert slack.classify(result(404, b"channel_not_found"), NOW).verdict == "disable"
    assert slack.classify(result(410, b"channel_is_archived"), NOW).verdict == "disable"
    assert slack.classify(result(400, b"invalid_payload"), NOW).verdict == "failed"
    assert slack.classify(result(500, b"x"), NOW).verdict == "retry"
