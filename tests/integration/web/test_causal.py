"""Read-your-writes across workers: a write through one worker, the read through the other.

The client keeps two connections, each answered by a different worker (checked
on every response by ``X-Elearn-Worker``), and sends back the causal token of
the write with the read. Every round's write moves the progress (time spent
accumulates), so a read that misses the write is seen as stale.
"""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable

from elearn_data.web.client import ApiClient
from elearn_data.web.server import ServerProcess

from .conftest import make_course, register

ROUNDS = 1000
# Bounds the run on a slow machine: the rounds stop early (and the test fails) past it.
BUDGET_S = 300.0


def two_workers(
    server: ServerProcess, new_client: Callable[[], ApiClient], token: str
) -> tuple[ApiClient, ApiClient]:
    """Two clients whose keep-alive connections are served by two different workers."""
    by_worker: dict[str, ApiClient] = {}
    for _ in range(64):
        batch = [new_client() for _ in range(4)]
        for client in batch:
            client.access_token = token
            client._connection().connect()
        for client in batch:
            reply = client.request("GET", "/v1/health/live", follow_causal=False)
            by_worker.setdefault(reply.worker, client)
        if len(by_worker) >= 2:
            first, second = list(by_worker.values())[:2]
            return first, second
    raise AssertionError(f"only workers {sorted(by_worker)} answered")


def test_a_thousand_writes_read_through_the_other_worker_are_never_stale(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    course = make_course(server, lessons=1)
    learner = new_client()
    register(learner)
    enrolled = learner.request("POST", "/v1/enrollments", {"course_id": course.id})
    assert enrolled.status == 201
    eid, lesson = enrolled.body["id"], course.lessons[0]
    writer, reader = two_workers(server, new_client, learner.access_token or "")
    stale = rounds = 0
    workers_seen: set[tuple[str, str]] = set()
    deadline = time.monotonic() + BUDGET_S
    for n in range(1, ROUNDS + 1):
        if time.monotonic() > deadline:
            break
        wrote = writer.request(
            "POST",
            f"/v1/enrollments/{eid}/lessons/{lesson}/complete",
            {"time_spent_minutes": 1},
            send_causal=False,
        )
        assert wrote.status == 200, wrote.body
        reader.causal = wrote.causal
        read = reader.request("GET", f"/v1/enrollments/{eid}/progress")
        assert read.status == 200, read.body
        assert read.worker != wrote.worker
        workers_seen.add((wrote.worker, read.worker))
        spent = read.body["lessons"][0]["time_spent_minutes"]
        stale += spent < n
        rounds += 1
        # The next write starts from the read's token, as a browser would carry it.
        writer.causal = read.causal
    print(f"causal reads across workers: {rounds} rounds, {stale} stale")
    assert rounds == ROUNDS
    assert stale == 0
    assert len(workers_seen) == 1
    # The token names the learner's shard at a real WAL position.
    payload = json.loads(base64.urlsafe_b64decode(wrote.causal.split(".")[1] + "=="))
    assert set(payload) == {"eu"} and payload["eu"] > 0
    # The same rounds without the header, for the record: reads as fresh as the replica
    # policy allows (not asserted: replay on loopback is usually, not always, fast).
    unsynced = 0
    for n in range(ROUNDS + 1, ROUNDS + 201):
        writer.request(
            "POST",
            f"/v1/enrollments/{eid}/lessons/{lesson}/complete",
            {"time_spent_minutes": 1},
            send_causal=False,
        )
        read = reader.request("GET", f"/v1/enrollments/{eid}/progress", send_causal=False)
        unsynced += read.body["lessons"][0]["time_spent_minutes"] < n
    print(f"without the header: 200 rounds, {unsynced} stale")


def test_the_response_token_is_signed_and_a_forged_one_is_refused(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    client = new_client()
    register(client)
    reply = client.request("GET", "/v1/users/me")
    token = reply.causal
    assert token is not None and token.count(".") == 2
    kid, payload, mac = token.split(".")
    forged = client.request(
        "GET", "/v1/users/me", headers={"X-Elearn-Causal-Token": f"{kid}.{payload}.{mac[::-1]}"}
    )
    assert forged.status == 422
    assert forged.body["error"] == "InvalidInput"
    garbage = client.request("GET", "/v1/users/me", headers={"X-Elearn-Causal-Token": "x"})
    assert garbage.status == 422
