"""The eventlog HTTP and WebSocket server, its configuration and its CLI."""

__all__: list[str] = []
