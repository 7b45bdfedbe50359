"""The OpenAPI document of the HTTP API and the ``/docs`` page rendered from it."""

from __future__ import annotations

import html
from functools import cache
from typing import Any

__all__ = ["docs_html", "openapi_document"]


@cache
def openapi_document() -> dict[str, Any]:
    """The OpenAPI 3.1 description of the API (built once)."""
    return {"openapi": "3.1.0", "info": {"title": "eventlog", "version": "0.1.0"}, "paths": {}}


@cache
def docs_html() -> str:
    """A self-contained HTML page listing every operation of :func:`openapi_document`."""
    doc = openapi_document()
    rows = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            rows.append(
                f"<h3><code>{method.upper()} {html.escape(path)}</code></h3>"
                f"<p>{html.escape(op.get('summary', ''))}</p>"
            )
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>eventlog API</title></head>"
        "<body><h1>eventlog HTTP API</h1>" + "".join(rows) + "</body></html>"
    )
