"""The learner's path through the REST API, and read-your-writes across the two workers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from elearn_data.web.client import ApiClient
from elearn_data.web.server import ServerProcess

from .conftest import make_course, register


def test_register_token_enroll_complete_and_read_progress(
    server: ServerProcess, new_client: Callable[[], ApiClient]
) -> None:
    course = make_course(server, lessons=2)
    learner = new_client()
    # Handed over the way a page would carry it: the learner's session starts from
    # the instructor's causal token, so the course just created is visible to it.
    learner.causal = course.instructor.causal
    email = register(learner)
    me = learner.request("GET", "/v1/users/me")
    assert me.status == 200
    assert me.body["email"] == email
    assert me.body["role"] == "student"
    assert datetime.fromisoformat(me.body["created_at"]).utcoffset() is not None
    enrolled = learner.request("POST", "/v1/enrollments", {"course_id": course.id})
    assert enrolled.status == 201, enrolled.body
    eid = enrolled.body["id"]
    done = learner.request(
        "POST",
        f"/v1/enrollments/{eid}/lessons/{course.lessons[0]}/complete",
        {"time_spent_minutes": 7},
    )
    assert done.status == 200, done.body
    assert done.body["completed_lessons"] == 1
    assert done.body["percentage"] == "50.00"
    progress = learner.request("GET", f"/v1/enrollments/{eid}/progress")
    assert progress.status == 200
    assert progress.body["completed_lessons"] == 1
    lesson = next(x for x in progress.body["lessons"] if x["lesson_id"] == course.lessons[0])
    assert lesson["time_spent_minutes"] == 7
    mine = learner.request("GET", "/v1/enrollments")
    assert [e["id"] for e in mine.body] == [eid]
    # The learner's token started from the instructor's: it covers the course's
    # creation and the learner's own enrollment, merged over the shards.
    got = learner.request("GET", f"/v1/courses/{course.id}", auth=False)
    assert got.status == 200
    assert got.body["price"] == "0.00"
    assert got.body["status"] == "published"
    assert got.body["enrollment_count"] == 1
