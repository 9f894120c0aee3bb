"""Fixtures of the MAG algorithm tests."""

import pytest
import ray


@pytest.fixture
def ray_local():
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
