"""The `elearn cluster` commands as a user runs them."""

from __future__ import annotations

import json
import os
import subprocess
import sys

from elearn_data.cluster.local import LocalCluster


def elearn(cluster: LocalCluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "ELEARN_HOME": str(cluster.home)}
    return subprocess.run(
        [sys.executable, "-m", "elearn_data.cli", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_status_json_shows_three_primaries_each_streaming_to_a_replica(
    cluster: LocalCluster,
) -> None:
    proc = elearn(cluster, "cluster", "status", "--json")
    assert proc.returncode == 0, proc.stderr
    nodes = json.loads(proc.stdout)
    keys = {"shard", "role", "host", "port", "dbname", "data_dir", "up", "in_recovery"}
    assert all(keys | {"replay_lag_bytes"} <= set(n) for n in nodes)
    primaries = {n["shard"]: n for n in nodes if n["role"] == "primary"}
    replicas = {n["shard"]: n for n in nodes if n["role"] == "replica"}
    assert set(primaries) == set(replicas) == {"na", "eu", "apac"}
    assert all(n["up"] and n["in_recovery"] is False for n in primaries.values())
    assert all(n["up"] and n["in_recovery"] is True for n in replicas.values())


def test_status_table_and_second_up_succeed(cluster: LocalCluster) -> None:
    proc = elearn(cluster, "cluster", "up")
    assert proc.returncode == 0, proc.stderr
    assert "cluster ready" in proc.stdout
    proc = elearn(cluster, "cluster", "status")
    assert proc.returncode == 0
    assert "apac-1" in proc.stdout


def test_unknown_shard_is_a_one_line_error(cluster: LocalCluster) -> None:
    proc = elearn(cluster, "cluster", "stop", "mars")
    assert proc.returncode == 1
    assert "unknown shard 'mars'" in proc.stderr
    assert "Traceback" not in proc.stderr
