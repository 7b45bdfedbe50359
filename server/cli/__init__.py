"""The ``eventlog`` command line: one module per command group.

:mod:`~server.cli.main` builds the parser from every group's ``register``;
``serve`` (:mod:`~server.cli.serve`), the client commands
(:mod:`~server.cli.client`, :mod:`~server.cli.transfer`), ``migrate``,
``webhooks`` and ``notify``. The client commands run against one
:class:`~server.cli.backend.Backend` over HTTP (:mod:`~server.cli.http`) or
in-process (:mod:`~server.cli.db`).
"""

from server.cli.main import build_parser, main

__all__ = ["build_parser", "main"]
