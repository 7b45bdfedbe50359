"""``server.ingest`` re-exports its public surface, and only that."""

from __future__ import annotations

import server.ingest as ingest
from server.ingest import mapping, pipeline, sources, store, verify


def test_every_public_name_of_the_modules_is_exported_by_the_package() -> None:
    wanted = set()
    for module in (mapping, pipeline, sources, store):
        wanted |= set(module.__all__)
    wanted.add("SignatureError")
    missing = wanted - set(ingest.__all__)
    assert not missing, f"add to server/ingest/__init__.py: {sorted(missing)}"
    assert all(hasattr(ingest, name) for name in ingest.__all__)
    assert set(verify.__all__) >= {"verify_github", "verify_stripe", "verify_standard"}
