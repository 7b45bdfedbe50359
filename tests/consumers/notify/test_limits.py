"""Visible, deterministic truncation in UTF-16 units (pure; a property test over any text)."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from consumers.notify.limits import fit, units


def test_text_that_fits_is_untouched() -> None:
    assert fit("x" * 2000, 2000) == "x" * 2000


def test_cut_text_says_how_much_was_left_out() -> None:
    out = fit("x" * 2500, 2000)
    assert units(out) <= 2000
    assert out.endswith("… [+" + str(2500 - out.index("…")) + " chars]")


def test_emoji_count_as_two_units_and_are_never_split() -> None:
    text = "😀" * 1500  # 3000 UTF-16 units
    assert units(text) == 3000
    out = fit(text, 2000)
    assert units(out) <= 2000
    assert out.split("…")[0] == "😀" * len(out.split("…")[0])


def test_tiny_limits_cut_without_a_marker() -> None:
    assert fit("abcdefgh", 3) == "abc"


@given(st.text(max_size=300), st.integers(min_value=0, max_value=320))
def test_fit_always_fits_and_is_deterministic(text: str, limit: int) -> None:
    out = fit(text, limit)
    assert units(out) <= limit
    assert out == fit(text, limit)
    if units(text) <= limit:
        assert out == text
