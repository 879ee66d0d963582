"""Server ports stay below the ephemeral range; a busy default range is skipped."""

from __future__ import annotations

import socket

import pytest

from elearn_data.cluster import local
from elearn_data.cluster.local import (
    DEFAULT_BASE_PORT,
    MAX_SERVER_PORT,
    PORTS_PER_SHARD,
    find_free_base_port,
    first_free_base_port,
)
from elearn_data.errors import ConfigurationError


def test_the_default_range_lies_below_the_ephemeral_range() -> None:
    low, _ = local.ephemeral_port_range()
    assert DEFAULT_BASE_PORT + 3 * PORTS_PER_SHARD <= MAX_SERVER_PORT < 32768 <= low


def test_the_first_free_range_skips_a_busy_port() -> None:
    start = first_free_base_port()
    assert start >= DEFAULT_BASE_PORT and start + 30 <= MAX_SERVER_PORT + 1
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", start + 17))
        busy.listen()
        chosen = first_free_base_port(start=start)
        # Bases step by 10: start and start + 10 hold the busy port, start + 20 is next.
        assert chosen >= start + 20


def test_no_free_range_says_what_to_do() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        busy.listen()
        with pytest.raises(ConfigurationError, match=r"pass --base-port P \(below 32768\)"):
            first_free_base_port(start=port, end=port + 30, span=30)


def test_test_clusters_take_random_ranges_below_the_default_one() -> None:
    for _ in range(20):
        base = find_free_base_port()
        assert base + 40 <= DEFAULT_BASE_PORT


def test_a_busy_chosen_port_in_the_ephemeral_range_names_the_range_and_the_fix() -> None:
    low, high = local.ephemeral_port_range()
    message = local._busy_port_message(low + 5, fresh=True, chosen=True)
    assert f"ephemeral range {low}-{high}" in message
    assert "--base-port" in message and "below 32768" in message
