"""API keys with scopes, sent as ``Authorization: Bearer <key>``.

Keys are configured as hashes (``sha256:<hex>`` of the key; ``eventlog keygen``
makes a key and its hash), never as plaintext. A key's scopes are:

* ``append:<stream glob>`` — append to matching streams,
* ``read:<stream glob>`` — read matching streams, their info, consumers on them,
* ``admin`` — everything (delete streams, seek consumers, manage webhooks).

A key may also name a ``tenant``: it then sees and names only that tenant's
streams, consumers and endpoints, and its globs match names as the tenant sees
them (:mod:`server.tenancy`).

With no keys configured, auth is off (and the server binds loopback only
unless ``--insecure``). Otherwise a request without a known key gets 401, a
known key without the scope gets 403.

Route modules call :func:`require` with the request or WebSocket::

    from server.auth import require
    require(websocket, "read", stream)   # raises Unauthorized (401) or Forbidden (403)

WebSocket clients that cannot set headers (browsers) may pass the key as the
``access_token`` query parameter instead.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Literal

from starlette.requests import HTTPConnection

from eventlog.errors import Forbidden, Unauthorized
from server.config import ApiKey, ConfigError

__all__ = ["Action", "Authenticator", "Grant", "hash_key", "new_key", "parse_scope", "require"]

Action = Literal["append", "read", "admin"]
_ACTIONS = ("append", "read")


def hash_key(key: str) -> str:
    """The config form of a key: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    """A new random API key (256 bits, URL-safe)."""
    return "el_" + secrets.token_urlsafe(32)


class Grant:
    """What one configured key may do (sans-I/O: tested without a server)."""

    def __init__(self, key: ApiKey) -> None:
        self.name = key.name
        #: The key's tenant (server/tenancy.py), None for a key without one.
        self.tenant = key.tenant
        self.admin = False
        self.globs: dict[str, list[str]] = {a: [] for a in _ACTIONS}
        for scope in key.scopes:
            action, glob = parse_scope(scope)
            if action == "admin":
                self.admin = True
            else:
                self.globs[action].append(glob)

    def allows(self, action: Action, stream: str | None = None) -> bool:
        """True if the key has ``action`` (on ``stream``, when given; on any stream otherwise)."""
        if self.admin:
            return True
        if action == "admin":
            return False
        globs = self.globs[action]
        if stream is None:
            return bool(globs)
        return any(fnmatchcase(stream, g) for g in globs)


def parse_scope(scope: str) -> tuple[Action, str]:
    """``"append:orders.*"`` → ``("append", "orders.*")``; ``"admin"`` → ``("admin", "*")``.

    Raises:
        ConfigError: Not one of the three scope forms.
    """
    if scope == "admin":
        return "admin", "*"
    action, sep, glob = scope.partition(":")
    if not sep or not glob or action not in _ACTIONS:
        raise ConfigError(
            f"invalid scope {scope!r}: use append:<stream glob>, read:<stream glob> or admin"
        )
    return ("append" if action == "append" else "read"), glob


class Authenticator:
    """Checks bearer keys against the configured hashes."""

    def __init__(self, keys: Iterable[ApiKey]) -> None:
        self._grants: dict[str, Grant] = {}
        for key in keys:
            algo, sep, digest = key.hash.partition(":")
            if algo != "sha256" or not sep or len(digest) != 64:
                raise ConfigError(f"API key {key.name!r}: hash must be sha256:<64 hex digits>")
            self._grants[digest.lower()] = Grant(key)

    @property
    def enabled(self) -> bool:
        """True when at least one key is configured."""
        return bool(self._grants)

    def grant_for(self, token: str) -> Grant | None:
        """The grant of a presented key, or None if unknown."""
        digest = hashlib.sha256(token.encode()).hexdigest()
        for known, grant in self._grants.items():
            if hmac.compare_digest(known, digest):
                return grant
        return None

    def check(self, token: str | None, action: Action, stream: str | None = None) -> Grant | None:
        """Authorize one operation. Returns the grant (None when auth is off).

        Raises:
            Unauthorized: Without a known key (401).
            Forbidden: The key lacks the scope (403).
        """
        if not self._grants:
            return None
        if not token:
            raise Unauthorized("an API key is required (Authorization: Bearer)")
        grant = self.grant_for(token)
        if grant is None:
            raise Unauthorized("unknown API key")
        if not grant.allows(action, stream):
            if action == "admin":
                what = "do admin operations"
            else:
                what = f"{action} {'to' if action == 'append' else 'from'} " + (
                    f"stream {stream!r}" if stream else "any stream"
                )
            raise Forbidden(f"API key {grant.name!r} may not {what}")
        return grant


def token_of(conn: HTTPConnection) -> str | None:
    """The bearer token of a request (or a WebSocket's ``access_token`` parameter)."""
    header = conn.headers.get("authorization")
    if header:
        scheme, _, token = header.partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None
    if conn.scope["type"] == "websocket":
        return conn.query_params.get("access_token")
    return None


def require(conn: HTTPConnection, action: Action, stream: str | None = None) -> Grant | None:
    """Check that the request or WebSocket may do ``action`` (on ``stream``).

    Returns the key's grant, or None when auth is off.

    Raises:
        Unauthorized: No or an unknown key (401; a WebSocket closes with 4401).
        Forbidden: The key lacks the scope (403; 4403).
    """
    auth: Authenticator = conn.app.state.auth
    if not auth.enabled:
        return None
    return auth.check(token_of(conn), action, stream)
