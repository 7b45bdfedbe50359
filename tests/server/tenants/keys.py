"""Two tenants, an admin and a key without a tenant, for the tenant tests.

:func:`tenant_config` writes the config file; :func:`client` opens an httpx
client with one of the keys. Tenants ``acme`` and ``globex`` use the same
stream, consumer and endpoint names on purpose.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import httpx

from server.auth import hash_key
from tests.support import scaled

#: name -> (key, scopes, tenant)
KEYS: dict[str, tuple[str, list[str], str | None]] = {
    "root": ("k-root", ["admin"], None),
    "acme": ("k-acme", ["admin"], "acme"),
    "acme-ro": ("k-acme-ro", ["read:*"], "acme"),
    "globex": ("k-globex", ["admin"], "globex"),
    "plain": ("k-plain", ["read:*", "append:*"], None),
}


def tenant_config(root: Path, extra: str = "") -> Path:
    """A config file holding :data:`KEYS` (as hashes), then ``extra`` TOML."""
    lines = []
    for name, (key, scopes, tenant) in KEYS.items():
        quoted = ", ".join(f'"{s}"' for s in scopes)
        lines += ["[[api_keys]]", f'name = "{name}"', f'hash = "{hash_key(key)}"']
        lines += [f"scopes = [{quoted}]"]
        if tenant is not None:
            lines.append(f'tenant = "{tenant}"')
        lines.append("")
    path = root / "eventlog.toml"
    path.write_text("\n".join(lines) + "\n" + extra)
    return path


def headers(who: str) -> dict[str, str]:
    """The Authorization header of one of :data:`KEYS`."""
    return {"Authorization": f"Bearer {KEYS[who][0]}"}


def client(url: str, who: str) -> httpx.Client:
    """An httpx client on ``url`` with ``who``'s key."""
    return httpx.Client(base_url=url, headers=headers(who), timeout=scaled(10))


@contextlib.contextmanager
def clients(url: str, *who: str) -> Iterator[tuple[httpx.Client, ...]]:
    """A :func:`client` per name in ``who``, in that order, closed on the way out."""
    with contextlib.ExitStack() as stack:
        yield tuple(stack.enter_context(client(url, name)) for name in who)
