"""The replica selector's bookkeeping, without a server: when a lag check is due.

``time.monotonic()`` counts from boot, so a machine up for less than a check
interval reads small values. A replica nobody has checked yet must be checked
on first use whatever the clock says; it once counted as "checked at 0.0",
which on a freshly booted CI machine (and with a long ``check_interval_s``)
made every replica look lagging, and every read went to the primary.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from elearn_data.config import ReplicaPolicy
from elearn_data.sharding import consistency
from elearn_data.sharding.consistency import Remaining, ReplicaSelector
from elearn_data.sharding.engines import Node, NodeHealth


class _Engines:
    """The part of EngineMap the selector reads: one shard, one replica."""

    shards = ("eu",)

    def __init__(self, replica: Node) -> None:
        self._replica = replica

    def replicas(self, shard: str) -> list[Node]:
        return [self._replica]


@pytest.mark.parametrize("uptime_s", [0.5, 5.0, 1_800.0, 10_000_000.0])
def test_a_replica_never_checked_is_checked_on_first_use_however_long_the_machine_is_up(
    uptime_s: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The selector's clock only (the module's name for time), not the process's.
    monkeypatch.setattr(consistency, "time", SimpleNamespace(monotonic=lambda: uptime_s))
    replica = Node("eu", "replica", "postgresql://replica", engine=None)  # type: ignore[arg-type]
    engines: Any = _Engines(replica)
    selector = ReplicaSelector(engines, ReplicaPolicy(check_interval_s=3600.0))

    left = selector.connect_pooled("eu", None)

    # Not skipped as "too far behind at the last check": handed on for its lag check.
    assert left == Remaining([replica], True)


def test_a_new_node_health_has_no_lag_check_behind_it() -> None:
    health = NodeHealth()
    assert health.lag_bytes is None
    assert health.lag_checked_at == float("-inf")
