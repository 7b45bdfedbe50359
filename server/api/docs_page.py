"""The ``/docs`` page: every operation of the OpenAPI document as one HTML page.

The document's texts are written in inline Markdown (`code`, **strong**);
the page renders that, and escapes everything else.
"""

from __future__ import annotations

import html
import re
from functools import cache

from server.api.openapi import openapi_document

__all__ = ["docs_html", "inline_markdown"]

_CODE = re.compile(r"`([^`]+)`")
_STRONG = re.compile(r"\*\*([^*]+)\*\*")


def inline_markdown(text: str) -> str:
    """HTML of the inline Markdown the document's texts use: `code` and **strong**."""
    out = html.escape(text, quote=False)
    out = _CODE.sub(r"<code>\1</code>", out)
    return _STRONG.sub(r"<strong>\1</strong>", out)


@cache
def docs_html(max_read_limit: int = 10_000) -> str:
    """A self-contained HTML page listing every operation of :func:`openapi_document`."""
    doc = openapi_document(max_read_limit)
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>eventlog HTTP API</title>",
        "<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;",
        "padding:0 1rem;line-height:1.45}code{background:#f3f3f3;padding:0 .2em}",
        "h3{margin-bottom:.2rem}.m{font-weight:bold;color:#05a}td{padding:.1rem .6rem;",
        "vertical-align:top}</style></head><body>",
        "<h1>eventlog HTTP API</h1>",
        f"<p>{inline_markdown(doc['info']['description'])} Machine-readable: ",
        "<a href='/openapi.json'>/openapi.json</a>.</p>",
    ]
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            parts.append(
                f"<h3><span class='m'>{method.upper()}</span> <code>{html.escape(path)}</code></h3>"
            )
            parts.append(f"<p>{inline_markdown(op.get('summary', ''))}</p>")
            if "description" in op:
                parts.append(f"<p>{inline_markdown(op['description'])}</p>")
            params = op.get("parameters", [])
            if params:
                parts.append("<table>")
                for p in params:
                    parts.append(
                        f"<tr><td><code>{html.escape(p['name'])}</code></td>"
                        f"<td>{p['in']}</td><td>{inline_markdown(p['description'])}</td></tr>"
                    )
                parts.append("</table>")
            parts.append("<ul>")
            parts.extend(
                f"<li><code>{code}</code> {inline_markdown(r['description'])}</li>"
                for code, r in op["responses"].items()
            )
            parts.append("</ul>")
    parts.append("</body></html>")
    return "".join(parts)
