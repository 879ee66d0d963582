"""Request and response bodies.

Response models are generated from the frozen-dataclass views of
:mod:`elearn_data.repositories.views` (same field names, same order), so the
OpenAPI schema and the Python API cannot drift apart. In JSON, ids are
strings, money (``Decimal``) is a string and times are ISO 8601 with their UTC
offset (pydantic's JSON mode). Request models are written out: they are the
arguments of the API calls, with no field the caller may not set.
"""

from __future__ import annotations

import dataclasses
import types
import typing
import uuid
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, create_model

from elearn_data.repositories import views

_GENERATED: dict[type, type[BaseModel]] = {}


def _field_type(hint: Any) -> Any:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = tuple(_field_type(a) for a in typing.get_args(hint))
        return typing.Union[args]  # noqa: UP007 - built from a runtime tuple
    if origin is tuple:
        item = typing.get_args(hint)[0]
        return list[_field_type(item)]  # type: ignore[misc]
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return model_of(hint)
    if hint is datetime:
        return AwareDatetime
    return hint


def model_of(view: type) -> type[BaseModel]:
    """Return (and cache) the pydantic model of a view dataclass."""
    model = _GENERATED.get(view)
    if model is not None:
        return model
    hints = typing.get_type_hints(view)
    fields: dict[str, Any] = {}
    for f in dataclasses.fields(view):
        default = ... if f.default is dataclasses.MISSING else f.default
        fields[f.name] = (_field_type(hints[f.name]), default)
    model = create_model(
        view.__name__,
        __config__=ConfigDict(frozen=True, from_attributes=True),
        __doc__=(view.__doc__ or f"The {view.__name__} of the Python API.").strip(),
        **fields,
    )
    _GENERATED[view] = model
    return model


def list_of(model: type[BaseModel]) -> Any:
    """``list[model]`` for a response_model (a generated model is a value to mypy)."""
    return list[model]  # type: ignore[valid-type]


UserOut = model_of(views.UserView)
CourseOut = model_of(views.CourseView)
ModuleOut = model_of(views.ModuleView)
EnrollmentOut = model_of(views.EnrollmentView)
ProgressOut = model_of(views.ProgressView)
TransactionOut = model_of(views.TransactionView)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Created(BaseModel):
    """The id of what the call created."""

    id: uuid.UUID


class TransactionCreated(BaseModel):
    transaction_id: uuid.UUID


class RegisterIn(_In):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    first_name: str
    last_name: str
    region: str
    role: Literal["student", "instructor"] = "student"
    country: str | None = None
    city: str | None = None
    phone: str | None = None


class TokenIn(_In):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 - a scheme name, not a secret
    expires_in: int


class ProfileIn(_In):
    """Profile fields to change (only those given)."""

    first_name: str | None = None
    last_name: str | None = None
    country: str | None = None
    city: str | None = None
    phone: str | None = None
    bio: str | None = None
    timezone: str | None = None
    language: str | None = None
    avatar_url: str | None = None
    date_of_birth: date | None = None


class CourseIn(_In):
    code: str
    title: str
    description: str | None = None
    category_id: uuid.UUID | None = None
    level: str = "beginner"
    price: Decimal = Decimal("0")
    currency: str = "USD"
    duration_hours: Decimal | None = None
    max_enrollments: int | None = None
    language: str = "English"


class ModuleIn(_In):
    title: str
    order: int
    description: str | None = None


class LessonIn(_In):
    title: str
    order: int
    lesson_type: str
    content_id: str | None = None
    duration_minutes: int | None = None
    is_preview: bool = False


class EnrollIn(_In):
    course_id: uuid.UUID


class CompleteIn(_In):
    time_spent_minutes: int = 0


class ReviewIn(_In):
    rating: int
    text: str | None = None


class PaymentIn(_In):
    course_id: uuid.UUID
    idempotency_key: str | None = Field(default=None, max_length=200)
    payment_method_id: uuid.UUID | None = None


class NodeHealth(BaseModel):
    shard: str
    role: str
    reachable: bool
    in_recovery: bool | None
    replay_lag_bytes: int | None
    schema_revision: str | None


class HealthOut(BaseModel):
    """The health report without addresses, errors' texts or credentials."""

    ok: bool
    nodes: list[NodeHealth]
    content_store_reachable: bool
    checked_at: datetime
