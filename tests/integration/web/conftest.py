"""A real ``elearn serve`` with two workers over the session's cluster, and HTTP helpers.

The server is a child process started on a free port below 32768 and stopped
with SIGTERM; the tests talk to it over loopback only, with bounded loops.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from elearn_data.cluster.local import LocalCluster
from elearn_data.config import Settings
from elearn_data.web.client import ApiClient
from elearn_data.web.server import ServerProcess

PASSWORD = "correct horse battery"

# Cheap argon2 (the tests exercise logic, not the hash) and a quick recoverer.
BASE_ENV = {
    "ELEARN_ARGON2_TIME_COST": "1",
    "ELEARN_ARGON2_MEMORY_KIB": "8192",
    "ELEARN_ARGON2_ALLOW_WEAK": "true",
}


def start_server(cluster: LocalCluster, tmp: Path, name: str, **env: str) -> ServerProcess:
    store = tmp / f"{name}-ratelimit.sqlite3"
    full = {**BASE_ENV, "ELEARN_WEB__RATE_LIMIT_STORE": str(store), **env}
    server = ServerProcess(cluster.home, workers=2, env=full, log_path=tmp / f"{name}.log")
    return server.start()


# Package scope: the server stops when the web tests are done, not at the end of the session.
@pytest.fixture(scope="package")
def server(
    cluster: LocalCluster, migrated: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """Two workers with limits generous enough for the load run."""
    proc = start_server(
        cluster,
        tmp_path_factory.mktemp("web"),
        "main",
        ELEARN_WEB__PER_ADDRESS__REQUESTS="1000000",
        ELEARN_WEB__PER_ACCOUNT__REQUESTS="1000000",
        ELEARN_WEB__METRICS_ENABLED="true",
    )
    yield proc
    proc.stop()


@dataclass
class Course:
    id: str
    lessons: list[str]
    instructor: ApiClient


def client_for(server: ServerProcess) -> ApiClient:
    return ApiClient(server.host, server.port)


def register(client: ApiClient, *, role: str = "student", region: str = "europe") -> str:
    """Register a new user with a unique email and log the client in; return the email."""
    email = f"web-{uuid.uuid4().hex[:12]}@example.org"
    reply = client.request(
        "POST",
        "/v1/users",
        {
            "email": email,
            "password": PASSWORD,
            "first_name": "Web",
            "last_name": "Tester",
            "region": region,
            "role": role,
        },
        auth=False,
    )
    assert reply.status == 201, reply.body
    login = client.login(email, PASSWORD)
    assert login.status == 200, login.body
    return email


def make_course(
    server: ServerProcess, *, lessons: int = 2, max_enrollments: int | None = None
) -> Course:
    """An instructor (through the API) and a published course with ``lessons`` lessons."""
    teacher = client_for(server)
    register(teacher, role="instructor", region="north_america")
    body: dict[str, object] = {"code": f"W{uuid.uuid4().hex[:10]}", "title": "Web course"}
    if max_enrollments is not None:
        body["max_enrollments"] = max_enrollments
    created = teacher.request("POST", "/v1/courses", body)
    assert created.status == 201, created.body
    course_id = created.body["id"]
    module = teacher.request(
        "POST", f"/v1/courses/{course_id}/modules", {"title": "Module", "order": 1}
    )
    assert module.status == 201, module.body
    lesson_ids = []
    for n in range(lessons):
        lesson = teacher.request(
            "POST",
            f"/v1/modules/{module.body['id']}/lessons",
            {"title": f"Lesson {n}", "order": n + 1, "lesson_type": "reading"},
        )
        assert lesson.status == 201, lesson.body
        lesson_ids.append(lesson.body["id"])
    published = teacher.request("POST", f"/v1/courses/{course_id}/publish")
    assert published.status == 204, published.body
    return Course(course_id, lesson_ids, teacher)


@pytest.fixture
def new_client(server: ServerProcess) -> Iterator[Callable[[], ApiClient]]:
    made: list[ApiClient] = []

    def factory() -> ApiClient:
        made.append(client_for(server))
        return made[-1]

    yield factory
    for client in made:
        client.close()
