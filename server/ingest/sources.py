"""Inbound webhook sources: their definition (msgspec Structs) and compilation.

A source is declared in the server's config file (``[[ingest.sources]]``) or
through ``/api/ingest/sources``; both use the same :class:`Source` shape::

    name = "github"                 # POST /ingest/github
    stream = "github"               # where the events go
    verify = { scheme = "github", secret = "…" }
    type = { header = "X-GitHub-Event", prefix = "github." }  # or "a.type" or { path = "$.type" }
    key = "$.repository.full_name"  # JSON path, optional
    fields = { repo = "$.repository.full_name", action = { path = "$.action", required = false } }

:func:`compile_source` checks everything a definition can get wrong (names,
paths, secrets, limits) and turns it into a :class:`CompiledSource`, which
verifies and maps requests. ``Source.__post_init__`` runs the same checks, so
a bad source fails when the config file or the API request is decoded, with
the offending field named.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import msgspec

from eventlog.errors import InvalidInput, InvalidStreamName
from eventlog.model import validate_stream_name
from server.api.params import StreamName
from server.ingest import verify as v
from server.ingest.mapping import FieldRule, JsonPath, Mapper, PathSyntaxError, Pick

__all__ = [
    "BearerScheme",
    "CompiledSource",
    "FieldSpec",
    "GitHubScheme",
    "IdFrom",
    "IngestConfig",
    "InvalidSource",
    "Scheme",
    "SlackScheme",
    "Source",
    "StandardScheme",
    "StripeScheme",
    "TypeFrom",
    "compile_source",
    "redacted",
    "with_defaults",
]

#: Default largest body a source accepts (the server's ``max_body_bytes`` caps it too).
DEFAULT_MAX_BODY = 1 << 20
_HEADER_NAME = frozenset(
    "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)


class InvalidSource(InvalidInput):
    """A source definition is wrong (HTTP 422); ``path`` names the field."""

    code = "invalid_source"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}", path="$." + path)
        self.path = path
        self.message = message


class _Base(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    pass


_Secret = Annotated[str, msgspec.Meta(min_length=1)]
#: One secret, or several (a rotation): none empty. The type checks it, so the
#: OpenAPI schema says it too.
Secrets = _Secret | Annotated[list[_Secret], msgspec.Meta(min_length=1)]
#: Seconds a signed timestamp may be off.
Tolerance = Annotated[float, msgspec.Meta(gt=0, le=86400)]


class _SchemeBase(_Base, frozen=True, tag_field="scheme"):
    pass


class GitHubScheme(_SchemeBase, frozen=True, tag="github"):
    """GitHub ``X-Hub-Signature-256``; several secrets during a rotation."""

    secret: Secrets


class StripeScheme(_SchemeBase, frozen=True, tag="stripe"):
    """Stripe ``Stripe-Signature``, keyed with the whole ``whsec_…`` string."""

    secret: Secrets
    tolerance: Tolerance = v.DEFAULT_TOLERANCE


class StandardScheme(_SchemeBase, frozen=True, tag="standard"):
    """Standard Webhooks (``webhook-id``/``-timestamp``/``-signature``), ``whsec_<base64>``."""

    secret: Secrets
    tolerance: Tolerance = v.DEFAULT_TOLERANCE


class SlackScheme(_SchemeBase, frozen=True, tag="slack"):
    """Slack request signing v0 with the app's signing secret."""

    secret: Secrets
    tolerance: Tolerance = v.DEFAULT_TOLERANCE


class BearerScheme(_SchemeBase, frozen=True, tag="bearer"):
    """A shared token sent as ``Authorization: Bearer <token>``."""

    token: Secrets


Scheme = GitHubScheme | StripeScheme | StandardScheme | SlackScheme | BearerScheme
"""How a source's sender proves itself; the ``scheme`` field picks one."""


class TypeFrom(_Base, frozen=True):
    """The event type from a request header or a JSON path (exactly one).

    Attributes:
        header: Request header holding the type (``X-GitHub-Event``).
        path: JSON path of the type in the body (``$.type``).
        prefix: Put before the value (``"github."``).
        default: Used when the header or path is absent; without one that is a 400.
    """

    header: str | None = None
    path: str | None = None
    prefix: str = ""
    default: str | None = None


class IdFrom(_Base, frozen=True):
    """The sender's delivery id from a request header or a JSON path (exactly one).

    Attributes:
        header: e.g. ``X-GitHub-Delivery``, ``webhook-id``.
        path: e.g. ``$.id`` (Stripe event id), ``$.event_id`` (Slack).
        required: Refuse (400) a request without it; else it gets a fresh id.
    """

    header: str | None = None
    path: str | None = None
    required: bool = False


