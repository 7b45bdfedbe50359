"""Inbound webhooks: ``POST /ingest/{source}`` verifies a sender's signature, maps
its payload by JSON path and appends it as an event. See ``docs/ingest.md``."""

from __future__ import annotations

from server.ingest.mapping import (
    FieldRule,
    JsonPath,
    Mapped,
    Mapper,
    MappingError,
    PathSyntaxError,
    Pick,
)
from server.ingest.pipeline import Challenge, MalformedBody, decode_body, prepare
from server.ingest.sources import (
    BearerScheme,
    CompiledSource,
    FieldSpec,
    GitHubScheme,
    IdFrom,
    IngestConfig,
    InvalidSource,
    Scheme,
    SlackScheme,
    Source,
    StandardScheme,
    StripeScheme,
    TypeFrom,
    compile_source,
    redacted,
    with_defaults,
)
from server.ingest.store import (
    ConfigOwned,
    MemorySourceStore,
    SourceRegistry,
    SourceStore,
    SQLiteSourceStore,
    store_for,
)
from server.ingest.verify import SignatureError

__all__ = [
    "BearerScheme",
    "Challenge",
    "CompiledSource",
    "ConfigOwned",
    "FieldRule",
    "FieldSpec",
    "GitHubScheme",
    "IdFrom",
    "IngestConfig",
    "InvalidSource",
    "JsonPath",
    "MalformedBody",
    "Mapped",
    "Mapper",
    "MappingError",
    "MemorySourceStore",
    "PathSyntaxError",
    "Pick",
    "SQLiteSourceStore",
    "Scheme",
    "SignatureError",
    "SlackScheme",
    "Source",
    "SourceRegistry",
    "SourceStore",
    "StandardScheme",
    "StripeScheme",
    "TypeFrom",
    "compile_source",
    "decode_body",
    "prepare",
    "redacted",
    "store_for",
    "with_defaults",
]
