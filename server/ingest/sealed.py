"""A :class:`~server.ingest.store.SourceStore` whose definitions are sealed at rest.

An ingest source's definition holds the secret that verifies its senders'
signatures; with a secrets key (:class:`~eventlog.sealed.SecretBox`)
it is stored sealed and opened on read. Without a key it is the store itself.
"""

from __future__ import annotations

from eventlog.sealed import SecretBox
from server.ingest.store import SourceStore

__all__ = ["SealedSourceStore"]


class SealedSourceStore:
    """Wraps a :class:`SourceStore`: :meth:`put` seals, :meth:`get` and :meth:`all` open."""

    def __init__(self, store: SourceStore, secrets: SecretBox) -> None:
        self._store = store
        self._secrets = secrets

    def _open(self, name: str, spec: bytes) -> bytes:
        return self._secrets.open(spec, f"ingest source {name!r}")

    async def get(self, name: str) -> bytes | None:
        spec = await self._store.get(name)
        return None if spec is None else self._open(name, spec)

    async def all(self) -> list[tuple[str, bytes]]:
        return [(name, self._open(name, spec)) for name, spec in await self._store.all()]

    async def put(self, name: str, spec: bytes) -> bool:
        return await self._store.put(name, self._secrets.seal(spec))

    async def delete(self, name: str) -> bool:
        return await self._store.delete(name)
