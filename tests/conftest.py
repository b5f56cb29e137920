"""Shared fixtures. Rank promotion raises everywhere, so silent broadcasting fails loudly;
the maths modules also run under strict dtype promotion (optax itself is not strict-clean,
so the engine tests use JAX's standard promotion)."""

import jax
import pytest

jax.config.update("jax_numpy_rank_promotion", "raise")


@pytest.fixture
def strict_dtypes():
    with jax.numpy_dtype_promotion("strict"):
        yield


@pytest.fixture
def x64():
    """Runs a test in float64 (arrays created inside are float64 by default)."""
    with jax.enable_x64(True):
        yield


@pytest.fixture(scope="session", autouse=True)
def _compile_cache_for_subprocesses(tmp_path_factory):
    import cli

    cli.CACHE_DIR = str(tmp_path_factory.mktemp("xla-cache"))
