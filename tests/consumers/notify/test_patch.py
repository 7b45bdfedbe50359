"""Changing a notification target (pure): ``spec_of``, ``apply_patch``, ``notify_view``."""

from __future__ import annotations

import msgspec
import pytest

from consumers.delivery.model import Endpoint
from consumers.notify import (
    NotifyPatch,
    NotifySpec,
    notify_view,
    spec_of,
)
from consumers.webhook import SpecError, apply_patch, build_endpoint

DISCORD_URL = "https://discord.com/api/webhooks/123456/SeCrEtToKeN"
APPRISE_URL = "tgram://123456:ABCdef/98765"


def build(**spec: object) -> Endpoint:
    return build_endpoint(msgspec.convert(spec, NotifySpec), now=100.0, head=7)


def test_spec_of_builds_the_same_endpoint_again() -> None:
    for ep in (
        build(kind="discord", url=DISCORD_URL, id="d", types=["order.*"], retry="short",
              options={"template": "{type}", "username": "shop"}, rate_limit=2.0),
        build(kind="apprise", url=APPRISE_URL, id="a", options={"title": "t"}),
    ):  # fmt: skip
        again = build_endpoint(spec_of(ep), now=100.0, head=7)
        assert again == ep


def test_spec_of_refuses_a_webhook_endpoint() -> None:
    with pytest.raises(ValueError, match="not a notification target"):
        spec_of(Endpoint(id="w", url="https://example.com/"))


def test_a_patch_changes_only_its_fields_and_keeps_the_runtime_state() -> None:
    ep = build(kind="discord", url=DISCORD_URL, id="d", options={"template": "{type}"})
    ep = msgspec.structs.replace(
        ep, enabled=False, disabled_reason="Discord answered 404", failing_since=50.0
    )
    patched = apply_patch(
        ep, NotifyPatch(options={"template": "#{offset}"}, types=["a.*"]), now=200.0
    )
    assert (patched.id, patched.start_offset, patched.created) == ("d", 7, 100.0)
    assert (patched.options, patched.types, patched.updated) == (
        {"template": "#{offset}"},
        ["a.*"],
        200.0,
    )
    assert (patched.enabled, patched.disabled_reason, patched.failing_since) == (
        False,
        "Discord answered 404",
        50.0,
    )
    assert patched.url == DISCORD_URL
    enabled = apply_patch(patched, NotifyPatch(enabled=True), now=300.0)
    assert (enabled.enabled, enabled.disabled_reason, enabled.failing_since) == (True, None, None)


def test_patching_max_attempts_keeps_the_retry_schedule() -> None:
    ep = build(kind="slack", url="https://hooks.slack.com/services/T0/B0/x", retry="short")
    patched = apply_patch(ep, NotifyPatch(max_attempts=2), now=1.0)
    assert patched.retry.schedule == ep.retry.schedule
    assert patched.retry.max_attempts == 2


def test_an_apprise_url_is_patched_into_its_options() -> None:
    ep = build(kind="apprise", url=APPRISE_URL, id="a")
    patched = apply_patch(ep, NotifyPatch(url="ntfys://my-topic"), now=1.0)
    assert (patched.url, patched.options["url"]) == ("apprise://ntfys", "ntfys://my-topic")
    assert "my-topic" not in msgspec.json.encode(notify_view(patched, 1.0)).decode()


@pytest.mark.parametrize(
    ("patch", "path"),
    [
        (NotifyPatch(options={"template": "{oops"}), "options.template"),
        (NotifyPatch(url="ftp://x/"), "url"),
        (NotifyPatch(stream="no spaces"), "stream"),
        (NotifyPatch(max_attempts=0), "max_attempts"),
    ],
)
def test_a_bad_patch_names_the_field(patch: msgspec.Struct, path: str) -> None:
    ep = build(kind="discord", url=DISCORD_URL)
    with pytest.raises(SpecError) as info:
        apply_patch(ep, patch, now=1.0)
    assert info.value.path == path


def test_the_view_masks_the_url_and_has_no_secrets() -> None:
    view = notify_view(build(kind="discord", url=DISCORD_URL, id="d"), 1.0)
    assert view["url"] == "https://discord.com/api/webhooks/…"
    assert "SeCrEtToKeN" not in msgspec.json.encode(view).decode()
    assert {"secrets", "headers", "max_in_flight"}.isdisjoint(view)
    assert (view["id"], view["kind"], view["start_offset"]) == ("d", "discord", 7)
