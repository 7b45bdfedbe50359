"""Every ``eventlog`` command's ``--help`` says what each of its arguments is."""

from __future__ import annotations

import argparse
from collections.abc import Iterator

from server.cli.main import build_parser
from tests.server.cli.conftest import eventlog


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def test_every_argument_of_every_command_has_a_help_text() -> None:
    # `eventlog replay --help` listed `--from-offset FROM_OFFSET` and `endpoint`
    # with nothing after them, `webhooks create` its --ordering, --description,
    # --no-replay and --allow-replay likewise.
    bare = [
        f"eventlog {' '.join(path)}: {'/'.join(action.option_strings) or action.dest}"
        for path, parser in _commands(build_parser())
        for action in parser._actions
        if not isinstance(action, argparse._HelpAction | argparse._SubParsersAction)
        and not action.help
    ]
    assert bare == []


def test_notification_delivery_commands_name_a_target_not_an_endpoint() -> None:
    out = eventlog("notifications", "deliveries", "--help")
    assert out.returncode == 0
    assert "  target " in out.stdout
    assert "the target's id" in out.stdout
    assert "endpoint" not in out.stdout
    replay = eventlog("replay", "--help").stdout
    assert "first offset replayed (default: the first retained)" in replay
