"""``/v1/enrollments``: enrolling, progress, lessons completed, reviews (the caller's own)."""

from __future__ import annotations

from fastapi import APIRouter

from elearn_data.repositories.views import EnrollmentView, ProgressView
from elearn_data.web.deps import Caller, Worker, own_enrollment, own_progress
from elearn_data.web.schemas import (
    CompleteIn,
    Created,
    EnrollIn,
    EnrollmentOut,
    ProgressOut,
    ReviewIn,
    list_of,
)
from elearn_data.web.state import path_id

router = APIRouter(tags=["enrollments"])


@router.post("/v1/enrollments", status_code=201, response_model=Created)
def enroll(body: EnrollIn, state: Worker, who: Caller) -> Created:
    """Enroll the caller in a published course (409 AlreadyEnrolled / CourseFull)."""
    return Created(id=state.db.enrollments.enroll(who.user_id, body.course_id))


@router.get("/v1/enrollments", response_model=list_of(EnrollmentOut))
def mine(state: Worker, who: Caller, status: str | None = None) -> list[EnrollmentView]:
    """The caller's enrollments, newest first."""
    return state.db.enrollments.for_user(who.user_id, status)


@router.get("/v1/enrollments/{enrollment_id}/progress", response_model=ProgressOut)
def progress(enrollment_id: str, state: Worker, who: Caller) -> ProgressView:
    """Progress of one of the caller's enrollments, lesson by lesson."""
    return own_progress(state, who, path_id("enrollment", enrollment_id))


@router.post(
    "/v1/enrollments/{enrollment_id}/lessons/{lesson_id}/complete", response_model=ProgressOut
)
def complete_lesson(
    enrollment_id: str, lesson_id: str, body: CompleteIn, state: Worker, who: Caller
) -> ProgressView:
    """Mark a lesson of the caller's enrollment complete (time spent accumulates)."""
    eid = path_id("enrollment", enrollment_id)
    lid = path_id("lesson", lesson_id)
    own_enrollment(state, who, eid)
    return state.db.enrollments.complete_lesson(
        eid, lid, time_spent_minutes=body.time_spent_minutes
    )


@router.post("/v1/enrollments/{enrollment_id}/review", status_code=201, response_model=Created)
def review(enrollment_id: str, body: ReviewIn, state: Worker, who: Caller) -> Created:
    """Review the course of the caller's enrollment (a second call updates the review)."""
    eid = path_id("enrollment", enrollment_id)
    own_enrollment(state, who, eid)
    return Created(id=state.db.reviews.add(eid, body.rating, body.text))
