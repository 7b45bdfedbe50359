"""Tenants: the one scoping step every route takes (docs/tenants.md).

An API key may belong to a tenant (``tenant = "acme"`` in its ``[[api_keys]]``
entry). Everything such a key names (streams, consumers, webhook endpoints,
notification targets, ingest and file sources, schedules) is stored in the
tenant's namespace: the user's ``orders`` is stored as ``acme~orders``
(:data:`eventlog.model.NAMESPACE_SEPARATOR`; names given over the API never
contain ``~``, so two tenants' ``orders`` never collide). Names derived from a
stored name keep its namespace: tenant ``acme``'s webhook ``hook`` reads as
consumer ``webhook.acme~hook`` and parks in ``acme~c1.parked``.

Who sees what:

=============================  ======================  ==========================
key                            names it gives          names it sees
=============================  ======================  ==========================
tenant key (``tenant = t``)    ``orders`` → ``t~orders``  only ``t~…``, shown as ``…``
key without a tenant           as given (no ``~``)     only names without a namespace
admin key without a tenant     as stored (``t~orders``)   everything, as stored
no keys configured (auth off)  as stored               everything, as stored
=============================  ======================  ==========================

Every route calls :func:`scope_of` once and maps through the scope it gets::

    scope = scope_of(request)
    stream = scope.name(request.path_params["stream"])   # validated, stored name
    require(request, "read", scope.shown(stream))        # globs match what the key sees
    infos = [i for i in infos if scope.visible(i.name)]  # listings
    events = scope.events(events)                        # Event.stream as the key sees it
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec
from starlette.requests import HTTPConnection

from consumers.parking import shown_headers
from eventlog.errors import InvalidStreamName, Unauthorized
from eventlog.model import NAMESPACE_SEPARATOR, Event, validate_stream_name
from eventlog.model import split_namespace as namespace_of
from server.auth import Action, Authenticator, Grant, require, token_of

__all__ = [
    "ALL",
    "TENANT_NAME",
    "TenantScope",
    "authorize",
    "namespace_of",
    "scope_for",
    "scope_of",
]

SEP = NAMESPACE_SEPARATOR

#: Metric labels whose values name something a tenant owns (``/metrics``).
NAME_LABELS = frozenset({"stream", "consumer", "source", "endpoint", "target", "name"})
_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')

#: A tenant's name (it becomes a namespace prefix, so it has no ``.`` or ``~``).
#: In a firehose frame, the mark of a parked copy (see :meth:`TenantScope.frame`).
_PARKED_NAME = '"parked-stream":"'
_frame_decoder = msgspec.json.Decoder(Event)
_frame_encoder = msgspec.json.Encoder()

TENANT_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,31}")


@dataclass(frozen=True, slots=True)
class TenantScope:
    """What one request's key names and sees (sans-I/O: tested without a server).

    Attributes:
        tenant: The key's tenant; None for keys without one (and without auth).
        sees_all: Names are stored names and every namespace is visible
            (an admin key without a tenant, or a server without keys).
    """

    tenant: str | None
    sees_all: bool = False

    def name(self, given: str) -> str:
        """The stored name of a name the key gives (a stream, a consumer, an id).

        Raises:
            InvalidStreamName: Not a valid name for this key (400); a key that
                does not see every namespace may not give a ``~``.
        """
        validate_stream_name(given)
        if self.sees_all:
            return given
        if SEP in given:
            raise InvalidStreamName(
                f"invalid name {given!r}: use 1-128 characters of [A-Za-z0-9._-], "
                "starting with a letter or digit"
            )
        return given if self.tenant is None else f"{self.tenant}{SEP}{given}"

    def stored(self, given: str) -> str:
        """Like :meth:`name` for a name already validated by its own rule (a webhook id)."""
        if self.sees_all or self.tenant is None:
            return given
        return f"{self.tenant}{SEP}{given}"

    def visible(self, stored: str) -> bool:
        """True if the key sees the stored name (filters listings)."""
        if self.sees_all:
            return True
        if SEP not in stored:
            return self.tenant is None
        return namespace_of(stored)[0] == self.tenant and self.tenant is not None

    def shown(self, stored: str) -> str:
        """A stored name as the key sees it (call on visible names)."""
        if self.sees_all or self.tenant is None:
            return stored
        return namespace_of(stored)[1]

    def event(self, event: Event) -> Event:
        """The event with its stream, and the names a parked copy's headers give
        (:func:`~consumers.parking.shown_headers`), as the key sees them."""
        if self.sees_all or self.tenant is None:
            return event
        return msgspec.structs.replace(
            event,
            stream=self.shown(event.stream),
            headers=shown_headers(event.headers, self.tenant),
        )

    def events(self, events: Sequence[Event]) -> list[Event]:
        """:meth:`event` over a page."""
        if self.sees_all or self.tenant is None:
            return list(events)
        return [self.event(e) for e in events]

    def metrics(self, text: str) -> str:
        """Prometheus text with only the series whose names the key sees, shown its way.

        A sample with a name label (:data:`NAME_LABELS`: stream, consumer,
        source, endpoint) is kept when every such name is visible; samples
        without one (requests by route, the process) are the server's and kept.
        """
        if self.sees_all:
            return text
        kept = []
        for line in text.splitlines():
            if line.startswith("#") or "{" not in line:
                kept.append(line)
                continue
            hidden = False

            def show(match: re.Match[str]) -> str:
                nonlocal hidden
                key, value = match.group(1), match.group(2)
                if key not in NAME_LABELS:
                    return match.group(0)
                if not self.visible(value):
                    hidden = True
                    return match.group(0)
                return f'{key}="{self.shown(value)}"'

            shown = _LABEL.sub(show, line)
            if not hidden:
                kept.append(shown)
        return "\n".join(kept) + "\n"

    def frame(self, text: str) -> str:
        """An encoded event (a firehose frame) with its stream as the key sees it."""
        if self.sees_all or self.tenant is None:
            return text
        if _PARKED_NAME in text:  # a parked copy (rare): its headers name streams too
            return _frame_encoder.encode(self.event(_frame_decoder.decode(text))).decode()
        return text.replace(f'{{"stream":"{self.tenant}{SEP}', '{"stream":"', 1)


#: The scope of admin keys without a tenant and of a server without keys.
ALL = TenantScope(None, sees_all=True)
_DEFAULT = TenantScope(None)


def scope_for(grant: Grant | None) -> TenantScope:
    """The scope of a key's grant (None: auth is off)."""
    if grant is None:
        return ALL
    if grant.tenant is not None:
        return TenantScope(grant.tenant)
    return ALL if grant.admin else _DEFAULT


