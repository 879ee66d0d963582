"""Operations: health without secrets, OpenAPI, request ids in logs, graceful shutdown."""

from __future__ import annotations

import json
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable
from pathlib import Path

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.web.client import ApiClient
from elearn_data.web.server import ServerProcess

from .conftest import PASSWORD, client_for, start_server


def test_health_reports_every_node_without_secrets(
    server: ServerProcess, new_client: Callable[[], ApiClient], cluster: LocalCluster
) -> None:
    reply = new_client().request("GET", "/v1/health", auth=False)
    assert reply.status == 200, reply.body
    assert reply.body["ok"] is True
    assert {(n["shard"], n["role"]) for n in reply.body["nodes"]} == {
        (s, r) for s in ("na", "eu", "apac") for r in ("primary", "replica")
    }
    text = json.dumps(reply.body)
    state = cluster.state()
    settings_text = (cluster.home / "settings.json").read_text()
    secrets = [state.superuser_password, json.loads(settings_text)["db_password"]]
    for secret in secrets:
        assert secret not in text
    assert "127.0.0.1" not in text and "postgresql" not in text


def test_openapi_documents_the_routes(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    client = new_client()
    spec = client.request("GET", "/openapi.json", auth=False)
    assert spec.status == 200
    paths = spec.body["paths"]
    for path in (
        "/v1/users",
        "/v1/auth/token",
        "/v1/users/me",
        "/v1/courses",
        "/v1/courses/popular",
        "/v1/courses/{course_id}/curriculum",
        "/v1/enrollments",
        "/v1/enrollments/{enrollment_id}/progress",
        "/v1/enrollments/{enrollment_id}/lessons/{lesson_id}/complete",
        "/v1/payments",
        "/v1/health",
        "/v1/analytics/platform",
    ):
        assert path in paths, path
    schemas = spec.body["components"]["schemas"]
    assert list(schemas["ProgressView"]["properties"])[:4] == [
        "enrollment_id",
        "percentage",
        "completed_lessons",
        "total_lessons",
    ]
    docs = client._connection()
    docs.request("GET", "/docs")
    page = docs.getresponse()
    assert page.status == 200
    assert b"swagger" in page.read().lower()


def test_request_ids_are_echoed_and_logged(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    client = new_client()
    request_id = f"test-{uuid.uuid4().hex}"
    reply = client.request(
        "GET", f"/v1/courses/{uuid.uuid4()}", auth=False, headers={"X-Request-ID": request_id}
    )
    assert reply.headers["x-request-id"] == request_id
    # A value that is not a sane token is replaced, not logged as given.
    odd = client.request("GET", "/v1/health/live", headers={"X-Request-ID": "a b\tc"})
    assert odd.headers["x-request-id"] != "a b\tc"
    for _ in range(50):
        if request_id in server.log_path.read_text():
            break
        time.sleep(0.1)
    lines = [line for line in server.log_path.read_text().splitlines() if request_id in line]
    assert any("GET /v1/courses/" in line and " 404 " in line for line in lines), lines


def test_shutdown_lets_in_flight_requests_finish(
    cluster: LocalCluster, migrated: Settings, tmp_path: Path
) -> None:
    proc = start_server(cluster, tmp_path, "shutdown")
    results: list[int] = []
    started = threading.Event()

    def register_slowly() -> None:
        client = client_for(proc)
        started.set()
        reply = client.request(
            "POST",
            "/v1/users",
            {
                "email": f"bye-{uuid.uuid4().hex[:10]}@example.org",
                "password": PASSWORD,
                "first_name": "Last",
                "last_name": "Call",
                "region": "europe",
            },
            auth=False,
        )
        results.append(reply.status)

    thread = threading.Thread(target=register_slowly)
    thread.start()
    started.wait(10)
    # Time to connect and send; a request that is answered before the signal passes too.
    time.sleep(0.3)
    code = proc.stop(timeout_s=60)
    thread.join(60)
    assert results == [201]
    assert code == 0
    log = proc.log_path.read_text()
    assert log.count("closing pools") == 2
    assert log.count("Application shutdown complete") == 2


def test_metrics_are_served_when_enabled(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    new_client().request("GET", "/v1/courses/popular", auth=False)
    with urllib.request.urlopen(f"http://{server.host}:{server.port}/metrics", timeout=30) as reply:
        body = reply.read().decode()
        assert reply.headers["Content-Type"].startswith("text/plain")
    assert "elearn_node_up" in body
    assert "elearn_twophase_in_doubt" in body
