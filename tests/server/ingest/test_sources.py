"""Source definitions: validation with the failing field named, defaults, redaction, config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from server.config import ConfigError, load_config
from server.ingest.sources import FieldSpec, Source, compile_source, redacted
from tests.server.ingest.senders import SW_SECRET

ONE_SOURCE = """
[[ingest.sources]]
name = "a"
stream = "s"
verify = { scheme = "github", secret = "x" }
"""


def source(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "shop",
        "stream": "orders",
        "verify": {"scheme": "bearer", "token": "t0ken"},
        "type": "order.created",
    }
    base.update(overrides)
    return base


def test_minimal_sources_of_every_scheme_compile_with_their_defaults() -> None:
    cases = {
        "github": ({"secret": "s"}, ("header:X-GitHub-Event", "header:X-GitHub-Delivery")),
        "stripe": ({"secret": "whsec_x"}, ("$.type", "$.id")),
        "standard": ({"secret": SW_SECRET}, ("$.type", "header:webhook-id")),
        "slack": ({"secret": "s"}, ("$.type", "$.event_id")),
    }
    for scheme, (secret, (type_where, id_where)) in cases.items():
        spec = msgspec.convert(
            {"name": scheme, "stream": "s", "verify": {"scheme": scheme, **secret}}, Source
        )
        compiled = compile_source(spec)
        assert compiled.mapper.type.where == type_where
        assert compiled.mapper.id is not None
        assert compiled.mapper.id.where == id_where
    raw = {"name": "g", "stream": "s", "verify": {"scheme": "github", "secret": "s"}}
    gh = compile_source(msgspec.convert(raw, Source))
    assert gh.mapper.type_prefix == "github."


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"name": "bad name"}, "name"),
        ({"stream": "-x"}, "stream"),
        ({"type": None}, "type"),
        ({"type": ""}, "type"),
        ({"type": {"header": "A", "path": "$.a"}}, "type"),
        ({"type": {"header": "bad header"}}, "type.header"),
        ({"key": "order.id"}, "key"),
        ({"fields": {"x": "$.a["}}, "fields.x"),
        ({"fields": {"x": {"path": "nope"}}}, "fields.x"),
        ({"id": {}}, "id"),
        ({"verify": {"scheme": "bearer", "token": ""}}, "verify.token"),
        ({"verify": {"scheme": "github", "secret": []}}, "verify.secret"),
        ({"verify": {"scheme": "standard", "secret": "whsec_***"}}, "verify.secret"),
        ({"verify": {"scheme": "stripe", "secret": "x", "tolerance": 0}}, "verify.tolerance"),
        ({"max_body_bytes": 0}, "max_body_bytes"),
        ({"headers": ["ok", "not ok"]}, "headers[1]"),
    ],
)
def test_bad_definitions_are_refused_naming_the_field(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(msgspec.ValidationError) as exc:
        msgspec.convert(source(**overrides), Source)
    # Checked by the field's type (a name pattern: msgspec names the path) or by the
    # source's own checks (they name the field first).
    text = str(exc.value)
    assert text.startswith(f"{field}: ") or text.endswith(f" - at `$.{field}`"), text


def test_unknown_fields_and_schemes_are_refused() -> None:
    with pytest.raises(msgspec.ValidationError, match="Object contains unknown field `secrte`"):
        msgspec.convert(source(verify={"scheme": "github", "secrte": "x"}), Source)
    with pytest.raises(msgspec.ValidationError, match="Invalid value 'gitlab'"):
        msgspec.convert(source(verify={"scheme": "gitlab", "secret": "x"}), Source)


def test_redacted_hides_every_secret_and_keeps_the_shape() -> None:
    spec = msgspec.convert(source(verify={"scheme": "bearer", "token": ["a1", "b2"]}), Source)
    view = redacted(spec)
    assert view["verify"] == {"scheme": "bearer", "token": ["<redacted>", "<redacted>"]}
    assert "a1" not in msgspec.json.encode(view).decode()


def test_sources_load_from_the_toml_config_file(tmp_path: Path) -> None:
    path = tmp_path / "eventlog.toml"
    path.write_text(
        """
[[ingest.sources]]
name = "github"
stream = "github"
verify = { scheme = "github", secret = "s3cret" }
key = "$.repository.full_name"

[ingest.sources.fields]
repo = "$.repository.full_name"
action = { path = "$.action", required = false }
"""
    )
    config = load_config(file=path)
    (gh,) = config.ingest.sources
    assert gh.fields["action"] == FieldSpec(path="$.action", required=False)
    assert compile_source(gh).mapper.key is not None


def test_a_bad_source_in_the_config_file_fails_loading_with_its_place(tmp_path: Path) -> None:
    path = tmp_path / "eventlog.toml"
    path.write_text(ONE_SOURCE + 'fields = { f = "$[" }\n')
    with pytest.raises(ConfigError, match=r"fields\.f: .*ingest\.sources\[0\]"):
        load_config(file=path)


def test_duplicate_source_names_in_the_config_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "eventlog.toml"
    path.write_text(ONE_SOURCE + ONE_SOURCE)
    with pytest.raises(ConfigError, match="two ingest sources are named 'a'"):
        load_config(file=path)
