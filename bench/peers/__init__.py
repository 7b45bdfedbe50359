"""Peers measured beside eventlog in the same run: Redis Streams, NATS JetStream.

Each module starts its server as a subprocess on a loopback port and is
skipped, with a message saying what is missing, when the server binary or its
Python client is not installed (``pip install -e '.[peers]'``; redis-server
from the system's packages, nats-server from its release page).
"""
