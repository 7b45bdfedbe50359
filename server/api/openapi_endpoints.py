"""OpenAPI path items of a family of delivery endpoints: ``/api/webhooks`` and
``/api/notifications`` share every per-endpoint route.

:func:`endpoint_paths` puts together one function per group of routes (the
collection, one endpoint, switching it, its deliveries, acting on one
delivery, replay, secret rotation); :class:`_Family` holds what they share.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from server.api.openapi_parts import AUTH, INT64_MAX, OBJECT, errors, json_body, param, ref

__all__ = ["endpoint_paths"]

_DELIVERY_PAGE = {
    "type": "object",
    "properties": {
        "deliveries": {"type": "array", "items": OBJECT},
        "next": {"type": ["integer", "null"]},
    },
}
_DELIVERY_ID = param("delivery_id", "path", "The delivery's id", {"type": "string"})


@dataclass(frozen=True)
class _Family:
    base: str
    noun: str

    @property
    def one(self) -> str:
        return self.base + "/{id}"

    @property
    def delivery(self) -> str:
        return self.one + "/deliveries/{delivery_id}"

    @property
    def ident(self) -> dict[str, Any]:
        return param("id", "path", f"The {self.noun}'s id", {"type": "string"})

    @property
    def view(self) -> dict[str, Any]:
        return {"description": f"The {self.noun}", "content": json_body(OBJECT)}

    @property
    def unknown(self) -> dict[int, str]:
        return {404: f"No {self.noun} has this id"}

    @property
    def unknown_delivery(self) -> dict[int, str]:
        return {404: f"No {self.noun} or delivery has this id"}

    @property
    def in_config(self) -> dict[int, str]:
        return {409: f"The {self.noun} is declared in the config file (change it there)"}

    def op(self, summary: str, params: list[dict[str, Any]], **more: Any) -> dict[str, Any]:
        return {"summary": summary, "parameters": params, **more}

    def delivery_op(
        self, summary: str, answer: tuple[str, str], refusals: dict[str, Any]
    ) -> dict[str, Any]:
        """An operation on one delivery (ids in the path) answering a JSON object."""
        status, description = answer
        ok = {status: {"description": description, "content": json_body(OBJECT)}}
        return self.op(summary, [self.ident, _DELIVERY_ID], responses={**ok, **refusals})


def _collection(f: _Family, spec: str) -> dict[str, Any]:
    invalid = {422: f"Not a valid {f.noun} (`path` names the field), or an unsafe target"}
    unavailable = {503: "Delivery is not running (the server is shutting down)"}
    exists = {409: "An endpoint with this id exists"}
    return {
        f.base: {
            "get": {
                "summary": f"Every {f.noun}, with delivery counts",
                "responses": {
                    "200": {"description": f"Every {f.noun}", "content": json_body(OBJECT)},
                    **errors(*AUTH, 503, say=unavailable),
                },
            },
            "post": {
                "summary": f"Create a {f.noun}",
                "requestBody": {"required": True, "content": json_body(ref(spec))},
                "responses": {
                    "201": f.view,
                    **errors(400, *AUTH, 409, 422, 503, say={**exists, **invalid, **unavailable}),
                },
            },
        }
    }


def _one(f: _Family, patch: str) -> dict[str, Any]:
    invalid = {422: f"Not a valid {f.noun} (`path` names the field), or an unsafe target"}
    refusals = {**f.unknown, **f.in_config, **invalid}
    return {
        f.one: {
            "get": f.op(
                f"One {f.noun}",
                [f.ident],
                responses={"200": f.view, **errors(*AUTH, 404, say=f.unknown)},
            ),
            "patch": f.op(
                f"Change fields of a {f.noun}",
                [f.ident],
                requestBody={"required": True, "content": json_body(ref(patch))},
                responses={
                    "200": f.view,
                    **errors(400, *AUTH, 404, 409, 422, say=refusals),
                },
            ),
            "delete": f.op(
                f"Delete a {f.noun} with its deliveries",
                [f.ident],
                responses={
                    "204": {"description": "Deleted"},
                    **errors(*AUTH, 404, 409, say={**f.unknown, **f.in_config}),
                },
            ),
        }
    }


def _switches(f: _Family) -> dict[str, Any]:
    switches = (("enable", "Switch delivery on"), ("disable", "Switch delivery off"))
    return {
        f.one + f"/{action}": {
            "post": f.op(
                summary,
                [f.ident],
                responses={"200": f.view, **errors(*AUTH, 404, say=f.unknown)},
            )
        }
        for action, summary in switches
    }


def _deliveries(f: _Family) -> dict[str, Any]:
    query = [
        param(
            "status",
            "query",
            "Only deliveries in this state",
            {"enum": ["pending", "in_flight", "delivered", "failed"]},
        ),
        param(
            "from",
            "query",
            "First ledger sequence number (the previous page's `next`)",
            {"type": "integer", "minimum": 0, "maximum": INT64_MAX},
        ),
        param(
            "limit",
            "query",
            "Most deliveries (1-1000, default 100)",
            {"type": "integer", "minimum": 1, "maximum": 1000},
        ),
    ]
    return {
        f.one + "/deliveries": {
            "get": f.op(
                "Deliveries in ledger order, a page at a time",
                [f.ident, *query],
                responses={
                    "200": {"description": "A page", "content": json_body(_DELIVERY_PAGE)},
                    **errors(400, *AUTH, 404, say=f.unknown),
                },
            )
        },
        f.delivery: {
            "get": f.delivery_op(
                "One delivery with every attempt (time, duration, status, error, snippet)",
                ("200", "The delivery"),
                errors(*AUTH, 404, say=f.unknown_delivery),
            )
        },
    }


def _delivery_actions(f: _Family) -> dict[str, Any]:
    in_flight = {409: "The delivery is in flight"}
    no_replay = {403: "The endpoint does not allow replay"}
    return {
        f.delivery + "/retry": {
            "post": f.delivery_op(
                "Send a delivery again with a fresh attempt budget",
                ("202", "Scheduled"),
                errors(*AUTH, 403, 404, 409, say={**no_replay, **in_flight, **f.unknown_delivery}),
            )
        },
        f.delivery + "/skip": {
            "post": f.delivery_op(
                "Give a delivery up (ends head-of-line blocking in the ordered modes)",
                ("200", "Skipped"),
                errors(*AUTH, 404, 409, say={**in_flight, **f.unknown_delivery}),
            )
        },
    }


def _replay(f: _Family) -> dict[str, Any]:
    return {
        f.one + "/replay": {
            "post": f.op(
                "Deliver [from, to) of the stream again, straight from the log (backfill)",
                [f.ident],
                requestBody={"required": True, "content": json_body(ref("ReplayRequest"))},
                responses={
                    "202": {"description": "Scheduled", "content": json_body(OBJECT)},
                    "200": {"description": "dry_run: counted only", "content": json_body(OBJECT)},
                    **errors(
                        400,
                        *AUTH,
                        403,
                        404,
                        422,
                        say={
                            400: "A bad or empty range (invalid_parameter, invalid_range)",
                            403: "The endpoint does not allow replay",
                            404: f"No {f.noun} has this id, or an offset outside the stream",
                        },
                    ),
                },
            )
        }
    }


def _rotate(f: _Family) -> dict[str, Any]:
    return {
        f.one + "/rotate-secret": {
            "post": f.op(
                "Add a new signing secret; the old ones keep signing for `grace` seconds",
                [f.ident],
                requestBody={"required": False, "content": json_body(ref("RotateRequest"))},
                responses={
                    "200": {
                        "description": f"The {f.noun}, with the new secret unless one was given",
                        "content": json_body(OBJECT),
                    },
                    **errors(
                        400,
                        *AUTH,
                        404,
                        422,
                        say={**f.unknown, 422: "Not a valid secret or grace (`path` says where)"},
                    ),
                },
            )
        }
    }


def endpoint_paths(base: str, noun: str, spec: str, patch: str, *, rotate: bool) -> dict[str, Any]:
    """The routes of one family of delivery endpoints under ``base``.

    ``spec`` and ``patch`` name the schemas of their create and change bodies;
    ``rotate`` adds secret rotation (webhooks sign, notifications do not).
    """
    f = _Family(base, noun)
    return {
        **_collection(f, spec),
        **_one(f, patch),
        **_switches(f),
        **_deliveries(f),
        **_delivery_actions(f),
        **_replay(f),
        **(_rotate(f) if rotate else {}),
    }
