"""`rllib_mag.validation`: each rule's boundaries and its message."""

from __future__ import annotations

import re

import pytest

from rllib_mag.validation import (check_bool, check_choice, check_int, check_non_negative, check_open_unit,
                                  check_positive, check_unit)


@pytest.mark.parametrize("check, args, good, bad, rule", [
    (check_int, (1,), [1, 7], [0, 1.0, True, "3"], "an int >= 1"),
    (check_positive, (), [1e-9, 3], [0, -1.0, "1", None, True], "> 0"),
    (check_non_negative, (), [0, 0.0, 2.5], [-1e-9, "0"], ">= 0"),
    (check_unit, (), [1.0, 0.5, 1e-6], [0.0, 1.0001, "0.99"], r"in \(0, 1\]"),
    (check_open_unit, (), [0.5, 1e-6], [0.0, 1.0], r"in \(0, 1\)"),
    (check_choice, (("a", "b"),), ["a", "b"], ["c", None], r"one of \('a', 'b'\)"),
    (check_bool, (), [True, False], [1, "true", None], "true or false"),
])
def test_rules_accept_their_range_and_name_the_bad_value(check, args, good, bad, rule):
    for value in good:
        check("x", value, *args)
    for value in bad:
        with pytest.raises(ValueError, match=rf"^x={re.escape(repr(value))} is invalid: must be {rule}"):
            check("x", value, *args)


def test_numbers_given_as_strings_get_the_quotes_hint():
    with pytest.raises(ValueError, match=r"lr='5e-4' is invalid: must be > 0 \(a string: write the number without "
                                         r"quotes\)"):
        check_positive("lr", "5e-4")
    with pytest.raises(ValueError) as info:
        check_positive("lr", "fast")
    assert "quotes" not in str(info.value)
