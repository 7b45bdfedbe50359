"""The client on an HTTPS server: a private authority passed as ``ssl=``; an untrusted
certificate raised at once (a retry cannot fix it), over HTTP and the firehose."""

from __future__ import annotations

import asyncio
import gc
import ssl
import time
import warnings
from collections.abc import Iterator

import pytest
import trustme

from eventlog.client import AsyncClient, Client
from eventlog.errors import Unavailable
from tests.serverproc import ServerProcess
from tests.support import scaled


@pytest.fixture(autouse=True)
def _collect_failed_handshakes() -> Iterator[None]:
    """Python 3.11's asyncio may leave the transport of a failed TLS handshake
    unclosed (aiohttp's connection to an untrusted server): its ``__del__``
    warns whenever the garbage collector finds it, in whichever later test is
    running then. Collect it at the end of the test that made it."""
    yield
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def trusting(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
    ca.configure_trust(context)
    return context


@pytest.fixture(scope="module")
def https_server(
    ca: trustme.CA, trusting: ssl.SSLContext, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    folder = tmp_path_factory.mktemp("client-tls")
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    args = ["--ssl-certfile", str(folder / "cert.pem"), "--ssl-keyfile", str(folder / "key.pem")]
    with ServerProcess.start(folder / "events.db", extra_args=args, tls=trusting) as server:
        yield server


async def test_a_client_given_the_authority_appends_and_follows_over_https(
    https_server: ServerProcess, trusting: ssl.SSLContext
) -> None:
    async with AsyncClient.open(https_server.url, ssl=trusting) as log:
        offset = await log.append("tls", {"n": 1}, type="t")
        async for event in log.follow("tls", start=offset):
            assert (event.offset, event.json()) == (offset, {"n": 1})
            break


def test_the_blocking_client_takes_the_authority_too(
    https_server: ServerProcess, trusting: ssl.SSLContext
) -> None:
    with Client(https_server.url, ssl=trusting) as log:
        assert log.append("tls-sync", {"n": 2}, type="t") == 0


async def test_an_untrusted_certificate_is_raised_at_once_not_retried(
    https_server: ServerProcess,
) -> None:
    async with AsyncClient.open(https_server.url, retry_for=30) as log:
        started = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            await log.append("tls", {}, type="t")
        assert caught.value.code == "tls_failed"
        assert "certificate" in str(caught.value)
        assert time.monotonic() - started < scaled(5), "retried as if the server were down"
        started = time.monotonic()
        with pytest.raises(Unavailable) as caught:
            await anext(aiter(log.follow("tls", start=0)))
        assert caught.value.code == "tls_failed"
        assert time.monotonic() - started < scaled(5), "reconnected as if the server were down"
        with pytest.raises(Unavailable) as caught:
            await asyncio.wait_for(anext(aiter(log.claims("c", worker="w"))), scaled(5))
        assert caught.value.code == "tls_failed"
