"""An HA server that stops before it is ready is reported with how it ended."""

from __future__ import annotations

import shutil
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from elearn_data.cluster.ha import HACluster
from tests.support import make_home


@pytest.fixture
def cluster() -> Iterator[HACluster]:
    home = make_home("elearn-ha-procs-")
    made = HACluster(home)
    made.patroni_root.mkdir()
    made.patroni_root.chmod(0o777)  # the servers run as the server user
    try:
        yield made
    finally:
        shutil.rmtree(home, ignore_errors=True)


def ended(cluster: HACluster, script: str) -> Path:
    """Start ``script`` as a server would be, write its pid file, and wait for its end."""
    proc = cluster._spawn(["/bin/sh", "-c", script], cluster.patroni_root / "server.log")
    pid_file = cluster.patroni_root / "server.pid"
    pid_file.write_text(f"{proc.pid}\n")
    deadline = time.monotonic() + 30
    while proc.pid in cluster._procs and time.monotonic() < deadline:
        cluster._reap()
        time.sleep(0.01)
    return pid_file


def test_a_server_that_exits_is_reported_with_its_status(cluster: HACluster) -> None:
    assert cluster._not_running(ended(cluster, "exit 3")).endswith("exited with status 3")


def test_a_server_that_is_killed_is_reported_with_the_signal(cluster: HACluster) -> None:
    why = cluster._not_running(ended(cluster, "kill -KILL $$"))
    assert why.endswith(f"was killed by signal {int(signal.SIGKILL)} (Killed)")


def test_a_missing_pid_file_is_named(cluster: HACluster) -> None:
    assert cluster._not_running(cluster.patroni_root / "absent.pid").startswith("no pid in")
