"""Passwords (argon2id) and the keyed email hash of the global directory.

* Passwords are hashed with argon2id (argon2-cffi); verification is constant
  time in the hash, and a hash made with older parameters is re-hashed at the
  next successful login. A login for an unknown email still runs one
  verification, so response time does not reveal which emails exist.
* The email directory stores ``HMAC-SHA256(key, normalised email)``, never the
  email: without the key (``Settings.email_hash_key``) a leaked directory is a
  list of opaque digests.
"""

from __future__ import annotations

import hashlib
import hmac
from functools import cached_property

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from elearn_data.config import Settings
from elearn_data.errors import ConfigurationError, InvalidInput

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 254


def normalise_email(email: object) -> str:
    """Return the canonical (lower-case, IDNA-normalised) form of an email address.

    Raises:
        InvalidInput: not a syntactically valid address.
    """
    if not isinstance(email, str) or "\x00" in email or len(email) > MAX_EMAIL_LENGTH:
        raise InvalidInput(f"malformed email: {email!r}"[:300])
    try:
        result = validate_email(email.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"malformed email {email!r}: {exc}"[:300]) from None
    return result.normalized.lower()


class Passwords:
    """argon2id hashing with the parameters from the settings."""

    def __init__(self, settings: Settings) -> None:
        self._hasher = PasswordHasher(
            time_cost=settings.argon2_time_cost,
            memory_cost=settings.argon2_memory_kib,
            parallelism=settings.argon2_parallelism,
            type=Type.ID,
        )

    @cached_property
    def _dummy_hash(self) -> str:
        return self._hasher.hash("elearn-data-timing-equaliser")

    @staticmethod
    def check_policy(password: object) -> str:
        """Return the password if it is acceptable.

        Raises:
            InvalidInput: shorter than 8 characters, absurdly long, or not a string.
                The message never contains the password.
        """
        if not isinstance(password, str):
            raise InvalidInput("password must be a string")
        if len(password) < MIN_PASSWORD_LENGTH:
            raise InvalidInput(f"password must have at least {MIN_PASSWORD_LENGTH} characters")
        if len(password) > MAX_PASSWORD_LENGTH or "\x00" in password:
            raise InvalidInput("password is too long or contains NUL characters")
        return password

    def hash(self, password: str) -> str:
        """Return the argon2id hash of an acceptable password."""
        return self._hasher.hash(self.check_policy(password))

    def verify(self, stored_hash: str | None, password: object) -> bool:
        """Return True when ``password`` matches; never raises for a wrong password."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
            password = ""
        try:
            return self._hasher.verify(stored_hash or self._dummy_hash, password) and bool(
                stored_hash
            )
        except (VerificationError, InvalidHashError):
            return False

    def needs_rehash(self, stored_hash: str) -> bool:
        """Return True when ``stored_hash`` was made with other parameters."""
        return self._hasher.check_needs_rehash(stored_hash)


class EmailHasher:
    """Keyed hash of normalised emails (the directory's key)."""

    def __init__(self, settings: Settings) -> None:
        if settings.email_hash_key is None:
            self._key: bytes | None = None
        else:
            self._key = settings.email_hash_key.get_secret_value().encode("utf-8")

    def digest(self, normalised_email: str) -> bytes:
        """Return the 32-byte HMAC-SHA256 of a normalised email.

        Raises:
            ConfigurationError: no ``email_hash_key`` is configured.
        """
        if self._key is None:
            raise ConfigurationError(
                "email_hash_key is not set (ELEARN_EMAIL_HASH_KEY); the email directory needs it"
            )
        return hmac.new(self._key, normalised_email.encode("utf-8"), hashlib.sha256).digest()
