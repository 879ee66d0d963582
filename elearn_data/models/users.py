"""Learners, instructors and admins: ``users`` and ``user_profiles`` (learner-owned)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from elearn_data.models.base import (
    PERSONAL,
    ROLES,
    SECRET,
    USER_STATUSES,
    Base,
    Placement,
    created_at,
    one_of,
    placed,
    updated_at,
    uuid_pk,
)
from elearn_data.regions import REGION_NAMES


class User(Base):
    """A person on the platform; lives only on the shard of its region."""

    __tablename__ = "users"
    __table_args__ = (
        CheckConstraint(one_of("role", ROLES), name="role"),
        CheckConstraint(one_of("status", USER_STATUSES), name="status"),
        CheckConstraint(one_of("region", REGION_NAMES), name="region"),
        CheckConstraint("length(btrim(first_name)) > 0", name="first_name_not_blank"),
        CheckConstraint("length(btrim(last_name)) > 0", name="last_name_not_blank"),
        CheckConstraint("position('@' in email) > 1", name="email_shape"),
        CheckConstraint("email = lower(btrim(email))", name="email_normalised"),
        Index("ix_users_region_role", "region", "role"),
        Index("ix_users_created_at", "created_at"),
        placed(Placement.LEARNER, "id"),
    )

    id: Mapped[uuid_pk]
    # Stored normalised (lower case). Unique per shard here; unique across all
    # shards through the email directory.
    email: Mapped[str] = mapped_column(String(254), unique=True, info=PERSONAL)
    password_hash: Mapped[str] = mapped_column(String(255), info=SECRET)
    first_name: Mapped[str] = mapped_column(String(100), info=PERSONAL)
    last_name: Mapped[str] = mapped_column(String(100), info=PERSONAL)
    role: Mapped[str] = mapped_column(String(20), server_default="student")
    region: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20), server_default="active")
    created_at: Mapped[created_at]
    updated_at: Mapped[updated_at]
    last_login: Mapped[datetime | None]

    profile: Mapped[UserProfile] = relationship(
        back_populates="user", uselist=False, lazy="raise", cascade="all, delete-orphan"
    )


class UserProfile(Base):
    """Extended, optional details of a user (1:1)."""

    __tablename__ = "user_profiles"
    __table_args__ = (
        CheckConstraint("phone ~ '^[0-9+(). x-]{3,32}$'", name="phone_shape"),
        CheckConstraint("avatar_url ~ '^https?://'", name="avatar_url_http"),
        Index("ix_user_profiles_country", "country"),
        placed(Placement.LEARNER, "user_id"),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    country: Mapped[str | None] = mapped_column(String(100))
    city: Mapped[str | None] = mapped_column(String(100))
    phone: Mapped[str | None] = mapped_column(String(32), info=PERSONAL)
    bio: Mapped[str | None] = mapped_column(Text, info=PERSONAL)  # free text: contacts
    timezone: Mapped[str | None] = mapped_column(String(64))
    language: Mapped[str | None] = mapped_column(String(35))
    avatar_url: Mapped[str | None] = mapped_column(String(500), info=PERSONAL)
    date_of_birth: Mapped[date | None] = mapped_column(info=PERSONAL)
    updated_at: Mapped[updated_at]

    user: Mapped[User] = relationship(back_populates="profile", lazy="raise")


class LoginThrottle(Base):
    """Consecutive failed logins of one account, on the account's home shard.

    ``blocked_until`` is set once ``failures`` reaches ``Settings.login.max_failures``;
    a successful login deletes the row. Security state: not part of analytics.
    """

    __tablename__ = "login_throttles"
    __table_args__ = (
        CheckConstraint("failures >= 0", name="failures_not_negative"),
        # Security state: never visible to analyst SQL.
        placed(Placement.LEARNER, "user_id", analyst=False),
    )

    user_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    failures: Mapped[int] = mapped_column(Integer, server_default="0")
    last_failure_at: Mapped[created_at]
    blocked_until: Mapped[datetime | None]
