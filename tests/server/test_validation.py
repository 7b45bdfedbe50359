"""server/validation.py: a choice's validation error names what it accepts (pure)."""

from __future__ import annotations

import enum
from typing import Annotated, Any, Literal

import msgspec
import pytest

from server.validation import decode


class Color(enum.Enum):
    RED = "red"
    BLUE = "blue"


class Inner(msgspec.Struct, forbid_unknown_fields=True):
    level: Annotated[Literal["low", "high"], msgspec.Meta(description="how much")] = "low"


class Doc(msgspec.Struct, forbid_unknown_fields=True):
    mode: Literal["a", "b"] = "a"
    color: Color = Color.RED
    maybe: Literal[1, 2] | None = None
    items: list[Inner] = []
    by_name: dict[str, Inner] = {}
    pair: tuple[int, Literal["x", "y"]] = (0, "x")
    count: int = 0


def _message(body: bytes, type_: Any = Doc) -> str:
    with pytest.raises(msgspec.ValidationError) as exc:
        decode(body, type_)
    return str(exc.value)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"mode": "c"}', 'Invalid value \'c\': expected "a" or "b" - at `$.mode`'),
        (b'{"mode": 3}', 'Invalid value of type `int`: expected "a" or "b" - at `$.mode`'),
        (b'{"color": "green"}', 'Invalid value \'green\': expected "red" or "blue" - at `$.color`'),
        (b'{"maybe": 3}', "Invalid value 3: expected 1, 2 or null - at `$.maybe`"),
        (
            b'{"items": [{}, {"level": "mid"}]}',
            'Invalid value \'mid\': expected "high" or "low" - at `$.items[1].level`',
        ),
        (
            b'{"by_name": {"k": {"level": "mid"}}}',
            'Invalid value \'mid\': expected "high" or "low" - at `$.by_name[...].level`',
        ),
        (b'{"pair": [1, "z"]}', 'Invalid value \'z\': expected "x" or "y" - at `$.pair[1]`'),
        # Not about a choice: msgspec's words stay.
        (b'{"count": "many"}', "Expected `int`, got `str` - at `$.count`"),
        (b'{"other": 1}', "Object contains unknown field `other`"),
    ],
)
def test_a_bad_choice_names_the_accepted_values(body: bytes, message: str) -> None:
    assert _message(body) == message


def test_the_document_itself_as_a_choice() -> None:
    assert _message(b'"c"', Literal["a", "b"]) == 'Invalid value \'c\': expected "a" or "b"'
