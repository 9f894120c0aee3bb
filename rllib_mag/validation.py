"""Checks shared by the torch core's settings (`PlanningConfig`, `PPOConfig`) and `MAGConfig`: one rule per
setting and one message style, `name=value is invalid: must be ...` (`MAGConfig` prefixes its class name)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def _invalid(name: str, value: Any, rule: str) -> ValueError:
    hint = ""
    if isinstance(value, str):
        try:
            float(value)
            hint = " (a string: write the number without quotes)"
        except ValueError:
            pass
    return ValueError(f"{name}={value!r} is invalid: must be {rule}{hint}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value: Any, low: int) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise _invalid(name, value, f"an int >= {low}")


def check_positive(name: str, value: Any) -> None:
    if not _is_number(value) or not value > 0:
        raise _invalid(name, value, "> 0")


def check_non_negative(name: str, value: Any) -> None:
    if not _is_number(value) or not value >= 0:
        raise _invalid(name, value, ">= 0")


def check_unit(name: str, value: Any) -> None:
    """In (0, 1]: discounts, lambda, annealing factors."""
    if not _is_number(value) or not 0.0 < value <= 1.0:
        raise _invalid(name, value, "in (0, 1]")


def check_open_unit(name: str, value: Any) -> None:
    """In (0, 1): probabilities used as thresholds."""
    if not _is_number(value) or not 0.0 < value < 1.0:
        raise _invalid(name, value, "in (0, 1)")


def check_choice(name: str, value: Any, options: Sequence[Any]) -> None:
    if value not in options:
        raise _invalid(name, value, f"one of {tuple(options)}")


def check_bool(name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise _invalid(name, value, "true or false")
