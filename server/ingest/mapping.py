"""From a verified, decoded request to an event: type, key, id and mapped fields (sans-I/O).

Paths are JSONPath as standardised in RFC 9535 (``$.order.id``,
``$.items[0].sku``, ``$['key with spaces']``, ``$.items[*].sku``), evaluated by
the ``python-jsonpath`` package in its strict
(RFC 9535) mode. A *singular* path (only names and indexes) yields one value
or nothing; any other path (wildcards, slices, filters, ``..``) yields the list
of every value it selects, and selecting nothing counts as missing.

A :class:`Mapper` is compiled once per source and applied per request:

* **type**: fixed, from a request header, or from a JSON path, with an
  optional prefix (``github.`` + ``X-GitHub-Event``) and a default used when
  the header or path is absent;
* **key**: a JSON path; absent means no key;
* **id**: the sender's delivery id, from a header (``X-GitHub-Delivery``,
  ``webhook-id``) or a JSON path (Stripe's ``$.id``); absent means a fresh id;
* **fields**: named JSON paths, each required or optional. A required path
  that selects nothing fails the request with :class:`MappingError`, which
  names the path; an optional one is left out of ``fields``.

Type, key and id must select a string or an integer (integers become their
decimal text); anything else is a :class:`MappingError`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import jsonpath

from eventlog.encoding import MAX_ID_LENGTH, MAX_KEY_LENGTH, MAX_TYPE_LENGTH
from eventlog.errors import InvalidInput
from server.ingest._headers import get_header

__all__ = ["FieldRule", "JsonPath", "Mapped", "Mapper", "MappingError", "PathSyntaxError", "Pick"]

_ENV = jsonpath.JSONPathEnvironment(strict=True)


class PathSyntaxError(InvalidInput):
    """A configured JSON path is not valid RFC 9535 JSONPath."""

    code = "invalid_json_path"


class MappingError(InvalidInput):
    """A request cannot be mapped to an event (HTTP 400).

    Attributes:
        path: The JSON path (``$.order.id``) or header (``header:X-GitHub-Event``)
            that failed.
        message: What was wrong with it.
    """

    code = "mapping_failed"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}", path=path)
        self.path = path
        self.message = message


@dataclass(frozen=True, slots=True)
class JsonPath:
    """A compiled RFC 9535 JSONPath.

    Attributes:
        text: The path as written.
        singular: True when it can select at most one value.
    """

    text: str
    singular: bool
    _compiled: jsonpath.JSONPath

    @classmethod
    def parse(cls, text: str) -> JsonPath:
        """Compile ``text``.

        Raises:
            PathSyntaxError: Not a valid RFC 9535 path (it must start with ``$``).
        """
        if not isinstance(text, str) or not text.startswith("$"):
            raise PathSyntaxError(f"{text!r} is not a JSONPath: it must start with '$'")
        try:
            compiled = _ENV.compile(text)
        except jsonpath.JSONPathError as exc:
            first = str(exc).splitlines()[0]
            raise PathSyntaxError(f"{text!r} is not a valid JSONPath: {first}") from exc
        if not isinstance(compiled, jsonpath.JSONPath):  # pragma: no cover - strict mode
            raise PathSyntaxError(f"{text!r}: compound paths are not supported")
        return cls(text=text, singular=compiled.singular_query(), _compiled=compiled)

    def find(self, doc: object) -> tuple[bool, object]:
        """Evaluate against a decoded JSON document: ``(found, value)``.

        A singular path gives its one value; any other path gives the list of
        every selected value (found only if non-empty).

        Raises:
            MappingError: The document is too deeply nested to evaluate.
        """
        if not isinstance(doc, dict | list):
            # Only "$" selects a scalar root; the library would re-parse a str root as JSON.
            return (True, doc) if self.text == "$" else (False, None)
        try:
            values = [match.obj for match in self._compiled.finditer(doc)]
        except (RecursionError, jsonpath.JSONPathError) as exc:
            first = (str(exc).splitlines() or [type(exc).__name__])[0]
            raise MappingError(self.text, f"cannot be evaluated: {first}") from exc
        if self.singular:
            return (True, values[0]) if values else (False, None)
        return bool(values), values

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True, slots=True)
class Pick:
    """Where one string of the event comes from: exactly one of the three.

    Attributes:
        fixed: A constant.
        header: A request header name (case-insensitive).
        path: A JSON path into the body.
    """

    fixed: str | None = None
    header: str | None = None
    path: JsonPath | None = None

    def __post_init__(self) -> None:
        if sum(x is not None for x in (self.fixed, self.header, self.path)) != 1:
            raise ValueError("give exactly one of fixed, header, path")

    @property
    def where(self) -> str:
        """How an error names this pick: the JSON path, or ``header:<name>``."""
        if self.path is not None:
            return self.path.text
        if self.header is not None:
            return f"header:{self.header}"
        return "fixed"

    def get(self, headers: Mapping[str, str], doc: object) -> object | None:
        """The picked value, or None when the header or path is absent."""
        if self.fixed is not None:
            return self.fixed
        if self.header is not None:
            return get_header(headers, self.header)
        assert self.path is not None
        found, value = self.path.find(doc)
        return value if found else None


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One mapped field: ``name`` takes the value at ``path``."""

    name: str
    path: JsonPath
    required: bool = True


