"""Passwords (argon2id) and the keyed email hash of the global directory.

* Emails are compared in one canonical form: NFKC and case folding (a
  fullwidth or upper-case address is the same account), and a local part that
  mixes scripts (Latin with Cyrillic look-alikes) is refused.
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
import unicodedata
from functools import cached_property

from argon2 import PasswordHasher, Type
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from elearn_data.config import Settings, argon2_below_minimum
from elearn_data.errors import ConfigurationError, InvalidInput
from elearn_data.validation import check_characters

MIN_PASSWORD_LENGTH = 8
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 254


# Scripts that one writing system mixes on purpose (Japanese, Korean).
_COMPATIBLE_SCRIPTS = (frozenset({"CJK", "HIRAGANA", "KATAKANA"}), frozenset({"CJK", "HANGUL"}))


def _script(char: str) -> str | None:
    """Return the script of a letter (the first word of its Unicode name), None otherwise."""
    if not unicodedata.category(char).startswith("L"):
        return None
    name = unicodedata.name(char, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def mixed_scripts(text: str) -> set[str]:
    """Return the scripts of ``text``'s letters when they mix look-alike scripts, else an empty set.

    ``p\\u0430ypal`` (a Cyrillic ``\\u0430`` among Latin letters) mixes LATIN and CYRILLIC.
    """
    scripts = {s for s in map(_script, text) if s is not None}
    if len(scripts) <= 1 or any(scripts <= allowed for allowed in _COMPATIBLE_SCRIPTS):
        return set()
    return scripts


def normalise_email(email: object) -> str:
    """Return the canonical form of an email address: NFKC, case folded, IDNA domain.

    A fullwidth ``\\uff41\\uff44\\uff41@example.org`` and ``ADA@example.org`` are
    ``ada@example.org``.

    Raises:
        InvalidInput: not a syntactically valid address, a local part mixing scripts
            (Latin with Cyrillic look-alikes), or control, bidi or surrogate characters.
    """
    if not isinstance(email, str) or "\x00" in email or len(email) > MAX_EMAIL_LENGTH:
        raise InvalidInput(f"malformed email: {email!r}"[:300])
    check_characters("email", email)
    folded = unicodedata.normalize("NFKC", unicodedata.normalize("NFKC", email.strip()).casefold())
    try:
        result = validate_email(folded, check_deliverability=False)
    except EmailNotValidError as exc:
        raise InvalidInput(f"malformed email {email!r}: {exc}"[:300]) from None
    normalised = result.normalized.lower()
    local = normalised.rpartition("@")[0]
    scripts = mixed_scripts(local)
    if scripts:
        raise InvalidInput(
            f"email {email!r} mixes scripts in its local part ({', '.join(sorted(scripts))})"[:300]
        )
    if len(normalised) > MAX_EMAIL_LENGTH:
        raise InvalidInput(f"malformed email: {email!r}"[:300])
    return normalised


class Passwords:
    """argon2id hashing with the parameters from the settings."""

    def __init__(self, settings: Settings) -> None:
        # Settings validate this too; a model_copy() skips validators.
        if not settings.argon2_allow_weak and argon2_below_minimum(
            settings.argon2_memory_kib, settings.argon2_time_cost
        ):
            raise ConfigurationError(
                f"argon2 parameters below OWASP's minimum: {settings.argon2_memory_kib} KiB, "
                f"{settings.argon2_time_cost} pass(es)"
            )
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
        if any(unicodedata.category(c) == "Cs" for c in password):
            raise InvalidInput("password contains a lone surrogate (not encodable text)")
        return password

    def hash(self, password: str) -> str:
        """Return the argon2id hash of an acceptable password."""
        return self._hasher.hash(self.check_policy(password))

    def verify(self, stored_hash: str | None, password: object) -> bool:
        """Return True when ``password`` matches; never raises for a wrong password."""
        if (
            not isinstance(password, str)
            or len(password) > MAX_PASSWORD_LENGTH
            or any(unicodedata.category(c) == "Cs" for c in password)
        ):
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
