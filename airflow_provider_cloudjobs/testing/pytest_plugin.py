"""Pytest fixtures for the cloud simulator; enable with ``pytest_plugins = [this module]``.

One server per test session (starting aiohttp per test would dominate small tests' run time), and a
function-scoped fixture that resets it so every test starts with no jobs, faults, tokens or counts.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from airflow_provider_cloudjobs.testing.simulator import CloudSimulator


@pytest.fixture(scope="session")
def cloud_simulator_server() -> Iterator[CloudSimulator]:
    """The session's simulator, listening on 127.0.0.1 on a free port."""
    simulator = CloudSimulator().start()
    try:
        yield simulator
    finally:
        simulator.stop()


@pytest.fixture
def cloud_simulator(cloud_simulator_server: CloudSimulator) -> CloudSimulator:
    """The session's simulator, reset: no jobs, faults or tokens, zeroed stats, default accounts, config."""
    cloud_simulator_server.reset()
    return cloud_simulator_server
