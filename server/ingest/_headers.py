"""Case-insensitive header lookup over any mapping (plain dicts in tests, Starlette ``Headers``)."""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["get_header"]


def get_header(headers: Mapping[str, str], name: str) -> str | None:
    """The value of header ``name`` (any case), or None."""
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    if value is None:
        lower = name.lower()
        value = next((v for k, v in headers.items() if k.lower() == lower), None)
    return value
