"""FastAPI dependencies: the worker's state, the caller's identity, roles and ownership."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from elearn_data.repositories.learning import LearningRepository
from elearn_data.repositories.views import EnrollmentView, ProgressView, UserView
from elearn_data.services.learning import owned_id
from elearn_data.sharding.unit_of_work import UnitOfWork
from elearn_data.web.errors import forbidden, rate_limited, unauthorized
from elearn_data.web.state import WorkerState
from elearn_data.web.tokens import Principal, TokenError


def worker(request: Request) -> WorkerState:
    state: WorkerState = request.app.state.worker
    return state


Worker = Annotated[WorkerState, Depends(worker)]


async def principal(request: Request) -> Principal:
    """The caller of a bearer-only call (401 without a valid token; 429 past the account limit).

    Async on purpose: verifying an HS256 token and taking a rate-limit slot take
    microseconds, cheaper than a hop to the thread pool.
    """
    state = worker(request)
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise unauthorized("this call needs an Authorization: Bearer access token")
    try:
        who = state.access.verify(token.strip())
    except TokenError as exc:
        raise unauthorized(str(exc)) from None
    if state.limiter is not None:
        wait = state.limiter.hit(f"acct:{who.user_id}", state.settings.web.per_account)
        if wait is not None:
            raise rate_limited("account", wait)
    return who


Caller = Annotated[Principal, Depends(principal)]


def require_role(state: WorkerState, who: Principal, *roles: str) -> UserView:
    """Return the caller's user row when its current role is one of ``roles`` (else 403).

    The row, not the token, decides: a role changed since login counts at once.
    """
    user = state.db.users.get(who.user_id)
    if user.status != "active":
        raise forbidden("the account is not active")
    if user.role not in roles:
        raise forbidden(f"this call needs the role {' or '.join(roles)}")
    return user


def own_progress(state: WorkerState, who: Principal, enrollment_id: uuid.UUID) -> ProgressView:
    """Return the progress of the caller's enrollment: the owner check and the read in one reader.

    One unit of work: the shard's replica is chosen (and the causal token
    waited for) once, not once per call.
    """
    eid = owned_id("enrollment_id", enrollment_id)

    def read(uow: UnitOfWork) -> ProgressView:
        repo = LearningRepository(uow)
        if repo.get(eid).user_id != who.user_id:
            raise forbidden("the enrollment belongs to another learner")
        return repo.progress(eid)

    with state.db.reader(state.db.router.shard_of_owner(eid)) as uow:
        return read(uow)


def own_enrollment(state: WorkerState, who: Principal, enrollment_id: uuid.UUID) -> EnrollmentView:
    """Return the caller's enrollment (NotFound when missing, 403 when someone else's)."""
    enrollment = state.db.enrollments.get(enrollment_id)
    if enrollment.user_id != who.user_id:
        raise forbidden("the enrollment belongs to another learner")
    return enrollment
