"""Short send ids: what they look like, and how what people type maps back to them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage.ids import ALPHABET, SHORT_ID_LENGTH, new_short_id, normalize_short_id


def test_new_ids_are_six_crockford_characters_without_i_l_o_u():
    made = {new_short_id() for _ in range(2000)}
    assert all(len(short_id) == SHORT_ID_LENGTH for short_id in made)
    assert set("".join(made)) <= set(ALPHABET)
    assert not set("ILOU") & set("".join(made))
    assert len(made) > 1990  # random, not a counter


@pytest.mark.parametrize(
    ("typed", "meant"),
    [
        ("7K3M9Q", "7K3M9Q"),
        ("7k3m9q", "7K3M9Q"),
        ("`7K3M9Q`", "7K3M9Q"),
        (" 7K3-M9Q ", "7K3M9Q"),
        ("O0IL1o", "001110"),
        ("il0oAB", "1100AB"),
    ],
)
def test_typed_ids_are_read_as_crockford_says(typed, meant):
    assert normalize_short_id(typed) == meant


@pytest.mark.parametrize("typed", ["", "7K3M9", "7K3M9QQ", "7K3U9Q", "7K3M9*", "a1b2c3d4-uuid"])
def test_what_cannot_be_a_short_id_is_none(typed):
    assert normalize_short_id(typed) is None


@given(st.text(alphabet=ALPHABET, min_size=6, max_size=6))
def test_every_id_survives_lower_case_and_confusable_letters(short_id):
    typed = short_id.lower().replace("0", "o").replace("1", "l")
    assert normalize_short_id(typed) == short_id
