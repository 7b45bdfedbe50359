"""The baseline of the HTTP benchmark: a bare Starlette endpoint that only decodes
the JSON body with msgspec and answers 201, on the same uvicorn settings as
``eventlog serve`` (uvloop, httptools, one worker, no access log).

Run: ``python -m bench.http_bare PORT [--tuned]``; ``--tuned`` gives the process
the garbage-collector and GIL settings ``eventlog serve`` applies to itself, so
that a comparison can show what those settings alone are worth.
"""

from __future__ import annotations

import gc
import sys

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_decoder = msgspec.json.Decoder()


async def append(request: Request) -> Response:
    """Decode the body, answer a fixed 201."""
    _decoder.decode(await request.body())
    return Response(b'{"offsets":[0]}', status_code=201, media_type="application/json")


app = Starlette(routes=[Route("/api/streams/{stream}/events", append, methods=["POST"])])
app.add_route("/healthz", lambda r: Response(b"ok"), methods=["GET"])


if __name__ == "__main__":
    from bench.common import serve_on_argv_port

    if "--tuned" in sys.argv:
        from server.serve import GC_THRESHOLDS, GIL_SWITCH_INTERVAL

        gc.collect()
        gc.freeze()
        gc.set_threshold(*GC_THRESHOLDS)
        sys.setswitchinterval(GIL_SWITCH_INTERVAL)
    serve_on_argv_port(app)
