"""Operators' read side: cross-shard invariants, statement statistics, metrics, deep health."""
