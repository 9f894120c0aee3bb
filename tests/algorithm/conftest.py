"""Fixtures of the MAG algorithm tests."""

import pytest
import ray


@pytest.fixture
def ray_local():
    import rllib_mag

    rllib_mag.register()  # Tune's registry lives in the cluster: fill the one this test starts
    ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()