class FieldSpec(_Base, frozen=True):
    """A mapped field; a bare string in ``fields`` means ``{path = …, required = true}``."""

    path: str
    required: bool = True


class Source(_Base, frozen=True):
    """One inbound webhook source, served at ``POST /ingest/{name}``.

    Attributes:
        name: The URL segment (same rules as stream names).
        stream: The stream its events are appended to.
        verify: The sender's signature scheme and secret(s).
        type: A fixed type, or :class:`TypeFrom`. Omitted: the scheme's
            default (GitHub ``X-GitHub-Event`` prefixed ``github.``; Stripe,
            Standard Webhooks and Slack ``$.type``); bearer sources must set it.
        key: JSON path of the event key.
        id: Where the delivery id comes from. Omitted: the scheme's default
            (GitHub ``X-GitHub-Delivery``, Standard Webhooks ``webhook-id``,
            Stripe ``$.id``, Slack ``$.event_id``; bearer none).
        fields: Mapped fields by name: a JSON path (required) or :class:`FieldSpec`.
        headers: Request headers copied into the event's headers (lower-cased).
        max_body_bytes: Largest body accepted (413 beyond).
    """

    name: StreamName
    stream: StreamName
    verify: Scheme
    type: str | TypeFrom | None = None
    key: str | None = None
    id: IdFrom | None = None
    fields: dict[str, str | FieldSpec] = {}
    headers: list[str] = []
    max_body_bytes: int = DEFAULT_MAX_BODY

    def __post_init__(self) -> None:
        try:
            compile_source(self)
        except InvalidSource as exc:
            raise ValueError(str(exc)) from exc


class IngestConfig(_Base, frozen=True):
    """The ``[ingest]`` table of the server config: sources declared in the file."""

    sources: list[Source] = []

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for source in self.sources:
            if source.name in seen:
                raise ValueError(f"two ingest sources are named {source.name!r}")
            seen.add(source.name)


_DEFAULT_TYPE: dict[str, TypeFrom] = {
    "github": TypeFrom(header="X-GitHub-Event", prefix="github."),
    "stripe": TypeFrom(path="$.type"),
    "standard": TypeFrom(path="$.type"),
    "slack": TypeFrom(path="$.type"),
}
_DEFAULT_ID: dict[str, IdFrom] = {
    "github": IdFrom(header="X-GitHub-Delivery"),
    "standard": IdFrom(header="webhook-id", required=True),
    "stripe": IdFrom(path="$.id"),
    "slack": IdFrom(path="$.event_id"),
}


@dataclass(frozen=True, slots=True)
class CompiledSource:
    """A checked source, ready to verify and map requests.

    Attributes:
        spec: The definition it was compiled from.
        mapper: Its compiled mapping.
        secrets: The accepted secrets (or tokens), in order.
        origin: ``"config"`` (the config file; read-only) or ``"api"``.
    """

    spec: Source
    mapper: Mapper
    secrets: tuple[str, ...]
    origin: Literal["config", "api"] = "api"

    @property
    def name(self) -> str:
        """The source's name."""
        return self.spec.name

    def verify(self, headers: Mapping[str, str], body: bytes, now: float) -> None:
        """Check the raw request against the source's scheme.

        Raises:
            server.ingest.verify.SignatureError: Missing, malformed, wrong or expired.
        """
        scheme = self.spec.verify
        if isinstance(scheme, GitHubScheme):
            v.verify_github(headers, body, self.secrets)
        elif isinstance(scheme, StripeScheme):
            v.verify_stripe(headers, body, self.secrets, now=now, tolerance=scheme.tolerance)
        elif isinstance(scheme, StandardScheme):
            v.verify_standard(headers, body, self.secrets, now=now, tolerance=scheme.tolerance)
        elif isinstance(scheme, SlackScheme):
            v.verify_slack(headers, body, self.secrets, now=now, tolerance=scheme.tolerance)
        else:
            v.verify_bearer(headers, self.secrets)


def _scheme_name(scheme: Scheme) -> str:
    return str(scheme.__struct_config__.tag)


