"""What a delivery target may be, and how it changes (pure).

:class:`TargetSpec` (tagged by ``kind``) is what the API, the CLI and the config
file accept; :func:`build_endpoint`, :func:`apply_patch` and :func:`declared_endpoint`
turn it into a checked :class:`~consumers.delivery.model.Endpoint` of any kind.
A bad field is a :class:`SpecError` naming it.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator, Sequence
from typing import Annotated, Any, Literal, Self

import msgspec

from consumers.delivery.history import KEEP_HISTORY
from consumers.delivery.model import Endpoint, SecretEntry, TargetFields
from consumers.delivery.retry import RetryPolicy
from consumers.delivery.signing import decode_secret, generate_secret
from consumers.delivery.ssrf import validate_url
from consumers.filter import check_key_pattern, check_type_pattern
from eventlog.errors import InvalidInput
from eventlog.ids import uuid7
from eventlog.model import validate_stream_name

MAX_TIMEOUT = 300.0
MAX_HEADERS = 32
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]{1,128}")
_RESERVED_HEADERS = frozenset(
    {
        "webhook-id",
        "webhook-timestamp",
        "webhook-signature",
        "content-type",
        "content-length",
        "host",
        "transfer-encoding",
        "connection",
    }
)

RetrySetting = Literal["default", "short"] | RetryPolicy


class TargetSpec(TargetFields, kw_only=True, forbid_unknown_fields=True, tag_field="kind"):
    """What users declare for any delivery target (API body, config file, CLI).

    A tagged union: ``kind`` (``webhook``, ``discord``, ``slack``, ``apprise``) picks
    the subclass, which adds its own fields (:meth:`endpoint_fields`). Besides the
    :class:`~consumers.delivery.model.TargetFields`:

    Attributes:
        id: Stable id (generated ``ep_…`` if omitted).
        retry: ``"default"`` (about a day), ``"short"`` (1 s, 2 s, 4 s) or a
            full policy ``{"schedule": [...], "max_attempts": n, "jitter": f}``.
        max_attempts: Override the policy's number of attempts.
        start: ``end`` (only new events, default) or ``beginning`` (backfill
            everything retained).
    """

    id: str | None = None
    retry: RetrySetting = "default"
    max_attempts: int | None = None
    start: Literal["end", "beginning"] = "end"

    @property
    def kind(self) -> str:
        """The target kind (the tag)."""
        return str(type(self).__struct_config__.tag)

    def endpoint_fields(self, now: float) -> dict[str, Any]:
        """The endpoint fields this kind sets itself (secrets, options, another url...)."""
        return {}

    @classmethod
    def of(cls, ep: Endpoint) -> Self:
        """The spec that builds ``ep`` again (secret and full URL included: keep it server-side)."""
        return cls(**spec_fields(ep, cls))


class EndpointSpec(TargetSpec, tag="webhook", kw_only=True, forbid_unknown_fields=True):
    """A webhook endpoint as users declare it (``kind`` may be left out).

    Attributes:
        secret: ``whsec_…`` signing secret (generated if omitted).
        headers: Extra static headers, e.g. ``{"Authorization": "Bearer …"}``.
        max_in_flight: Concurrent attempts (1 to 1000).
    """

    secret: str | None = None
    headers: dict[str, str] = {}
    max_in_flight: int = 10

    def endpoint_fields(self, now: float) -> dict[str, Any]:
        secret = self.secret if self.secret is not None else generate_secret()
        return {
            "secrets": [SecretEntry(secret=secret, created=now)],
            "headers": dict(self.headers),
            "max_in_flight": self.max_in_flight,
        }

    @classmethod
    def of(cls, ep: Endpoint) -> Self:
        return cls(**spec_fields(ep, cls), secret=ep.secrets[0].secret if ep.secrets else None)


#: The spec type of each target kind (:mod:`consumers.notify` adds the chat kinds
#: when imported): how :func:`apply_patch` rebuilds an endpoint of any kind.
SPECS: dict[str, type[TargetSpec]] = {"webhook": EndpointSpec}


def patch_of(spec: type[TargetSpec], name: str, doc: str) -> type[msgspec.Struct]:
    """The partial update of ``spec``'s kind: each of its fields but ``id``, ``start``
    and ``secret`` (which a patch cannot change), ``UNSET`` unless given."""
    fixed = {"id", "start", "secret"}
    fields = [
        (f.name, f.type | msgspec.UnsetType, msgspec.UNSET)
        for f in msgspec.structs.fields(spec)
        if f.name not in fixed
    ]
    namespace = {"__doc__": doc}
    return msgspec.defstruct(
        name, fields, kw_only=True, forbid_unknown_fields=True, namespace=namespace, module=__name__
    )


EndpointPatch = patch_of(
    EndpointSpec,
    "EndpointPatch",
    "A partial update of a webhook endpoint (``secret`` is rotated separately).",
)


class WebhooksConfig(msgspec.Struct, kw_only=True, forbid_unknown_fields=True):
    """The ``[webhooks]`` table of the server's config file.

    Attributes:
        enabled: Run the delivery workers in the server.
        allow_private_targets: Allow targets on loopback, private and other
            non-global addresses (off by default: the SSRF guard refuses them).
        system_stream: Stream that receives ``delivery.endpoint.disabled`` events.
        endpoints: Endpoints declared in the file (``[[webhooks.endpoints]]``,
            each with an ``id``); created or updated at start-up, read-only
            through the API.
        keep_history: Seconds a finished delivery (and a shared consumer's
            acked row) is kept with its attempts: more than 0, at most 10 years.
    """

    enabled: bool = True
    allow_private_targets: bool = False
    system_stream: str = "system"
    keep_history: Annotated[float, msgspec.Meta(gt=0, le=10 * 365 * 86400)] = KEEP_HISTORY
    endpoints: list[EndpointSpec] = []

    def __post_init__(self) -> None:
        validate_stream_name(self.system_stream)
        check_declared(self.endpoints, "endpoint")


def check_declared(specs: Sequence[TargetSpec], what: str) -> None:
    """Raise ``ValueError`` unless every target declared in a config file has its own ``id``."""
    ids = [s.id for s in specs]
    if any(i is None for i in ids):
        raise ValueError(f"{what}s declared in the config file need an id")
    if len(set(ids)) != len(ids):
        raise ValueError(f"{what} ids in the config file must be unique")


class SpecError(InvalidInput):
    """A field of an endpoint specification is invalid; ``path`` names it.

    The message starts with the field (``types[0]: ...``); :attr:`json_path`
    is ``$.`` + ``path``.
    """

    code = "invalid_endpoint"

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}", path="$." + path)
        self.path = path


@contextlib.contextmanager
def _field_errors(path: str) -> Iterator[None]:
    """A ``ValueError`` raised inside becomes a :class:`SpecError` naming ``path``."""
    try:
        yield
    except SpecError:
        raise
    except ValueError as exc:
        raise SpecError(path, str(exc)) from exc


def _policy(retry: RetrySetting, max_attempts: int | None) -> RetryPolicy:
    policy = RetryPolicy.preset(retry) if isinstance(retry, str) else retry
    if max_attempts is not None:
        with _field_errors("max_attempts"):
            policy = msgspec.structs.replace(policy, max_attempts=max_attempts)  # checks it
    return policy


def _validate(ep: Endpoint) -> Endpoint:
    """Check every field of an endpoint; raise :class:`SpecError` naming the first bad one."""
    with _field_errors("url"):
        if ep.kind != "apprise":  # an Apprise URL is checked with its options
            validate_url(ep.url)
    with _field_errors("stream"):
        validate_stream_name(ep.stream)
    if len(ep.types) > 100:
        raise SpecError("types", "at most 100 type patterns")
    for i, pattern in enumerate(ep.types):
        with _field_errors(f"types[{i}]"):
            check_type_pattern(pattern)
    if ep.key is not None:
        with _field_errors("key"):
            check_key_pattern(ep.key)
    if len(ep.headers) > MAX_HEADERS:
        raise SpecError("headers", f"at most {MAX_HEADERS} extra headers")
    for name, value in ep.headers.items():
        where = f"headers.{name}"
        if _HEADER_NAME.fullmatch(name) is None:
            raise SpecError(where, "invalid header name")
        if name.lower() in _RESERVED_HEADERS:
            raise SpecError(where, f"header {name!r} is set by eventlog and cannot be overridden")
        if len(value) > 4096 or any(c in value for c in "\r\n\x00"):
            raise SpecError(
                where, "header values must be at most 4096 characters without CR, LF or NUL"
            )
    if not 0.1 <= ep.timeout <= MAX_TIMEOUT:
        raise SpecError("timeout", f"timeout must be between 0.1 and {MAX_TIMEOUT:g} seconds")
    if not 1 <= ep.max_in_flight <= 1000:
        raise SpecError("max_in_flight", "max_in_flight must be 1 to 1000")
    if ep.rate_limit is not None and not 0 < ep.rate_limit <= 100_000:
        raise SpecError("rate_limit", "rate_limit must be between 0 and 100000 per second")
    if ep.disable_after is not None and not 1 <= ep.disable_after <= 90 * 86400:
        raise SpecError("disable_after", "disable_after must be between 1 second and 90 days")
    if len(ep.description) > 1024:
        raise SpecError("description", "description is at most 1024 characters")
    for i, entry in enumerate(ep.secrets):
        with _field_errors("secret" if i == 0 else f"secrets[{i}]"):
            decode_secret(entry.secret)
    return ep


def build_endpoint(spec: TargetSpec, *, now: float, head: int, first: int = 0) -> Endpoint:
    """A new endpoint of any kind from its spec. ``head``/``first``: the stream's
    next and first retained offsets, fixing where the endpoint starts.

    Raises:
        SpecError: A field is invalid (its ``path`` names it).
    """
    if spec.id is not None and _ID.fullmatch(spec.id) is None:
        raise SpecError("id", "id must be 1-64 of [A-Za-z0-9_-]")
    ep = Endpoint(
        **{name: getattr(spec, name) for name in TargetFields.__struct_fields__},
        id=spec.id or "ep_" + uuid7().replace("-", "")[-16:],
        kind=spec.kind,
        retry=_policy(spec.retry, spec.max_attempts),
        start_offset=head if spec.start == "end" else first,
        created=now,
        updated=now,
    )
    return _validate(msgspec.structs.replace(ep, **spec.endpoint_fields(now)))


def spec_fields(ep: Endpoint, spec: type[TargetSpec] = TargetSpec) -> dict[str, Any]:
    """The fields of ``spec`` that build ``ep`` again (``max_attempts`` from its policy)."""
    names = set(spec.__struct_fields__) & set(Endpoint.__struct_fields__)
    return {name: getattr(ep, name) for name in names} | {"max_attempts": ep.retry.max_attempts}


def _carried(
    fresh: Endpoint, old: Endpoint, *, enabled: bool, reset: bool, now: float, **more: Any
) -> Endpoint:
    """``fresh`` with ``old``'s runtime state: where it started, when it was created,
    and (unless ``reset``) its failure streak and, while disabled, why."""
    return msgspec.structs.replace(
        fresh,
        start_offset=old.start_offset,
        created=old.created,
        enabled=enabled,
        disabled_reason=None if reset or enabled else old.disabled_reason,
        failing_since=None if reset else old.failing_since,
        updated=now,
        **more,
    )


def apply_patch(ep: Endpoint, patch: msgspec.Struct, *, now: float) -> Endpoint:
    """The endpoint with the ``patch`` (of :func:`patch_of` its kind) applied, validated
    as a new one, its runtime state kept; enabling it clears its disabled reason and
    failure streak. A notification target's ``options`` are replaced as a whole."""
    changes = {f: v for f, v in msgspec.structs.asdict(patch).items() if v is not msgspec.UNSET}
    kind = SPECS.get(ep.kind)
    if kind is None:
        raise SpecError("kind", f"unknown target kind {ep.kind!r}")
    spec = msgspec.structs.replace(kind.of(ep), **changes)
    fresh = build_endpoint(spec, now=now, head=ep.start_offset)
    reset = changes.get("enabled") is True
    return _carried(
        fresh, ep, enabled=fresh.enabled, reset=reset, now=now, secrets=ep.secrets, origin=ep.origin
    )


