"""pytest fixtures for free ports that stay free: ``free_port`` and ``free_port_factory``.

Registered through the ``pytest11`` entry point, so every pytest run in an environment
with homeport installed loads it. It therefore imports nothing but pytest at load time
and defines fixtures only; homeport's port machinery is imported when a test first asks.

Why not ``bind(0)``: the kernel hands out numbers from the ephemeral range and reuses them
quickly, so parallel workers (pytest-xdist) collide. These fixtures pick outside the
ephemeral range, check every family and wildcard, and take a cross-process lease held by
the worker process: no other worker — and no other homeport user on this machine — gets
the same number while the worker lives. Within one worker a port is never handed out twice.

The lease directory is fixed when the plugin is configured, before any test changes
``HOMEPORT_STATE_DIR``, so tests that isolate their state still share one lease pool::

    def test_server(free_port):
        server = start_server(port=free_port)

    def test_cluster(free_port_factory):
        a, b = free_port_factory(), free_port_factory()
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

_LEASE_DIR: list[Path] = []


def pytest_configure(config: pytest.Config) -> None:
    """Remember where leases live before tests monkeypatch the environment."""
    from homeport.paths import state_dir

    # create=False: loading the plugin must not write anywhere; the lease store
    # creates its directory on first use.
    _LEASE_DIR[:] = [state_dir(create=False) / "leases"]


def _pick() -> int:
    from homeport.ports import free_port

    # ttl=None: the lease lasts as long as this worker process lives.
    try:
        return free_port(ttl=None, lease_dir=_LEASE_DIR[0] if _LEASE_DIR else None)
    except OSError:
        # A read-only or unwritable home (some CI containers): share leases through
        # the temp dir instead, so workers still coordinate with each other.
        import tempfile

        fallback = Path(tempfile.gettempdir()) / f"homeport-leases-{os.getuid()}"
        _LEASE_DIR[:] = [fallback]
        return free_port(ttl=None, lease_dir=fallback)


@pytest.fixture
def free_port_factory() -> Callable[[], int]:
    """A callable returning a new free TCP port on each call, leased to this worker."""
    return _pick


@pytest.fixture
def free_port(free_port_factory: Callable[[], int]) -> int:
    """A free TCP port (IPv4 and IPv6, TCP and UDP), leased to this worker process."""
    return free_port_factory()