def _secrets(scheme: Scheme) -> tuple[str, ...]:
    value = scheme.token if isinstance(scheme, BearerScheme) else scheme.secret
    field = "verify.token" if isinstance(scheme, BearerScheme) else "verify.secret"
    items = [value] if isinstance(value, str) else list(value)
    if not items or any(not isinstance(s, str) or not s for s in items):
        raise InvalidSource(field, "give at least one non-empty secret")
    if isinstance(scheme, StandardScheme):
        for item in items:
            try:
                v.decode_standard_secret(item)
            except ValueError as exc:
                raise InvalidSource(field, str(exc)) from exc
    if not isinstance(scheme, BearerScheme | GitHubScheme) and not 0 < scheme.tolerance <= 86400:
        raise InvalidSource("verify.tolerance", "must be between 0 and 86400 seconds")
    return tuple(items)


def _path(text: str, field: str) -> JsonPath:
    try:
        return JsonPath.parse(text)
    except PathSyntaxError as exc:
        raise InvalidSource(field, str(exc)) from exc


def _header_name(text: str, field: str) -> str:
    if not text or not set(text) <= _HEADER_NAME:
        raise InvalidSource(field, f"{text!r} is not a valid header name")
    return text


def _pick(header: str | None, path: str | None, field: str) -> Pick:
    if (header is None) == (path is None):
        raise InvalidSource(field, "give exactly one of header or path")
    if header is not None:
        return Pick(header=_header_name(header, f"{field}.header"))
    assert path is not None
    return Pick(path=_path(path, f"{field}.path"))


def compile_source(spec: Source, origin: Literal["config", "api"] = "api") -> CompiledSource:
    """Check a definition and compile it.

    Raises:
        InvalidSource: A bad name, stream, secret, path, header or limit; ``path``
            names the field.
    """
    for field, value in (("name", spec.name), ("stream", spec.stream)):
        try:
            validate_stream_name(value)
        except InvalidStreamName as exc:
            raise InvalidSource(field, str(exc)) from exc
    scheme = _scheme_name(spec.verify)
    secrets = _secrets(spec.verify)
    if not 1 <= spec.max_body_bytes <= 1 << 30:
        raise InvalidSource("max_body_bytes", "must be between 1 byte and 1 GiB")

    type_spec = spec.type if spec.type is not None else _DEFAULT_TYPE.get(scheme)
    if type_spec is None:
        raise InvalidSource("type", f"a {scheme} source must say how to choose the event type")
    if isinstance(type_spec, str):
        if not type_spec:
            raise InvalidSource("type", "a fixed type must not be empty")
        type_pick, prefix, default = Pick(fixed=type_spec), "", None
    else:
        type_pick = _pick(type_spec.header, type_spec.path, "type")
        prefix, default = type_spec.prefix, type_spec.default or None

    id_spec = spec.id if spec.id is not None else _DEFAULT_ID.get(scheme)
    id_pick = None if id_spec is None else _pick(id_spec.header, id_spec.path, "id")

    rules: list[FieldRule] = []
    for name, entry in spec.fields.items():
        if not name:
            raise InvalidSource("fields", "a field name must not be empty")
        if isinstance(entry, str):
            path, required = entry, True
        else:
            path, required = entry.path, entry.required
        rules.append(FieldRule(name=name, path=_path(path, f"fields.{name}"), required=required))
    for i, header in enumerate(spec.headers):
        _header_name(header, f"headers[{i}]")

    mapper = Mapper(
        type=type_pick,
        type_prefix=prefix,
        type_default=default,
        key=None if spec.key is None else _path(spec.key, "key"),
        id=id_pick,
        id_required=id_spec.required if id_spec is not None else False,
        fields=tuple(rules),
    )
    return CompiledSource(spec=spec, mapper=mapper, secrets=secrets, origin=origin)


def with_defaults(spec: Source) -> Source:
    """The definition with the scheme's default ``type`` and ``id`` filled in where omitted."""
    scheme = _scheme_name(spec.verify)
    return msgspec.structs.replace(
        spec,
        type=spec.type if spec.type is not None else _DEFAULT_TYPE.get(scheme),
        id=spec.id if spec.id is not None else _DEFAULT_ID.get(scheme),
    )


def redacted(spec: Source) -> dict[str, Any]:
    """The definition, defaults filled in (:func:`with_defaults`), as JSON-ready
    builtins with every secret replaced by ``"<redacted>"``."""
    data: dict[str, Any] = msgspec.to_builtins(with_defaults(spec))
    scheme = dict(data["verify"])
    for name in ("secret", "token"):
        if name in scheme:
            count = 1 if isinstance(scheme[name], str) else len(scheme[name])
            scheme[name] = "<redacted>" if count == 1 else ["<redacted>"] * count
    data["verify"] = scheme
    return data
