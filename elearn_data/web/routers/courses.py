"""``/v1/courses`` and ``/v1/modules``: search and curriculum (public), authoring (instructors)."""

from __future__ import annotations

import uuid
from decimal import Decimal

from fastapi import APIRouter, Query, Response

from elearn_data.repositories.catalog import CatalogRepository
from elearn_data.repositories.views import CourseView, ModuleView
from elearn_data.web.deps import Caller, Worker, require_role
from elearn_data.web.errors import forbidden
from elearn_data.web.schemas import (
    CourseIn,
    CourseOut,
    Created,
    LessonIn,
    ModuleIn,
    ModuleOut,
    list_of,
)
from elearn_data.web.state import WorkerState, path_id
from elearn_data.web.tokens import Principal

router = APIRouter(tags=["courses"])


@router.get("/v1/courses", response_model=list_of(CourseOut))
def search(  # noqa: PLR0917 - the query parameters of the call
    state: Worker,
    q: str | None = None,
    level: str | None = None,
    max_price: Decimal | None = None,
    min_rating: Decimal | None = None,
    category_id: uuid.UUID | None = None,
    limit: int = Query(default=20),
) -> list[CourseView]:
    """Search published courses, best match first (no token needed)."""
    return state.db.catalog.search(
        q,
        level=level,
        max_price=max_price,
        min_rating=min_rating,
        category_id=category_id,
        limit=limit,
    )


@router.get("/v1/courses/popular", response_model=list_of(CourseOut))
def popular(state: Worker, limit: int = 10) -> list[CourseView]:
    """Published courses by global enrollments."""
    return state.db.catalog.popular(limit)


@router.get("/v1/courses/{course_id}", response_model=CourseOut)
def course(course_id: str, state: Worker) -> CourseView:
    """One course with its global rating and counts."""
    return state.db.catalog.get_course(path_id("course", course_id))


@router.get("/v1/courses/{course_id}/curriculum", response_model=list_of(ModuleOut))
def curriculum(course_id: str, state: Worker) -> list[ModuleView]:
    """The course's modules and lessons, in order."""
    return state.db.catalog.curriculum(path_id("course", course_id))


def _own_course(state: WorkerState, who: Principal, course_id: uuid.UUID) -> None:
    user = require_role(state, who, "instructor", "admin")
    found = state.db.catalog.get_course(course_id)
    if user.role != "admin" and found.instructor_id != who.user_id:
        raise forbidden("the course belongs to another instructor")


@router.post("/v1/courses", status_code=201, response_model=Created)
def create_course(body: CourseIn, state: Worker, who: Caller) -> Created:
    """Create a draft course taught by the caller (instructors)."""
    require_role(state, who, "instructor")
    course_id = state.db.catalog.create_course(instructor_id=who.user_id, **body.model_dump())
    return Created(id=course_id)


@router.post("/v1/courses/{course_id}/modules", status_code=201, response_model=Created)
def add_module(course_id: str, body: ModuleIn, state: Worker, who: Caller) -> Created:
    """Add a module to one of the caller's courses."""
    cid = path_id("course", course_id)
    _own_course(state, who, cid)
    return Created(id=state.db.catalog.add_module(cid, **body.model_dump()))


@router.post("/v1/modules/{module_id}/lessons", status_code=201, response_model=Created)
def add_lesson(module_id: str, body: LessonIn, state: Worker, who: Caller) -> Created:
    """Add a lesson to a module of one of the caller's courses."""
    mid = path_id("module", module_id)
    with state.db.reader() as uow:
        cid = CatalogRepository(uow).module_course(mid)
    _own_course(state, who, cid)
    return Created(id=state.db.catalog.add_lesson(mid, **body.model_dump()))


@router.post("/v1/courses/{course_id}/publish", status_code=204, response_class=Response)
def publish(course_id: str, state: Worker, who: Caller) -> Response:
    """Publish one of the caller's courses (409 InvalidState without lessons)."""
    cid = path_id("course", course_id)
    _own_course(state, who, cid)
    state.db.catalog.publish(cid)
    return Response(status_code=204)
