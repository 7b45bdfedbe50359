"""msgspec validation errors that name what a field accepts (pure).

msgspec says ``Invalid enum value 'weird' - at `$.retry``` for a value outside a
``Literal`` or ``Enum``, and ``Expected `str | object`, got `int``` for a value
of none of a union's types: true, but a user cannot tell from it what to send.
:func:`explained` finds the field's type by the error's JSON path in the type
that was decoded and says what it accepts:

    Invalid enum value 'weird': expected "default", "short" or an object with
    the fields schedule, max_attempts, jitter, max_retry_after, max_rate_limited
    - at `$.retry`

Only those two kinds of error at a field whose type holds a ``Literal``, an
``Enum`` or a tagged union's tag are rewritten (``Invalid value 'weird': expected
...``, ``Invalid value of type `int`: expected ...``); every other message, and the
`` - at `path``` suffix the error answers read the path from, stay as msgspec
wrote them. :func:`decode` is a JSON decode whose errors are explained.

A caller may also name top-level fields a body must not carry and say why
(``refused``): msgspec's ``Object contains unknown field `secret``` then goes
on with that reason, at the field's own path::

    Object contains unknown field `secret`: the secret is changed with
    POST /api/webhooks/{id}/rotate-secret ... - at `$.secret`
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec
import msgspec.inspect as mi

__all__ = ["accepted", "decode", "explained"]

_STEP = re.compile(r"\.([^.\[]+)|\[([^\]]*)\]")
_PATH = re.compile(r" - at `(\$[^`]*)`$")
_ENUM = re.compile(r"Invalid (?:enum )?value (.+)")
_EXPECTED = re.compile(r"Expected `[^`]+`, got (`[^`]+`)")
_UNKNOWN = re.compile(r"Object contains unknown field `([^`]+)`")


def decode(body: bytes | str, type_: Any, *, refused: Mapping[str, str] | None = None) -> Any:
    """``body`` decoded as JSON into ``type_``; a validation error is :func:`explained`
    (``refused``: top-level fields the body must not carry, and why)."""
    try:
        return msgspec.json.decode(body, type=type_)
    except msgspec.ValidationError as exc:
        raise msgspec.ValidationError(explained(exc, type_, refused=refused)) from None


def explained(
    exc: msgspec.ValidationError, type_: Any, *, refused: Mapping[str, str] | None = None
) -> str:
    """``exc``'s message, naming the accepted values when it is about a choice
    (``Invalid enum value``, or a value of none of a union's types) of ``type_``,
    or saying why a top-level field named in ``refused`` is not accepted."""
    text = str(exc)
    at = _PATH.search(text)
    path = at.group(1) if at else "$"
    head = text[: at.start()] if at else text
    unknown = _UNKNOWN.fullmatch(head)
    if unknown is not None and path == "$" and refused and unknown.group(1) in refused:
        name = unknown.group(1)
        return f"{head}: {refused[name]} - at `$.{name}`"
    enum = _ENUM.fullmatch(head)
    expected = _EXPECTED.fullmatch(head)
    if enum is None and expected is None:
        return text
    field = _type_at(mi.type_info(type_), path)
    choices = accepted(field) if field is not None and _is_choice(field) else None
    if choices is None:
        return text
    suffix = text[at.start() :] if at else ""
    if enum is not None:
        return f"Invalid value {enum.group(1)}: expected {choices}{suffix}"
    assert expected is not None
    return f"Invalid value of type {expected.group(1)}: expected {choices}{suffix}"


def accepted(t: mi.Type) -> str:
    """What a value of ``t`` may be, in words: ``"a", "b" or an object with the fields x, y``."""
    parts: list[str] = []
    for member in _members(t):
        if isinstance(member, mi.LiteralType):
            parts += [_json(v) for v in member.values]
        elif isinstance(member, mi.EnumType):
            parts += [_json(m.value) for m in member.cls]
        elif isinstance(member, mi.StructType | mi.TypedDictType | mi.DataclassType):
            names = ", ".join(f.encode_name for f in member.fields)
            parts.append(f"an object with the fields {names}")
        else:
            parts.append(_NAMES.get(type(member), f"`{type(member).__name__}`"))
    return parts[0] if len(parts) == 1 else f"{', '.join(parts[:-1])} or {parts[-1]}"


_NAMES: dict[type[mi.Type], str] = {
    mi.NoneType: "null",
    mi.BoolType: "true or false",
    mi.IntType: "an integer",
    mi.FloatType: "a number",
    mi.StrType: "a string",
    mi.ListType: "an array",
    mi.VarTupleType: "an array",
    mi.TupleType: "an array",
    mi.DictType: "an object",
    mi.DateTimeType: "an RFC 3339 time",
}


def _json(value: object) -> str:
    return msgspec.json.encode(value).decode()


def _members(t: mi.Type) -> list[mi.Type]:
    while isinstance(t, mi.Metadata):
        t = t.type
    if isinstance(t, mi.UnionType):
        return [m for u in t.types for m in _members(u)]
    return [t]


def _is_choice(t: mi.Type) -> bool:
    return any(isinstance(m, mi.LiteralType | mi.EnumType) for m in _members(t))


def _type_at(t: mi.Type, path: str) -> mi.Type | None:
    """The type of the value at ``path`` (``$.a[0].b``) in a document of type ``t``."""
    for step in _STEP.finditer(path[1:]):
        name, index = step.groups()
        found = [f for m in _members(t) if (f := _step(m, name, index)) is not None]
        if not found:
            return None
        if all(isinstance(f, mi.LiteralType) for f in found):  # a tagged union's kinds
            values = dict.fromkeys(v for f in found for v in f.values)  # type: ignore[attr-defined]
            t = mi.LiteralType(values=tuple(values))
        else:
            t = found[0]
    return t


def _step(t: mi.Type, name: str | None, index: str | None) -> mi.Type | None:
    if name is not None:
        if isinstance(t, mi.StructType) and t.tag_field == name and t.tag is not None:
            return mi.LiteralType(values=(t.tag,))  # one kind of a tagged union
        if isinstance(t, mi.StructType | mi.TypedDictType | mi.DataclassType):
            for f in t.fields:
                if f.encode_name == name:
                    return f.type
        return None
    if isinstance(t, mi.ListType | mi.VarTupleType | mi.SetType | mi.FrozenSetType):
        return t.item_type
    if isinstance(t, mi.TupleType) and index is not None and index.isdigit():
        return t.item_types[int(index)] if int(index) < len(t.item_types) else None
    if isinstance(t, mi.DictType):
        return t.value_type
    return None
