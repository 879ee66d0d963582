"""Rate limits hold across both workers (one shared store), per address and per account."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.web.client import ApiClient
from elearn_data.web.ratelimit import RateLimiter
from elearn_data.web.server import ServerProcess

from .conftest import register, start_server

PER_ADDRESS = 30
PER_ACCOUNT = 12
# Long windows: no slot comes back while a test runs (the refill is one per window/limit).
WINDOW_S = 600


@pytest.fixture(scope="module")
def tight(
    cluster: LocalCluster, migrated: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ServerProcess, Path]]:
    tmp = tmp_path_factory.mktemp("web-tight")
    proc = start_server(
        cluster,
        tmp,
        "tight",
        ELEARN_WEB__PER_ADDRESS__REQUESTS=str(PER_ADDRESS),
        ELEARN_WEB__PER_ADDRESS__PER_S=str(WINDOW_S),
        ELEARN_WEB__PER_ACCOUNT__REQUESTS=str(PER_ACCOUNT),
        ELEARN_WEB__PER_ACCOUNT__PER_S=str(WINDOW_S),
    )
    yield proc, tmp / "tight-ratelimit.sqlite3"
    proc.stop()


def _connections_to_both_workers(
    proc: ServerProcess, source: str, *, at_least: int = 8, at_most: int = 64
) -> list[http.client.HTTPConnection]:
    """Open keep-alive connections until both workers hold some (which worker accepts
    a connection is the kernel's choice); health probes are never rate limited."""
    conns: list[http.client.HTTPConnection] = []
    workers: set[str] = set()
    while len(conns) < at_most and (len(conns) < at_least or len(workers) < 2):
        conn = http.client.HTTPConnection(
            proc.host, proc.port, timeout=30, source_address=(source, 0)
        )
        conn.request("GET", "/v1/health/live")
        response = conn.getresponse()
        response.read()
        workers.add(response.getheader("x-elearn-worker") or "")
        conns.append(conn)
    return conns


def burst(proc: ServerProcess, path: str, n: int, *, source: str = "127.0.0.1", token: str = ""):
    """Send ``n`` requests over connections held by both workers (so both answer)."""
    conns = _connections_to_both_workers(proc, source)
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    replies = []
    try:
        for i in range(n):
            conn = conns[i % len(conns)]
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            replies.append(
                (response.status, dict(response.getheaders()), json.loads(response.read()))
            )
    finally:
        for conn in conns:
            conn.close()
    return replies


def test_the_address_limit_holds_across_both_workers(tight: tuple[ServerProcess, Path]) -> None:
    proc, store = tight
    RateLimiter(store).reset()
    replies = burst(proc, "/v1/courses/popular", 2 * PER_ADDRESS)
    allowed = [r for r in replies if r[0] == 200]
    refused = [r for r in replies if r[0] == 429]
    assert len(allowed) == PER_ADDRESS
    assert len(refused) == PER_ADDRESS
    # Both workers answered: per-process counters would have let all of them through.
    assert len({r[1]["x-elearn-worker"] for r in replies}) == 2
    _status, headers, body = refused[0]
    assert body["error"] == "RateLimited"
    assert int(headers["retry-after"]) >= 1
    # Another client address has its own bucket.
    other = burst(proc, "/v1/courses/popular", 3, source="127.0.0.2")
    assert [r[0] for r in other] == [200, 200, 200]
    # Health checks are never limited.
    assert [r[0] for r in burst(proc, "/v1/health/live", 5)] == [200] * 5


def test_the_account_limit_holds_across_both_workers_and_addresses(
    tight: tuple[ServerProcess, Path],
) -> None:
    proc, store = tight
    RateLimiter(store).reset()
    client = ApiClient(proc.host, proc.port)
    register(client)
    token = client.access_token or ""
    causal = client.causal
    first = burst(proc, "/v1/users/me", PER_ACCOUNT // 2, source="127.0.0.3", token=token)
    second = burst(proc, "/v1/users/me", PER_ACCOUNT, source="127.0.0.4", token=token)
    statuses = [r[0] for r in first + second]
    assert statuses.count(200) == PER_ACCOUNT
    assert statuses.count(429) == PER_ACCOUNT // 2
    assert len({r[1]["x-elearn-worker"] for r in first + second}) == 2
    refused = [r for r in first + second if r[0] == 429]
    assert refused[0][2]["error"] == "RateLimited"
    assert "account" in refused[0][2]["message"]
    # A refused call hands the caller's causal token back unchanged.
    again = client.request("GET", "/v1/users/me")
    assert again.status == 429
    assert again.causal == causal
    client.close()
    # Another account from the same address is not affected.
    other = ApiClient(
        proc.host,
        proc.port,
    )
    register(other)
    assert other.request("GET", "/v1/users/me").status == 200
    other.close()
