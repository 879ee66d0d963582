"""Users: rows on the learner's home shard, plus the global email directory.

Registration writes two places: the directory row (on the shard its email hash
names) and the user row (on the home shard of the user's region). Both are in
one unit of work, so they commit together -- atomically with two-phase commit
when the shards differ -- and the directory never points at a user that does
not exist. The directory row is written first: concurrent registrations of one
email from any region queue on its primary key, and exactly one wins.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import date
from typing import Any

from sqlalchemy import bindparam, delete, func, insert, select, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.exc import SQLAlchemyError

from elearn_data.dberrors import translate
from elearn_data.errors import Duplicate, DuplicateEmail, NotFound
from elearn_data.models import (
    ContentOutbox,
    CourseReview,
    EmailDirectoryEntry,
    LoginThrottle,
    PaymentMethod,
    User,
    UserProfile,
)
from elearn_data.regions import Region
from elearn_data.repositories.views import UserView
from elearn_data.sharding.unit_of_work import PreparedRead, UnitOfWork

PROFILE_FIELDS = ("country", "city", "phone", "bio", "timezone", "language", "avatar_url")
ERASED_STATUS = "erased"
ERASED_NAME = "[erased]"
# Not an argon2 hash: no password verifies against it.
ERASED_PASSWORD_HASH = "!erased"  # noqa: S105 - a marker, not a secret

_THROTTLE = text(
    "SELECT failures, extract(epoch FROM blocked_until - now())::float8"
    " FROM login_throttles WHERE user_id = :user_id"
)
_RECORD_FAILURE = text(
    "INSERT INTO login_throttles AS t (user_id, failures, last_failure_at, blocked_until)"
    " VALUES (:user_id, :failures, now(), now() + make_interval(secs => :wait))"
    " ON CONFLICT (user_id) DO UPDATE SET failures = EXCLUDED.failures,"
    " last_failure_at = EXCLUDED.last_failure_at, blocked_until = EXCLUDED.blocked_until"
)
USER_FIELDS = ("first_name", "last_name")

_USER_COLUMNS = (
    User.id,
    User.email,
    User.first_name,
    User.last_name,
    User.role,
    User.region,
    User.status,
    User.created_at,
    User.last_login,
    UserProfile.country,
    UserProfile.city,
    UserProfile.phone,
    UserProfile.bio,
    UserProfile.timezone,
    UserProfile.language,
)


# Built once: the point read by id is the hottest statement of the API. It is
# prepared on the server once per pooled connection (see PreparedRead).
USER_BY_ID = select(*_USER_COLUMNS).outerjoin(UserProfile).where(User.id == bindparam("user_id"))
PREPARED_USER_BY_ID = PreparedRead("elearn_user_by_id", USER_BY_ID, ("user_id",))
if PREPARED_USER_BY_ID.columns != tuple(UserView.__dataclass_fields__):
    raise RuntimeError("USER_BY_ID must select UserView's fields in order")


def user_of(user_id: uuid.UUID, rows: Sequence[tuple[Any, ...]]) -> UserView:
    """Return the user that ``PREPARED_USER_BY_ID``'s rows describe.

    Raises:
        NotFound: no row, or the user was erased.
    """
    if not rows or rows[0][6] == ERASED_STATUS:
        raise NotFound(f"user {user_id} not found")
    return UserView(*rows[0])


class UsersRepository:
    """User rows and directory entries, inside one unit of work."""

    def __init__(self, uow: UnitOfWork) -> None:
        self.uow = uow

    def add(
        self,
        *,
        user_id: uuid.UUID,
        email: str,
        email_hash: bytes,
        password_hash: str,
        first_name: str,
        last_name: str,
        region: Region,
        role: str,
        profile: dict[str, Any],
    ) -> None:
        """Insert the directory entry, the user, its profile and its preferences intent.

        Raises:
            DuplicateEmail: the email is registered in some region already.
        """
        router = self.uow.router
        directory_shard = router.directory_shard(email_hash)
        try:
            self.uow.execute(
                insert(EmailDirectoryEntry).values(
                    email_hash=email_hash, user_id=user_id, region=region.value
                ),
                shard=directory_shard,
            )
        except Duplicate as exc:
            raise DuplicateEmail(f"email {email!r} is already registered") from exc
        home = router.shard_of_region(region)
        self.uow.session.add(
            User(
                id=user_id,
                email=email,
                password_hash=password_hash,
                first_name=first_name,
                last_name=last_name,
                region=region.value,
                role=role,
            )
        )
        self.uow.session.add(UserProfile(user_id=user_id, **profile))
        try:
            self.uow.session.flush()
        except SQLAlchemyError as exc:
            error = translate(exc, home)
            if isinstance(error, Duplicate) and error.constraint == "uq_users_email":
                raise DuplicateEmail(f"email {email!r} is already registered") from exc
            raise error from exc
        # The preferences document is created after the commit, from this intent.
        self.uow.execute(
            insert(ContentOutbox).values(
                kind="ensure_preferences", payload={"user_id": str(user_id)}
            ),
            shard=home,
        )

    def get(self, user_id: uuid.UUID, *, shard: str | None = None) -> UserView:
        """Return the user (``shard``: the user's shard, when the caller decoded it already).

        Raises:
            NotFound: no such user.
        """
        if shard is None:
            shard = self.uow.router.shard_of_owner(user_id)
        return user_of(
            user_id, self.uow.fetch_prepared_rows(PREPARED_USER_BY_ID, (user_id,), shard=shard)
        )

    def locate(self, email_hash: bytes) -> tuple[uuid.UUID, Region] | None:
        """Return (user id, region) of the email's owner from the directory."""
        shard = self.uow.router.directory_shard(email_hash)
        row = self.uow.execute(
            select(EmailDirectoryEntry.user_id, EmailDirectoryEntry.region).where(
                EmailDirectoryEntry.email_hash == email_hash
            ),
            shard=shard,
        ).first()
        return None if row is None else (row[0], Region(row[1]))

    def credentials(self, user_id: uuid.UUID) -> tuple[str, str] | None:
        """Return (password hash, status) of a user, or None."""
        shard = self.uow.router.shard_of_owner(user_id)
        row = self.uow.execute(
            select(User.password_hash, User.status).where(User.id == user_id), shard=shard
        ).first()
        return None if row is None else (row[0], row[1])

    def lock_credentials(self, user_id: uuid.UUID) -> tuple[str, str] | None:
        """Return (password hash, status) with the user row locked (serialises its logins)."""
        shard = self.uow.router.shard_of_owner(user_id)
        row = self.uow.execute(
            select(User.password_hash, User.status)
            .where(User.id == user_id)
            .with_for_update(key_share=True),
            shard=shard,
        ).first()
        return None if row is None else (row[0], row[1])

    def lock_role(self, user_id: uuid.UUID) -> tuple[str, str] | None:
        """Return (role, status) of a user, its row share-locked until the commit, or None.

        A concurrent role change cannot slip in between a caller's check and
        what it then writes (a course of an instructor, for instance).
        """
        shard = self.uow.router.shard_of_owner(user_id)
        row = self.uow.execute(
            select(User.role, User.status).where(User.id == user_id).with_for_update(read=True),
            shard=shard,
        ).first()
        return None if row is None else (row[0], row[1])

    def exists(self, user_id: uuid.UUID) -> bool:
        """Return whether the user's row exists (an erased user's included)."""
        shard = self.uow.router.shard_of_owner(user_id)
        row = self.uow.execute(select(User.id).where(User.id == user_id), shard=shard).first()
        return row is not None

    def throttle(self, user_id: uuid.UUID) -> tuple[int, float | None]:
        """Return (consecutive failures, seconds left to wait or None) of the account."""
        shard = self.uow.router.shard_of_owner(user_id)
        row = self.uow.execute(_THROTTLE, {"user_id": user_id}, shard=shard).first()
        if row is None:
            return 0, None
        wait = float(row[1]) if row[1] is not None and row[1] > 0 else None
        return int(row[0]), wait

    def record_failure(self, user_id: uuid.UUID, failures: int, wait_s: float) -> None:
        """Store ``failures`` consecutive failures and a wait of ``wait_s`` seconds (0: none)."""
        shard = self.uow.router.shard_of_owner(user_id)
        self.uow.execute(
            _RECORD_FAILURE,
            {"user_id": user_id, "failures": failures, "wait": float(wait_s)},
            shard=shard,
        )

    def clear_failures(self, user_id: uuid.UUID) -> None:
        shard = self.uow.router.shard_of_owner(user_id)
        self.uow.execute(delete(LoginThrottle).where(LoginThrottle.user_id == user_id), shard=shard)

    def erase(self, user_id: uuid.UUID) -> str:
        """Anonymise the user on its home shard; return the email it had (for the directory).

        The row keeps its id (enrollments, ratings, transactions and invoices stay
        under it); names, email, password hash and the whole profile are replaced
        or cleared, review texts cleared, payment methods and the login throttle
        deleted, and the preferences document deleted through the outbox.

        Raises:
            NotFound: no such user, or erased already.
        """
        shard = self.uow.router.shard_of_owner(user_id)
        row = self.uow.execute(
            select(User.email, User.status).where(User.id == user_id).with_for_update(),
            shard=shard,
        ).first()
        if row is None or row[1] == ERASED_STATUS:
            raise NotFound(f"user {user_id} not found")
        self.uow.execute(
            update(User)
            .where(User.id == user_id)
            .values(
                email=f"erased-{user_id.hex}@erased.invalid",
                first_name=ERASED_NAME,
                last_name=ERASED_NAME,
                password_hash=ERASED_PASSWORD_HASH,
                status=ERASED_STATUS,
                last_login=None,
                updated_at=func.now(),
            ),
            shard=shard,
        )
        self.uow.execute(
            update(UserProfile)
            .where(UserProfile.user_id == user_id)
            .values(**dict.fromkeys(PROFILE_FIELDS), date_of_birth=None, updated_at=func.now()),
            shard=shard,
        )
        self.uow.execute(
            update(CourseReview)
            .where(CourseReview.user_id == user_id, CourseReview.review_text.is_not(None))
            .values(review_text=None),
            shard=shard,
        )
        self.uow.execute(delete(PaymentMethod).where(PaymentMethod.user_id == user_id), shard=shard)
        self.uow.execute(delete(LoginThrottle).where(LoginThrottle.user_id == user_id), shard=shard)
        self.uow.execute(
            insert(ContentOutbox).values(
                kind="delete_preferences", payload={"user_id": str(user_id)}
            ),
            shard=shard,
        )
        return str(row[0])

    def delete_directory_entry(self, email_hash: bytes, user_id: uuid.UUID) -> None:
        """Delete the directory row of ``email_hash`` if it names ``user_id``."""
        shard = self.uow.router.directory_shard(email_hash)
        self.uow.execute(
            delete(EmailDirectoryEntry).where(
                EmailDirectoryEntry.email_hash == email_hash,
                EmailDirectoryEntry.user_id == user_id,
            ),
            shard=shard,
        )

    def record_login(self, user_id: uuid.UUID, new_hash: str | None = None) -> None:
        """Stamp last_login (and store an upgraded password hash)."""
        values: dict[str, Any] = {"last_login": func.now()}
        if new_hash is not None:
            values["password_hash"] = new_hash
        shard = self.uow.router.shard_of_owner(user_id)
        self.uow.execute(update(User).where(User.id == user_id).values(**values), shard=shard)

    def update_profile(
        self,
        user_id: uuid.UUID,
        user_fields: dict[str, Any],
        profile_fields: dict[str, Any],
        date_of_birth: date | None = None,
    ) -> None:
        """Update names and upsert profile fields.

        Raises:
            NotFound: no such user.
        """
        shard = self.uow.router.shard_of_owner(user_id)
        found = self.uow.execute(
            update(User)
            .where(User.id == user_id)
            .values(**user_fields, updated_at=func.now())
            .returning(User.id),
            shard=shard,
        ).first()
        if found is None:
            raise NotFound(f"user {user_id} not found")
        if date_of_birth is not None:
            profile_fields = {**profile_fields, "date_of_birth": date_of_birth}
        if profile_fields:
            stmt = pg_insert(UserProfile).values(user_id=user_id, **profile_fields)
            stmt = stmt.on_conflict_do_update(
                index_elements=[UserProfile.user_id],
                set_={**{k: stmt.excluded[k] for k in profile_fields}, "updated_at": func.now()},
            )
            self.uow.execute(stmt, shard=shard)

    def deactivate(self, user_id: uuid.UUID) -> None:
        """Mark the user inactive.

        Raises:
            NotFound: no such user.
        """
        shard = self.uow.router.shard_of_owner(user_id)
        found = self.uow.execute(
            update(User).where(User.id == user_id).values(status="inactive").returning(User.id),
            shard=shard,
        ).first()
        if found is None:
            raise NotFound(f"user {user_id} not found")
