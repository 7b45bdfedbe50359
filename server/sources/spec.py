"""What a file source is: its declaration, as ``[[sources]]`` or ``POST /api/sources`` gives it.

Every kind shares ``name``, ``kind``, ``path``, ``stream``, ``type`` and
``errors`` (the stream bad input is parked to, default ``<stream>.errors``);
``options`` holds what a kind adds (``pattern``, ``mode``, ``done`` for
directories; anything for a plugin kind). Validation is sans-I/O.
"""

from __future__ import annotations

import re
from typing import Any, Literal

import msgspec

from eventlog import InvalidStreamName, validate_stream_name
from eventlog.errors import InvalidInput
from server.validation import explained

__all__ = ["BUILTIN_KINDS", "SourceError", "SourceSpec", "parse_spec"]

BUILTIN_KINDS = ("ndjson-tail", "json-file", "directory")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


class SourceError(InvalidInput):
    """A source declaration that cannot run (HTTP 422, a config error at start)."""

    code = "invalid_source"


class SourceSpec(msgspec.Struct, kw_only=True, forbid_unknown_fields=True, frozen=True):
    """One file source.

    Attributes:
        name: 1-64 of ``[A-Za-z0-9._-]``, unique.
        kind: ``ndjson-tail``, ``json-file``, ``directory`` or a plugin's kind.
        path: The file (or directory) to watch.
        stream: Where its events go.
        type: The events' type (default ``<kind>.<name>``... see :meth:`event_type`).
        errors: Where lines that are not UTF-8 JSON are parked (default ``<stream>.errors``).
        pattern: Directory: which file names (a glob, default ``*``).
        mode: Directory: each file is ``"event"`` (one event, the whole JSON) or
            ``"lines"`` (one event per NDJSON line).
        done: Directory: move each file here once appended (else remember it).
        options: Anything a plugin kind reads.
    """

    name: str
    kind: str
    path: str
    stream: str
    type: str | None = None
    errors: str | None = None
    pattern: str = "*"
    mode: Literal["event", "lines"] = "event"
    done: str | None = None
    options: dict[str, Any] = {}

    @property
    def event_type(self) -> str:
        """The type of the events: the declared one, or ``<name>.line`` / ``<name>.file``."""
        if self.type:
            return self.type
        return f"{self.name}.{'line' if self.kind == 'ndjson-tail' else 'file'}"

    @property
    def error_stream(self) -> str:
        """Where bad input is parked."""
        return self.errors or f"{self.stream}.errors"


def parse_spec(raw: object, kinds: tuple[str, ...] = BUILTIN_KINDS) -> SourceSpec:
    """Validate a declaration (a dict from TOML or JSON).

    Raises:
        SourceError: What is wrong, naming the field.
    """
    try:
        spec = msgspec.convert(raw, SourceSpec)
    except msgspec.ValidationError as exc:
        raise SourceError(explained(exc, SourceSpec)) from None
    if not _NAME.fullmatch(spec.name):
        raise SourceError("name must be 1-64 of [A-Za-z0-9._-], starting alphanumeric")
    if spec.kind not in kinds:
        raise SourceError(f"unknown kind {spec.kind!r}: use one of {', '.join(kinds)}")
    if not spec.path:
        raise SourceError("path must not be empty")
    for field, path in (("path", spec.path), ("done", spec.done or "")):
        if "\0" in path:  # no file has one: the source would only ever fail to open it
            raise SourceError(f"{field} must not contain a NUL character")
    for field, stream in (("stream", spec.stream), ("errors", spec.error_stream)):
        try:
            validate_stream_name(stream)
        except InvalidStreamName as exc:
            raise SourceError(f"{field}: {exc}") from None
    if spec.type is not None and not 1 <= len(spec.type) <= 256:
        raise SourceError("type must be 1-256 characters")
    return spec
