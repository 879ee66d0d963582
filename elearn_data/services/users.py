"""``db.users``: registration, lookup without a region, authentication, profiles."""

from __future__ import annotations

import uuid
from typing import Any

from elearn_data import ids, validation
from elearn_data.config import Settings
from elearn_data.errors import InvalidInput, LoginThrottled, NotFound
from elearn_data.models.base import ROLES
from elearn_data.regions import parse_region
from elearn_data.repositories.users import (
    PREPARED_USER_BY_ID,
    PROFILE_FIELDS,
    USER_FIELDS,
    UsersRepository,
    user_of,
)
from elearn_data.repositories.views import UserView
from elearn_data.security import EmailHasher, Passwords, normalise_email
from elearn_data.services.base import OutboxRelay, Units
from elearn_data.sharding.consistency import PRIMARY_ONLY, CausalToken
from elearn_data.sharding.routing import Router

_LIMITS = {
    "first_name": 100,
    "last_name": 100,
    "country": 100,
    "city": 100,
    "phone": 32,
    "bio": 5000,
    "timezone": 64,
    "language": 35,
    "avatar_url": 500,
}


def _clean_profile(fields: dict[str, Any]) -> dict[str, Any]:
    """Validate profile fields exactly as strictly as the tables' CHECK constraints."""
    cleaned: dict[str, Any] = {}
    for name, value in fields.items():
        if name == "avatar_url":
            cleaned[name] = validation.url(name, value, required=False)
        elif name == "phone":
            cleaned[name] = validation.phone(name, value)
        elif name == "timezone":
            cleaned[name] = validation.timezone(name, value)
        elif name == "language":
            cleaned[name] = validation.language(name, value)
        else:
            cleaned[name] = validation.text(name, value, max_length=_LIMITS[name], required=False)
    return cleaned


def _primary(shard: str) -> CausalToken:
    """A token that makes a reader read ``shard`` from its primary."""
    return CausalToken({shard: PRIMARY_ONLY})


def backoff_s(failures: int, *, max_failures: int, first_s: float, max_s: float) -> float:
    """Return how long an account with ``failures`` consecutive failures waits (0: none).

    The first wait comes with the ``max_failures``-th failure and doubles with
    each further one, up to ``max_s``.
    """
    if failures < max_failures:
        return 0.0
    doublings = min(failures - max_failures, 60)
    return float(min(max_s, first_s * 2**doublings))


