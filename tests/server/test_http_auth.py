"""API keys and scopes against a real server: 401 without a known key, 403 without the scope."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from server.auth import hash_key
from tests.server.cli.conftest import eventlog
from tests.serverproc import ServerProcess
from tests.serverthread import ServerThread

KEYS = {
    "admin": ("k-admin-secret", ["admin"]),
    "writer": ("k-writer-secret", ["append:orders.*"]),
    "reader": ("k-reader-secret", ["read:orders.*", "read:audit"]),
}


@pytest.fixture(scope="module")
def auth_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """A server whose config file holds three keys (as hashes only)."""
    root = tmp_path_factory.mktemp("auth")
    lines = []
    for name, (key, scopes) in KEYS.items():
        quoted = ", ".join(f'"{s}"' for s in scopes)
        lines += ["[[api_keys]]", f'name = "{name}"', f'hash = "{hash_key(key)}"']
        lines += [f"scopes = [{quoted}]", ""]
    config = root / "eventlog.toml"
    config.write_text("\n".join(lines))
    with ServerThread.start(db=root / "e.db", config=config) as s:
        yield s


def _client(server: ServerThread, who: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {KEYS[who][0]}"} if who else {}
    return httpx.Client(base_url=server.url, headers=headers)


def test_key_is_not_stored_in_plaintext(auth_server: ServerThread) -> None:
    assert "k-admin-secret" not in auth_server.output()
    assert hash_key("k-admin-secret").startswith("sha256:")


def test_no_key_or_unknown_key_is_401(auth_server: ServerThread) -> None:
    with _client(auth_server, None) as c:
        r = c.post("/api/streams/orders.eu/events", json={"type": "a"})
        assert r.status_code == 401
        assert r.json()["error"]["code"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        assert c.get("/api/streams").status_code == 401
        bad = c.get("/api/streams", headers={"Authorization": "Bearer nope"})
        assert bad.status_code == 401
        basic = c.get("/api/streams", headers={"Authorization": "Basic eDp5"})
        assert basic.status_code == 401
        # health and metrics stay open for probes
        assert c.get("/healthz").status_code == 200
        assert c.get("/readyz").status_code == 200


def test_scopes_allow_matching_streams_and_forbid_others_with_403(
    auth_server: ServerThread,
) -> None:
    with (
        _client(auth_server, "writer") as writer,
        _client(auth_server, "reader") as reader,
        _client(auth_server, "admin") as admin,
    ):
        assert writer.post("/api/streams/orders.eu/events", json={"type": "a"}).status_code == 201
        forbidden = writer.post("/api/streams/billing/events", json={"type": "a"})
        assert forbidden.status_code == 403
        assert forbidden.json()["error"]["code"] == "forbidden"
        assert writer.get("/api/streams/orders.eu/events").status_code == 403
        assert reader.get("/api/streams/orders.eu/events").json()["events"][0]["type"] == "a"
        assert reader.post("/api/streams/orders.eu/events", json={"type": "a"}).status_code == 403
        assert reader.get("/api/streams/billing/events").status_code == 403
        assert admin.post("/api/streams/billing/events", json={"type": "b"}).status_code == 201
        # listings show only what the key may read
        names = [s["name"] for s in reader.get("/api/streams").json()["streams"]]
        assert names == ["orders.eu"]
        assert len(admin.get("/api/streams").json()["streams"]) == 2
        # admin-only operations
        seek = {"stream": "orders.eu", "position": 0}
        assert reader.put("/api/consumers/c1", json=seek).status_code == 403
        assert admin.put("/api/consumers/c1", json=seek).status_code == 200
        assert reader.delete("/api/streams/billing").status_code == 403
        assert admin.delete("/api/streams/billing").status_code == 204


def test_keygen_writes_a_config_entry_serve_reads_whatever_the_name(tmp_path: Path) -> None:
    """The name is any text: keygen quotes it as TOML, so the entry works as printed."""
    name = 'ci "nightly" \\ runner'
    made = eventlog("keygen", "--name", name, "--scope", "read:*")
    assert made.returncode == 0, made.stderr
    key = made.stderr.split()[1]
    config = tmp_path / "eventlog.toml"
    config.write_text(made.stdout)
    with (
        ServerProcess.start(db=tmp_path / "e.db", extra_args=["--config", str(config)]) as s,
        httpx.Client(base_url=s.url, headers={"authorization": f"Bearer {key}"}) as client,
    ):
        assert client.get("/api/whoami").json()["name"] == name
