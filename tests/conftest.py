"""Shared fixtures: the real clinical tables of ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest


def pytest_configure(config):
    """Share compiled XLA programs between tests (many fit the same model)."""
    import tempfile

    import jax

    cache = os.environ.get("PSYGENTAB_TEST_JAX_CACHE") or tempfile.mkdtemp(
        prefix="psygentab-jax-cache-"
    )
    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)


ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("PSYGENTAB_DATA", ROOT.parent / "shared" / "data"))
TABLES = [
    "heart_disease_uci",
    "covid_testing",
    "thyroid",
    "support2",
    "aids_actg320",
    "wdbc",
    "pima",
]


def shared_table(name: str):
    """Read one shared table; skip (with the reason) if the folder is absent."""
    import pandas as pd

    path = SHARED / f"{name}.csv"
    if not path.is_file():
        pytest.skip(f"shared data not found at {path}")
    return pd.read_csv(path)