def scope_of(conn: HTTPConnection, *, anonymous: bool = False) -> TenantScope:
    """The tenant scope of a request or WebSocket (its key's), worked out once per request.

    Args:
        conn: The request or WebSocket.
        anonymous: Accept a request without a key (``/metrics``): it sees the
            names without a namespace.

    Raises:
        Unauthorized: With keys configured, no or an unknown key (401), unless
            ``anonymous`` and no key was given.
    """
    state = conn.scope.setdefault("state", {})
    cached: TenantScope | None = state.get("tenant_scope")
    if cached is not None:
        return cached
    auth: Authenticator = conn.app.state.auth
    if not auth.enabled:
        scope = ALL
    else:
        token = token_of(conn)
        if not token and anonymous:
            scope = _DEFAULT
        elif not token:
            raise Unauthorized("an API key is required (Authorization: Bearer)")
        else:
            grant = auth.grant_for(token)
            if grant is None:
                raise Unauthorized("unknown API key")
            scope = scope_for(grant)
    state["tenant_scope"] = scope
    return scope


def authorize(conn: HTTPConnection, action: Action, given: str) -> str:
    """Validate, scope and authorize one name the request gives: its stored name.

    The key's globs match the name as the key gives it (a tenant's ``orders``
    matches ``read:orders*``). ``admin`` needs the admin scope.

    Raises:
        InvalidStreamName: A bad name (400), checked before the key.
        Unauthorized: No or an unknown key (401).
        Forbidden: The key may not (403).
    """
    validate_stream_name(given)
    stored = scope_of(conn).name(given)
    require(conn, action, None if action == "admin" else given)
    return stored