@dataclass(frozen=True, slots=True)
class Mapped:
    """What a request maps to: the event's type, key and id, and the mapped fields."""

    type: str
    key: str | None
    id: str | None
    fields: dict[str, object]


def _text(value: object, where: str, what: str) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    kind = "null" if value is None else type(value).__name__
    raise MappingError(where, f"the {what} must be a string or an integer, got {kind}")


def _fitting(text: str, where: str, what: str, limit: int) -> str:
    """``text`` if the log takes it as the event's type, key or id; else the error names
    where it came from (the log's own would name a field of its batch, ``$[0].id``)."""
    if len(text) > limit:
        raise MappingError(where, f"the {what} is longer than {limit} characters")
    if "\x00" in text:
        raise MappingError(where, f"the {what} must not contain NUL characters")
    return text


@dataclass(frozen=True, slots=True)
class Mapper:
    """A source's compiled mapping from request to event.

    Attributes:
        type: Where the event type comes from.
        type_prefix: Put before the picked type (``"github."``).
        type_default: The type when the header or path is absent (else a 400).
        key: JSON path of the event key, if any.
        id: Where the sender's delivery id comes from, if anywhere.
        id_required: Fail when the id is absent (else a fresh id is used).
        fields: The mapped fields.
    """

    type: Pick
    type_prefix: str = ""
    type_default: str | None = None
    key: JsonPath | None = None
    id: Pick | None = None
    id_required: bool = False
    fields: Sequence[FieldRule] = ()

    def apply(self, headers: Mapping[str, str], doc: object) -> Mapped:
        """Map one request (headers and decoded body) to an event description.

        Raises:
            MappingError: The type is absent with no default, a required field
                or id is absent, or a type/key/id is not a string or integer.
        """
        raw_type = self.type.get(headers, doc)
        if raw_type is None or raw_type == "":
            if self.type_default is None:
                raise MappingError(self.type.where, "the event type is missing")
            event_type = self.type_default
        else:
            event_type = self.type_prefix + _text(raw_type, self.type.where, "event type")
            event_type = _fitting(event_type, self.type.where, "event type", MAX_TYPE_LENGTH)

        key: str | None = None
        if self.key is not None:
            found, value = self.key.find(doc)
            if found and value is not None:
                key = _fitting(
                    _text(value, self.key.text, "key"), self.key.text, "key", MAX_KEY_LENGTH
                )

        event_id: str | None = None
        if self.id is not None:
            value = self.id.get(headers, doc)
            if value is not None and value != "":
                event_id = _text(value, self.id.where, "delivery id")
                event_id = _fitting(event_id, self.id.where, "delivery id", MAX_ID_LENGTH)
            elif self.id_required:
                raise MappingError(self.id.where, "the delivery id is missing")

        fields: dict[str, object] = {}
        for rule in self.fields:
            found, value = rule.path.find(doc)
            if found:
                fields[rule.name] = value
            elif rule.required:
                raise MappingError(rule.path.text, f"required field {rule.name!r} is missing")
        return Mapped(type=event_type, key=key, id=event_id, fields=fields)
