"""``/v1/users`` and ``/v1/auth/token``: registration, login, the caller's profile."""

from __future__ import annotations

from fastapi import APIRouter, Response

from elearn_data.repositories.views import UserView
from elearn_data.web.deps import Caller, Worker
from elearn_data.web.errors import unauthorized
from elearn_data.web.schemas import Created, ProfileIn, RegisterIn, TokenIn, TokenOut, UserOut

router = APIRouter(tags=["users"])


@router.post("/v1/users", status_code=201, response_model=Created)
def register(body: RegisterIn, state: Worker) -> Created:
    """Register a learner or an instructor (no token needed)."""
    user_id = state.db.users.register(**body.model_dump())
    return Created(id=user_id)


@router.post("/v1/auth/token", response_model=TokenOut)
def token(body: TokenIn, state: Worker) -> TokenOut:
    """Exchange an email and password for a short-lived access token (401 when wrong).

    Consecutive failures of one account are throttled (429 LoginThrottled, Retry-After).
    """
    user = state.db.users.authenticate(body.email, body.password)
    if user is None:
        raise unauthorized("wrong email or password, or the account is not active")
    return TokenOut(
        access_token=state.access.issue(user.id, user.role), expires_in=state.access.ttl_s
    )


@router.get("/v1/users/me", response_model=UserOut)
def me(state: Worker, who: Caller) -> UserView:
    """The caller's user row."""
    return state.db.users.get(who.user_id)


@router.patch("/v1/users/me", status_code=204, response_class=Response)
def update_me(body: ProfileIn, state: Worker, who: Caller) -> Response:
    """Change the given profile fields of the caller."""
    state.db.users.update_profile(who.user_id, **body.model_dump(exclude_unset=True))
    return Response(status_code=204)
