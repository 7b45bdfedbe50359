"""Ingest test fixtures: a real ``eventlog serve`` with ingest sources in its config file."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.server.ingest.senders import GITHUB_SECRET, SLACK_SECRET, STRIPE_SECRET, SW_SECRET
from tests.serverthread import ServerThread
from tests.support import scaled

#: The config file of the test server: one source per signature scheme.
CONFIG = f"""
[[ingest.sources]]
name = "github"
stream = "github"
verify = {{ scheme = "github", secret = "{GITHUB_SECRET}" }}
key = "$.repository.full_name"
headers = ["X-GitHub-Event"]
[ingest.sources.fields]
repo = "$.repository.full_name"
action = {{ path = "$.action", required = false }}

[[ingest.sources]]
name = "stripe"
stream = "payments"
verify = {{ scheme = "stripe", secret = "{STRIPE_SECRET}", tolerance = 300 }}
key = "$.data.object.customer"
fields = {{ amount = "$.data.object.amount" }}

[[ingest.sources]]
name = "shop"
stream = "orders"
verify = {{ scheme = "standard", secret = "{SW_SECRET}" }}
key = "$.data.order.id"
[ingest.sources.fields]
order_id = "$.data.order.id"
email = {{ path = "$.data.customer.email", required = false }}

[[ingest.sources]]
name = "slack"
stream = "chat"
verify = {{ scheme = "slack", secret = "{SLACK_SECRET}" }}
type = {{ path = "$.event.type", prefix = "slack.", default = "slack.command" }}

[[ingest.sources]]
name = "ci"
stream = "builds"
verify = {{ scheme = "bearer", token = "ci-token-1" }}
type = {{ header = "X-Build-Event" }}
max_body_bytes = 1024
"""


@pytest.fixture(scope="module")
def ingest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerThread]:
    """One server for a test module, its sources from :data:`CONFIG`."""
    tmp: Path = tmp_path_factory.mktemp("ingest")
    config = tmp / "eventlog.toml"
    config.write_text(CONFIG)
    with ServerThread.start(db=tmp / "events.db", config=config) as proc:
        yield proc


@pytest.fixture(scope="module")
def client(ingest_server: ServerThread) -> Iterator[httpx.Client]:
    """An HTTP client on the module's server (one per module, as the server)."""
    with httpx.Client(base_url=ingest_server.url, timeout=scaled(10)) as c:
        yield c
