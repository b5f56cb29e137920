"""The one error type for a bad setting, and the small checks every schema uses.

Imports nothing heavy (no JAX, no Hydra), so every layer can raise ``ConfigError`` and the
app can turn it into a short refusal.
"""

from __future__ import annotations

import math
from typing import Any


class ConfigError(ValueError):
    """A bad config value: ``key``, the offending ``value`` and what is ``allowed``."""

    def __init__(self, key: str, value: Any, allowed: str):
        self.key, self.value, self.allowed = key, value, allowed
        super().__init__(f"{key}={value!r} is invalid: {allowed}")


def require(ok: bool, key: str, value: Any, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def check_int(key: str, value, low: int, high: int | None = None, allowed: str | None = None) -> None:
    ok = is_int(value) and value >= low and (high is None or value <= high)
    default = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
    require(ok, key, value, allowed or default)


def check_real(key: str, value, low: float, high: float = math.inf, low_open: bool = False,
               high_open: bool = True) -> None:
    ok = is_real(value) and (value > low if low_open else value >= low) and (
        value < high if high_open else value <= high)
    lo = "(" if low_open else "["
    hi = ")" if high_open else "]"
    require(ok, key, value, f"a number in {lo}{low}, {high}{hi}")


def check_choice(key: str, value, choices) -> None:
    require(value in choices, key, value, f"one of {list(choices)}")
