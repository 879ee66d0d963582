"""The embedded local cluster (see :mod:`elearn_data.cluster.local`)."""

from elearn_data.cluster.local import LocalCluster, NodeStatus, find_free_base_port

__all__ = ["LocalCluster", "NodeStatus", "find_free_base_port"]
