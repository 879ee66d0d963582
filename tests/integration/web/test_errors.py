"""Every error class over HTTP: its status, the one body shape, and nothing leaked."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from typing import Any

from elearn_data.cluster.local import LocalCluster
from elearn_data.web.client import ApiClient, Reply
from elearn_data.web.server import ServerProcess

from .conftest import PASSWORD, make_course, register

LEAKS = ("Traceback", "SELECT", "INSERT", "psycopg2", "sqlalchemy", "postgresql://", "password=")


def assert_error(reply: Reply, status: int, error: str) -> None:
    assert reply.status == status, reply.body
    assert set(reply.body) == {"error", "message"}, reply.body
    assert reply.body["error"] == error, reply.body
    text = json.dumps(reply.body)
    for leak in LEAKS:
        assert leak not in text, reply.body
    assert PASSWORD not in text
    # Errors carry the causal token and the request id like every response.
    assert reply.causal is not None
    assert reply.headers.get("x-request-id")


def new_user_body(**overrides: Any) -> dict[str, Any]:
    body = {
        "email": f"err-{uuid.uuid4().hex[:12]}@example.org",
        "password": PASSWORD,
        "first_name": "Err",
        "last_name": "Case",
        "region": "europe",
    }
    body.update(overrides)
    return body


def test_not_found_is_404(server: ServerProcess, new_client: Callable[[], ApiClient]) -> None:
    client = new_client()
    register(client)
    assert_error(client.request("GET", f"/v1/courses/{uuid.uuid4()}"), 404, "NotFound")
    assert_error(client.request("GET", "/v1/courses/not-an-id"), 404, "NotFound")
    assert_error(client.request("GET", f"/v1/enrollments/{uuid.uuid4()}/progress"), 404, "NotFound")
    assert_error(client.request("GET", "/v1/no/such/route"), 404, "NotFound")


def test_invalid_input_is_422(server: ServerProcess, new_client: Callable[[], ApiClient]) -> None:
    client = new_client()
    post = client.request
    assert_error(
        post("POST", "/v1/users", new_user_body(email="not an email"), auth=False),
        422,
        "InvalidInput",
    )
    assert_error(
        post("POST", "/v1/users", new_user_body(password="short"), auth=False), 422, "InvalidInput"
    )
    assert_error(
        post("POST", "/v1/users", new_user_body(region="atlantis"), auth=False),
        422,
        "UnknownRegion",
    )
    # A body the model refuses (unknown field, missing field): same shape, password not echoed.
    assert_error(
        post("POST", "/v1/users", new_user_body(is_admin=True), auth=False), 422, "InvalidInput"
    )
    assert_error(post("POST", "/v1/auth/token", {"email": "x"}, auth=False), 422, "InvalidInput")
    assert_error(
        post("POST", "/v1/users", new_user_body(role="admin"), auth=False), 422, "InvalidInput"
    )
    register(client)
    assert_error(client.request("GET", "/v1/courses?limit=100000"), 422, "InvalidInput")
    assert_error(
        client.request("POST", "/v1/enrollments", {"course_id": "nope"}), 422, "InvalidInput"
    )


def test_conflicts_are_409(server: ServerProcess, new_client: Callable[[], ApiClient]) -> None:
    body = new_user_body()
    first = new_client()
    assert first.request("POST", "/v1/users", body, auth=False).status == 201
    assert_error(first.request("POST", "/v1/users", body, auth=False), 409, "DuplicateEmail")

    course = make_course(server, lessons=1, max_enrollments=1)
    learner = new_client()
    register(learner)
    assert learner.request("POST", "/v1/enrollments", {"course_id": course.id}).status == 201
    assert_error(
        learner.request("POST", "/v1/enrollments", {"course_id": course.id}),
        409,
        "AlreadyEnrolled",
    )
    other = new_client()
    register(other, region="asia")
    assert_error(
        other.request("POST", "/v1/enrollments", {"course_id": course.id}), 409, "CourseFull"
    )
    # Publishing a course without lessons breaks a rule of its state.
    teacher = course.instructor
    empty = teacher.request(
        "POST", "/v1/courses", {"code": f"E{uuid.uuid4().hex[:8]}", "title": "E"}
    )
    assert empty.status == 201
    assert_error(
        teacher.request("POST", f"/v1/courses/{empty.body['id']}/publish"), 409, "InvalidState"
    )
    duplicate_code = teacher.request(
        "POST", "/v1/courses", {"code": f"E{uuid.uuid4().hex[:8]}", "title": "E"}
    )
    code = teacher.request("GET", f"/v1/courses/{duplicate_code.body['id']}").body["code"]
    assert_error(
        teacher.request("POST", "/v1/courses", {"code": code, "title": "again"}), 409, "Duplicate"
    )


def test_authentication_is_401_and_authorisation_403(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    anonymous = new_client()
    assert_error(anonymous.request("GET", "/v1/users/me"), 401, "Unauthorized")
    anonymous.access_token = "not.a.jwt"
    assert_error(anonymous.request("GET", "/v1/users/me"), 401, "Unauthorized")
    email = register(new_client())
    wrong = anonymous.login(email, "wrong password!")
    assert_error(wrong, 401, "Unauthorized")
    assert wrong.headers.get("www-authenticate") == "Bearer"

    student = new_client()
    register(student)
    assert_error(
        student.request("POST", "/v1/courses", {"code": "NOPE1", "title": "x"}), 403, "Forbidden"
    )
    assert_error(student.request("GET", "/v1/analytics/platform"), 403, "Forbidden")
    course = make_course(server, lessons=1)
    assert_error(
        student.request("POST", f"/v1/courses/{course.id}/modules", {"title": "m", "order": 9}),
        403,
        "Forbidden",
    )
    other_teacher = new_client()
    # Tokens handed over, so that replica lag cannot turn a 403 into a 404.
    other_teacher.causal = course.instructor.causal
    register(other_teacher, role="instructor")
    assert_error(
        other_teacher.request(
            "POST", f"/v1/courses/{course.id}/modules", {"title": "m", "order": 9}
        ),
        403,
        "Forbidden",
    )
    enrolled = student.request("POST", "/v1/enrollments", {"course_id": course.id})
    intruder = new_client()
    intruder.causal = student.causal
    register(intruder)
    assert_error(
        intruder.request("GET", f"/v1/enrollments/{enrolled.body['id']}/progress"),
        403,
        "Forbidden",
    )


def test_admin_reads_platform_analytics(
    server: ServerProcess,
    new_client: Callable[[], ApiClient],
    db: Any,
) -> None:
    email = f"admin-{uuid.uuid4().hex[:10]}@example.org"
    db.users.register(
        email=email,
        password=PASSWORD,
        first_name="Ad",
        last_name="Min",
        region="europe",
        role="admin",
    )
    admin = new_client()
    assert admin.login(email, PASSWORD).status == 200
    rows = admin.request("GET", "/v1/analytics/platform")
    assert rows.status == 200, rows.body
    by_shard = {row["shard"]: row for row in rows.body}
    assert set(by_shard) == {"na", "eu", "apac", "all"}
    assert isinstance(by_shard["all"]["revenue"], str)
    assert by_shard["all"]["users"] >= 1


def test_login_throttled_is_429_with_retry_after(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    email = register(new_client())
    client = new_client()
    replies = [client.login(email, "wrong password!") for _ in range(12)]
    throttled = [r for r in replies if r.status == 429]
    assert throttled, [r.status for r in replies]
    assert_error(throttled[0], 429, "LoginThrottled")
    assert int(throttled[0].headers["retry-after"]) >= 1


def test_a_down_primary_is_503_shard_unavailable(
    server: ServerProcess, new_client: Callable[[], ApiClient], cluster: LocalCluster
) -> None:
    client = new_client()
    register(client, region="asia")
    cluster.stop("apac", "primary")
    try:
        down = client.request("PATCH", "/v1/users/me", {"city": "Osaka"})
        assert_error(down, 503, "ShardUnavailable")
        assert "apac" in down.body["message"]
        health = client.request("GET", "/v1/health", auth=False)
        assert health.status == 503
        assert health.body["ok"] is False
    finally:
        cluster.start("apac", "primary")
    for _ in range(50):
        if client.request("PATCH", "/v1/users/me", {"city": "Osaka"}).status == 204:
            break
    else:
        raise AssertionError("the apac primary did not come back")
