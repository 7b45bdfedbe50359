"""The pieces OpenAPI path items are made of: references, bodies, errors, parameters."""

from __future__ import annotations

from typing import Any

__all__ = ["AUTH", "INT64_MAX", "NAME", "OBJECT", "STREAM", "errors", "json_body", "param", "ref"]

#: Any JSON object.
OBJECT: dict[str, Any] = {"type": "object"}

#: The largest integer a query parameter takes (the server refuses larger ones).
INT64_MAX = 2**63 - 1


def ref(name: str) -> dict[str, str]:
    """A reference to a component schema."""
    return {"$ref": f"#/components/schemas/{name}"}


def json_body(schema: dict[str, Any]) -> dict[str, Any]:
    """A JSON ``content`` map with ``schema``."""
    return {"application/json": {"schema": schema}}


def errors(*statuses: int, say: dict[int, str] | None = None) -> dict[str, Any]:
    """Error responses for ``statuses``: the generic meaning, or the one in ``say``."""
    meaning = {
        400: "Malformed request: bad JSON, path or query parameter (or one given twice)",
        401: "No API key, or an unknown one",
        403: "The API key lacks the scope",
        404: "No such stream, consumer or route",
        408: "The request body did not arrive in time",
        409: "Conflict with the current state",
        413: "Body over the server's limit, or an event over the log's limit",
        415: "Unsupported Content-Type",
        416: "Offset before the first retained event",
        422: "Well-formed JSON with an invalid value (`path` says where)",
        503: "The log is closed or the server is shutting down",
        **(say or {}),
    }
    return {
        str(s): {"description": meaning[s], "content": json_body(ref("Error"))} for s in statuses
    }


def param(name: str, where: str, description: str, schema: dict[str, Any]) -> dict[str, Any]:
    """A parameter (required when it is in the path)."""
    return {
        "name": name,
        "in": where,
        "required": where == "path",
        "description": description,
        "schema": schema,
    }


STREAM = param(
    "stream",
    "path",
    "1-128 characters of [A-Za-z0-9._-], starting with a letter or digit",
    {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"},
)
NAME = param("name", "path", "Consumer name (same rules as stream names)", STREAM["schema"])
AUTH = [401, 403]
