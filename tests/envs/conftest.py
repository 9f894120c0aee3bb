"""Shared, session-scoped env instances so that each SMAX scenario compiles once per test run."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from rllib_mag.envs.smax import SMAXBackend


@pytest.fixture(scope="session")
def smax() -> Iterator[SMAXBackend]:
    """3s_vs_5z with SMAC's limit (250); tests reset it as they need."""
    backend = SMAXBackend("3s_vs_5z", seed=0)
    yield backend
    backend.close()


@pytest.fixture(scope="session")
def smax_short() -> Iterator[SMAXBackend]:
    """3m with a 5-step limit (units never meet within it)."""
    backend = SMAXBackend("3m", seed=0, episode_limit=5)
    yield backend
    backend.close()