def rotate_secret(
    ep: Endpoint, *, now: float, secret: str | None = None, grace: float = 86400.0
) -> tuple[Endpoint, str]:
    """Put a new secret first; older ones keep signing for ``grace`` seconds.

    Returns the endpoint and the new secret (to show once to the caller).
    """
    if not 0 <= grace <= 30 * 86400:
        raise SpecError("grace", "grace must be between 0 and 30 days")
    new = secret if secret is not None else generate_secret()
    with _field_errors("secret"):
        decode_secret(new)
    until = now + grace
    old = [
        msgspec.structs.replace(s, expires_at=min(s.expires_at or until, until))
        for s in ep.secrets
        if s.expires_at is None or s.expires_at > now
    ]
    entries = [SecretEntry(secret=new, created=now), *old][:10]
    return msgspec.structs.replace(ep, secrets=entries, updated=now), new


def declared_endpoint(
    spec: TargetSpec, existing: Endpoint | None, *, now: float, head: int, first: int = 0
) -> Endpoint:
    """The endpoint for a config-file declaration (``origin = "config"``), keeping an
    existing one's start offset, creation time, secrets unless the file names a new
    one, and a disabled state with its reason (until the file or an operator enables it).

    Raises:
        SpecError: As :func:`build_endpoint`; a declaration without an ``id``.
    """
    if spec.id is None:
        raise SpecError("id", "endpoints declared in the config file need an id")
    fresh = msgspec.structs.replace(
        build_endpoint(spec, now=now, head=head, first=first), origin="config"
    )
    if existing is None:
        return fresh
    secrets = existing.secrets
    current = existing.secrets[0].secret if existing.secrets else None
    new = spec.secret if isinstance(spec, EndpointSpec) else None
    if new is not None and new != current:
        secrets = rotate_secret(existing, now=now, secret=new)[0].secrets
    enabled = existing.enabled and spec.enabled
    return _carried(fresh, existing, enabled=enabled, reset=False, now=now, secrets=secrets)