class Users:
    """The users part of the API (each method is one unit of work).

    Args:
        units: runs each call as one unit of work.
        router: names a user's home shard.
        settings: argon2 parameters, the email hash key, the login throttle.
        outbox: applies the content-store work registration and erasure record.
    """

    def __init__(
        self, units: Units, router: Router, settings: Settings, *, outbox: OutboxRelay
    ) -> None:
        self._units = units
        self._router = router
        self._settings = settings
        self._outbox = outbox
        self._passwords = Passwords(settings)
        self._emails = EmailHasher(settings)

    def register(
        self,
        *,
        email: str,
        password: str,
        first_name: str,
        last_name: str,
        region: str,
        role: str = "student",
        country: str | None = None,
        city: str | None = None,
        phone: str | None = None,
    ) -> uuid.UUID:
        """Register a user in ``region``; return its id.

        Raises:
            UnknownRegion: not one of the six regions.
            InvalidInput: malformed email, password shorter than 8 characters,
                unknown role, blank names.
            DuplicateEmail: the email is registered in any region.
        """
        home = parse_region(region)
        normalised = normalise_email(email)
        validation.choice("role", role, ROLES)
        first = validation.required_text("first_name", first_name, max_length=100)
        last = validation.required_text("last_name", last_name, max_length=100)
        profile = _clean_profile({"country": country, "city": city, "phone": phone})
        password_hash = self._passwords.hash(password)
        digest = self._emails.digest(normalised)
        user_id = ids.new_id(home)

        def work(uow: Any) -> None:
            UsersRepository(uow).add(
                user_id=user_id,
                email=normalised,
                email_hash=digest,
                password_hash=password_hash,
                first_name=first,
                last_name=last,
                region=home,
                role=role,
                profile=profile,
            )

        self._units.write(home, work)
        self._outbox.after_registration(user_id)
        return user_id

    def get(self, user_id: uuid.UUID) -> UserView:
        """Return the user (its shard comes from the id).

        Raises:
            NotFound: no such user (including ids the platform never issued).
        """
        uid = validation.identifier("user_id", user_id)
        shard = self._router.shard_of_owner(uid)
        return user_of(uid, self._units.read_prepared(shard, PREPARED_USER_BY_ID, (uid,)))

    def find_by_email(self, email: str) -> UserView | None:
        """Return the user with this email, in any region, or None."""
        try:
            normalised = normalise_email(email)
        except InvalidInput:
            return None
        digest = self._emails.digest(normalised)
        with self._units.reader() as uow:
            located = UsersRepository(uow).locate(digest)
        if located is None:
            return None
        uid = located[0]
        shard = self._router.shard_of_owner(uid)
        try:
            return self.get(uid)
        except NotFound:
            # The directory's replica may be ahead of the home shard's. A directory
            # row is committed only after its user row's decision (the user's shard
            # coordinates registration), so the home primary has the row now.
            try:
                with self._units.reader(shard, token=_primary(shard)) as uow:
                    return UsersRepository(uow).get(uid, shard=shard)
            except NotFound:
                return None  # erased between the two reads

    def authenticate(self, email: str, password: str) -> UserView | None:
        """Return the user when the password matches and the user is active, else None.

        Records last_login on success and upgrades a hash made with old parameters.
        Consecutive failures of one account are counted on its home shard; from
        ``Settings.login.max_failures`` on, the account waits (doubling with each
        further failure, up to ``login.max_backoff_s``) and its password is not
        even checked meanwhile. A success resets the count. The row lock on the
        account serialises its own attempts only: no account affects another.

        Raises:
            LoginThrottled: the account must wait ``retry_after_s`` seconds.
        """
        try:
            normalised = normalise_email(email)
        except InvalidInput:
            self._passwords.verify(None, password)
            return None
        digest = self._emails.digest(normalised)
        with self._units.reader() as uow:
            located = UsersRepository(uow).locate(digest)
        if located is None:
            self._passwords.verify(None, password)
            return None
        user_id = located[0]
        policy = self._settings.login

        def attempt(uow: Any) -> bool:
            repo = UsersRepository(uow)
            creds = repo.lock_credentials(user_id)
            if creds is None:
                self._passwords.verify(None, password)
                return False
            failures, wait = repo.throttle(user_id)
            if wait is not None:
                raise LoginThrottled(wait)
            stored, status = creds
            if not self._passwords.verify(stored, password):
                failures += 1
                repo.record_failure(
                    user_id,
                    failures,
                    backoff_s(
                        failures,
                        max_failures=policy.max_failures,
                        first_s=policy.backoff_s,
                        max_s=policy.max_backoff_s,
                    ),
                )
                return False
            if failures:
                repo.clear_failures(user_id)
            if status != "active":
                return False
            new_hash = (
                self._passwords.hash(password) if self._passwords.needs_rehash(stored) else None
            )
            repo.record_login(user_id, new_hash)
            return True

        if not self._units.write(self._router.shard_of_owner(user_id), attempt):
            return None
        return self.get(user_id)

    def update_profile(self, user_id: uuid.UUID, **fields: Any) -> None:
        """Update names and profile fields (only those given).

        Raises:
            NotFound: no such user.
            InvalidInput: an unknown field or a bad value.
        """
        uid = validation.identifier("user_id", user_id)
        validation.no_extra("profile", fields, (*USER_FIELDS, *PROFILE_FIELDS, "date_of_birth"))
        user_fields = {
            name: validation.required_text(name, fields[name], max_length=_LIMITS[name])
            for name in USER_FIELDS
            if name in fields
        }
        profile = _clean_profile({k: v for k, v in fields.items() if k in PROFILE_FIELDS})
        birth = validation.date_of_birth("date_of_birth", fields.get("date_of_birth"))
        self._units.write(
            self._router.shard_of_owner(uid),
            lambda uow: UsersRepository(uow).update_profile(uid, user_fields, profile, birth),
        )

    def deactivate(self, user_id: uuid.UUID) -> None:
        """Deactivate the user (it can no longer log in or enroll).

        Raises:
            NotFound: no such user.
        """
        uid = validation.identifier("user_id", user_id)
        self._units.write(
            self._router.shard_of_owner(uid), lambda uow: UsersRepository(uow).deactivate(uid)
        )

    def erase(self, user_id: uuid.UUID) -> None:
        """Erase the user's personal data everywhere (right to erasure).

        On the home shard the user and profile are anonymised, review texts
        cleared, payment methods and the login throttle deleted; the directory
        row is deleted (on its own shard, in the same atomic unit of work); the
        preferences document is deleted through the outbox (the call waits for
        the outbox relay's pass, up to ``Settings.outbox_wait_s``). Enrollments,
        ratings, transactions and invoices stay under the same, now
        pseudonymous, id. Afterwards ``get`` raises NotFound, ``find_by_email``
        returns None, ``authenticate`` fails and the email may register again.

        Raises:
            NotFound: no such user (or erased already).
        """
        uid = validation.identifier("user_id", user_id)
        home = self._router.shard_of_owner(uid)

        def work(uow: Any) -> None:
            repo = UsersRepository(uow)
            stored_email = repo.erase(uid)
            repo.delete_directory_entry(self._emails.digest(stored_email), uid)

        self._units.write(home, work)
        # The contract includes the preferences document: wait for the relay's pass.
        self._outbox.relay_outbox([home], wait=True)
