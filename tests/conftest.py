"""Shared fixtures. Strict promotion makes silent dtype or rank broadcasting fail loudly."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")
jax.config.update("jax_numpy_dtype_promotion", "strict")


@pytest.fixture
def x64():
    """Runs a test in float64 (arrays created inside are float64 by default)."""
    with jax.enable_x64(True):
        yield
