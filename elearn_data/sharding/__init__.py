"""Routing across shards: node map, sharded sessions, causal reads, two-phase commit."""
