"""TLS for ``eventlog serve``: check the certificate options and hand them to uvicorn.

``ssl_certfile`` and ``ssl_keyfile`` (PEM) come together or not at all;
``ssl_keyfile_password`` unlocks an encrypted key. :func:`uvicorn_tls_options`
loads the pair once with :mod:`ssl` before the server starts, so a missing,
unreadable or mismatched file is one clear line and exit 2, not a traceback
from inside uvicorn.
"""

from __future__ import annotations

import ssl
from typing import Any

from server.config import ConfigError, ServerConfig

__all__ = ["uvicorn_tls_options"]


def uvicorn_tls_options(config: ServerConfig) -> dict[str, Any]:
    """The ``uvicorn.Config`` keyword arguments for TLS (empty without a certificate).

    Raises:
        ConfigError: Only one of the pair given, a file missing or unreadable,
            not PEM, the key not matching the certificate, or a wrong password.
    """
    cert, key = config.ssl_certfile, config.ssl_keyfile
    if cert is None and key is None:
        if config.ssl_keyfile_password is not None:
            raise ConfigError("ssl_keyfile_password is set but ssl_keyfile is not")
        return {}
    if cert is None or key is None:
        given, missing = (
            ("ssl_certfile", "ssl_keyfile") if key is None else ("ssl_keyfile", "ssl_certfile")
        )
        raise ConfigError(f"{given} is set but {missing} is not: TLS needs both")
    for option, path in (("ssl_certfile", cert), ("ssl_keyfile", key)):
        try:
            with open(path, "rb"):
                pass
        except OSError as exc:
            raise ConfigError(f"cannot read {option} {path}: {exc.strerror}") from exc
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.load_cert_chain(cert, key, password=config.ssl_keyfile_password)
    except ssl.SSLError as exc:
        raise ConfigError(
            f"cannot load the TLS certificate {cert} with key {key}: {exc.reason or exc} "
            "(PEM files, the key matching the certificate, the right ssl_keyfile_password?)"
        ) from exc
    return {
        "ssl_certfile": cert,
        "ssl_keyfile": key,
        "ssl_keyfile_password": config.ssl_keyfile_password,
    }
