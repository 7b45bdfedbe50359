"""JSON-path mapping of a decoded request to an event (pure)."""

from __future__ import annotations

import pytest

from server.ingest.mapping import FieldRule, JsonPath, Mapper, MappingError, PathSyntaxError, Pick

DOC = {
    "type": "order.created",
    "order": {"id": 42, "customer": {"email": "a@example.com"}, "note": None},
    "items": [{"sku": "A", "qty": 1}, {"sku": "B", "qty": 3}],
    "key with spaces": "yes",
}


def test_singular_path_gives_one_value_or_nothing() -> None:
    path = JsonPath.parse("$.order.customer.email")
    assert path.singular
    assert path.find(DOC) == (True, "a@example.com")
    assert JsonPath.parse("$.order.missing").find(DOC) == (False, None)
    assert JsonPath.parse("$.items[1].sku").find(DOC) == (True, "B")
    assert JsonPath.parse("$['key with spaces']").find(DOC) == (True, "yes")


def test_null_is_a_present_value() -> None:
    assert JsonPath.parse("$.order.note").find(DOC) == (True, None)


def test_non_singular_path_gives_the_list_of_every_match() -> None:
    path = JsonPath.parse("$.items[*].sku")
    assert not path.singular
    assert path.find(DOC) == (True, ["A", "B"])
    assert JsonPath.parse("$.items[?@.qty > 1].sku").find(DOC) == (True, ["B"])
    assert JsonPath.parse("$.nothing[*]").find(DOC) == (False, [])


def test_scalar_root_only_matches_the_root_path() -> None:
    # A JSON string body must not be re-parsed as a document.
    assert JsonPath.parse("$").find('{"a": 1}') == (True, '{"a": 1}')
    assert JsonPath.parse("$.a").find('{"a": 1}') == (False, None)
    assert JsonPath.parse("$.a").find(7) == (False, None)


@pytest.mark.parametrize("text", ["order.id", "$.a[", "$.a | $.b", "", "$$"])
def test_invalid_paths_are_refused_with_the_path_named(text: str) -> None:
    with pytest.raises(PathSyntaxError) as exc:
        JsonPath.parse(text)
    assert repr(text) in str(exc.value)


def test_deeply_nested_document_does_not_crash_a_descendant_path() -> None:
    doc: object = 1
    for _ in range(5000):
        doc = [doc]
    with pytest.raises(MappingError) as exc:
        JsonPath.parse("$..x").find(doc)
    assert exc.value.path == "$..x"
    assert "\n" not in exc.value.message


def mapper(**kwargs: object) -> Mapper:
    base: dict[str, object] = {"type": Pick(path=JsonPath.parse("$.type"))}
    base.update(kwargs)
    return Mapper(**base)  # type: ignore[arg-type]


def test_type_from_path_header_or_fixed_with_prefix() -> None:
    assert mapper().apply({}, DOC).type == "order.created"
    m = mapper(type=Pick(header="X-GitHub-Event"), type_prefix="github.")
    assert m.apply({"x-github-event": "push"}, DOC).type == "github.push"
    assert mapper(type=Pick(fixed="shop.order")).apply({}, DOC).type == "shop.order"


def test_missing_type_is_a_mapping_error_naming_the_header_unless_defaulted() -> None:
    m = mapper(type=Pick(header="X-GitHub-Event"))
    with pytest.raises(MappingError) as exc:
        m.apply({}, DOC)
    assert exc.value.path == "header:X-GitHub-Event"
    assert mapper(type=Pick(header="X-Kind"), type_default="unknown").apply({}, DOC).type == (
        "unknown"
    )


def test_type_that_is_not_text_is_refused() -> None:
    with pytest.raises(MappingError, match="string or an integer, got dict") as exc:
        mapper(type=Pick(path=JsonPath.parse("$.order"))).apply({}, DOC)
    assert exc.value.path == "$.order"


def test_key_and_id_accept_strings_and_integers() -> None:
    m = mapper(key=JsonPath.parse("$.order.id"), id=Pick(path=JsonPath.parse("$.order.id")))
    mapped = m.apply({}, DOC)
    assert (mapped.key, mapped.id) == ("42", "42")
    assert mapper(key=JsonPath.parse("$.nope")).apply({}, DOC).key is None


def test_required_id_missing_fails_optional_id_missing_is_none() -> None:
    m = mapper(id=Pick(header="webhook-id"), id_required=True)
    with pytest.raises(MappingError) as exc:
        m.apply({}, DOC)
    assert exc.value.path == "header:webhook-id"
    assert mapper(id=Pick(header="webhook-id")).apply({}, DOC).id is None
    assert m.apply({"Webhook-Id": "msg_1"}, DOC).id == "msg_1"


def test_required_field_missing_names_its_path_optional_is_left_out() -> None:
    fields = (
        FieldRule("email", JsonPath.parse("$.order.customer.email")),
        FieldRule("coupon", JsonPath.parse("$.order.coupon"), required=False),
        FieldRule("skus", JsonPath.parse("$.items[*].sku")),
    )
    mapped = mapper(fields=fields).apply({}, DOC)
    assert mapped.fields == {"email": "a@example.com", "skus": ["A", "B"]}
    missing = (*fields, FieldRule("total", JsonPath.parse("$.order.total")))
    with pytest.raises(MappingError) as exc:
        mapper(fields=missing).apply({}, DOC)
    assert exc.value.path == "$.order.total"
    assert "'total'" in exc.value.message


def test_pick_needs_exactly_one_source() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        Pick()
    with pytest.raises(ValueError, match="exactly one"):
        Pick(fixed="a", header="b")
