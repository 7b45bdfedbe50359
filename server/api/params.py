"""Query parameter parsing (sans-I/O): offsets, limits, waits. Bad values are 400s.

One rule for every route: a query parameter given twice is refused (400
``invalid_parameter`` naming it) rather than one of the values picked, so a
client never gets an answer to a question it did not mean
(:func:`refuse_repeats`, applied to every request by the server's middleware).
For the same reason the append, read and firehose routes refuse a parameter they
do not take (:func:`refuse_unknown`): ``?expected_ofset=3`` must not append unchecked.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from urllib.parse import parse_qsl

from eventlog.errors import InvalidParameter
from eventlog.model import StreamName

__all__ = [
    "StreamName",
    "non_negative_int",
    "optional_non_negative_int",
    "refuse_repeats",
    "refuse_unknown",
    "wait_seconds",
]

_MAX_INT = 2**63 - 1

# ``StreamName`` (from eventlog.model) types a stream, consumer or ingest source
# name in a request body. A name in a tenant's namespace (``acme~orders``)
# decodes too, and is refused by the request's tenant scope unless its key sees
# every tenant (:mod:`server.tenancy`).


def non_negative_int(
    params: Mapping[str, str],
    name: str,
    default: int,
    *,
    minimum: int = 0,
    maximum: int = _MAX_INT,
) -> int:
    """``params[name]`` as an integer in ``minimum..maximum`` (``default`` when absent).

    Raises:
        InvalidParameter: 400 for anything but decimal digits in range.
    """
    value = optional_non_negative_int(params, name, minimum=minimum, maximum=maximum)
    return default if value is None else value


def optional_non_negative_int(
    params: Mapping[str, str], name: str, *, minimum: int = 0, maximum: int = _MAX_INT
) -> int | None:
    """Like :func:`non_negative_int`, None when absent."""
    text = params.get(name)
    if text is None:
        return None
    if (
        not text.isascii()
        or not text.isdigit()
        or len(text) > 19
        or not minimum <= int(text) <= maximum
    ):
        raise InvalidParameter(
            f"query parameter {name!r} must be an integer from {minimum} to {maximum}, "
            f"got {text[:40]!r}"
        )
    return int(text)


def wait_seconds(params: Mapping[str, str], maximum: float) -> float:
    """The ``wait`` parameter in seconds (0 when absent), capped at ``maximum``.

    Raises:
        InvalidParameter: 400 for a negative, non-numeric or non-finite value.
    """
    text = params.get("wait")
    if text is None or text == "":
        return 0.0
    try:
        value = float(text.removesuffix("s")) if text.isascii() else math.nan
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value < 0:
        raise InvalidParameter(
            f"query parameter 'wait' must be a number of seconds >= 0, got {text[:40]!r}"
        )
    return min(value, maximum)


def refuse_repeats(query_string: bytes) -> None:
    """Refuse a query string that gives any parameter more than once.

    Raises:
        InvalidParameter: 400, naming the first repeated parameter.
    """
    if b"&" not in query_string:
        return  # one parameter at most: the common case, no parsing
    seen: set[str] = set()
    for name, _ in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name in seen:
            raise InvalidParameter(f"query parameter {name[:40]!r} given twice")
        seen.add(name)


def refuse_unknown(params: Mapping[str, str], known: tuple[str, ...]) -> None:
    """Refuse a query parameter that is not one of ``known``.

    Raises:
        InvalidParameter: 400, naming the first unknown parameter and the known ones.
    """
    for name in params:
        if name not in known:
            raise InvalidParameter(
                f"unknown query parameter {name[:40]!r}: this route takes {', '.join(known)}"
            )
