"""Argument checks shared by every public method: bad input never reaches the database.

Each helper returns the cleaned value or raises :class:`~elearn_data.errors.InvalidInput`
naming the argument and the offending value (truncated; never a secret).
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from collections.abc import Collection
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pycountry

from elearn_data import ids
from elearn_data.errors import InvalidInput

MAX_SHOWN = 80
# Bidirectional embeddings, overrides and isolates (a "Trojan Source" text reads
# differently from what it is); lone surrogates cannot be encoded at all.
BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
# Control characters a multi-line text may hold.
TEXT_WHITESPACE = frozenset("\t\n\r")
OLDEST_BIRTH_YEAR = 1900
# The same patterns as the tables' CHECK constraints (ASCII only, like PostgreSQL's).
PHONE = re.compile(r"[0-9+(). x-]{3,32}", re.ASCII)
HTTP_URL = re.compile(r"https?://", re.ASCII)
CURRENCY = re.compile(r"[A-Z]{3}", re.ASCII)
LANGUAGE_TAG = re.compile(r"([a-z]{2,3})(?:[-_]([A-Za-z]{4}))?(?:[-_]([A-Za-z]{2}|[0-9]{3}))?")


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= MAX_SHOWN else text[: MAX_SHOWN - 3] + "..."


def text(
    name: str,
    value: object,
    *,
    max_length: int,
    required: bool = True,
    strip: bool = True,
) -> str | None:
    """Return a cleaned string (None allowed when not required)."""
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {type(value).__name__}")
    if "\x00" in value:
        raise InvalidInput(f"{name} must not contain NUL characters")
    check_characters(name, value)
    cleaned = value.strip() if strip else value
    if required and not cleaned:
        raise InvalidInput(f"{name} must not be blank")
    if len(cleaned) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters: {_shown(value)}")
    return cleaned if cleaned or required else None


def check_characters(name: str, value: str) -> str:
    """Refuse lone surrogates, control characters (but tab and newlines) and bidi controls.

    Raises:
        InvalidInput: naming the field and the character's code point (never the value,
            which may not even be printable).
    """
    for char in value:
        category = unicodedata.category(char)
        if category == "Cs":
            raise InvalidInput(f"{name} contains a lone surrogate (U+{ord(char):04X})")
        if (category == "Cc" and char not in TEXT_WHITESPACE) or char in BIDI_CONTROLS:
            raise InvalidInput(f"{name} contains the control character U+{ord(char):04X}")
    return value


def required_text(name: str, value: object, *, max_length: int) -> str:
    """Return a non-blank cleaned string."""
    result = text(name, value, max_length=max_length, required=True)
    assert result is not None
    return result


def choice(name: str, value: object, allowed: Collection[str]) -> str:
    """Return ``value`` if it is one of ``allowed``."""
    if not isinstance(value, str) or value not in allowed:
        raise InvalidInput(f"{name} must be one of {', '.join(allowed)}: {_shown(value)}")
    return value


def integer(
    name: str,
    value: object,
    *,
    minimum: int | None = None,
    maximum: int | None = None,
    required: bool = True,
) -> int | None:
    """Return an int within bounds (bool is not an int here)."""
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name} must be an integer, not {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise InvalidInput(f"{name} must be at least {minimum}: {value}")
    if maximum is not None and value > maximum:
        raise InvalidInput(f"{name} must be at most {maximum}: {value}")
    return value


def required_integer(
    name: str, value: object, *, minimum: int | None = None, maximum: int | None = None
) -> int:
    result = integer(name, value, minimum=minimum, maximum=maximum, required=True)
    assert result is not None
    return result


def money(
    name: str,
    value: object,
    *,
    minimum: Decimal | None = Decimal("0"),
    exclusive_minimum: bool = False,
    required: bool = True,
    maximum: Decimal = Decimal("9999999999.99"),
) -> Decimal | None:
    """Return an amount as a Decimal with at most two decimals."""
    if value is None:
        if required:
            raise InvalidInput(f"{name} is required")
        return None
    if isinstance(value, bool) or not isinstance(value, Decimal | int | str):
        raise InvalidInput(f"{name} must be a Decimal, not {type(value).__name__}")
    try:
        amount = Decimal(value) if not isinstance(value, Decimal) else value
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{name} is not a number: {_shown(value)}") from None
    if not amount.is_finite():
        raise InvalidInput(f"{name} must be finite: {_shown(value)}")
    try:
        exact = amount == amount.quantize(Decimal("0.01"))
    except InvalidOperation:
        # Found by tests/integration/test_fuzz_api.py: a value with more digits than
        # the decimal context holds (e.g. 1E+30) cannot be quantized at all.
        raise InvalidInput(f"{name} is out of range: {_shown(value)}") from None
    if not exact:
        raise InvalidInput(f"{name} has more than two decimals: {amount}")
    if minimum is not None and (amount <= minimum if exclusive_minimum else amount < minimum):
        bound = "greater than" if exclusive_minimum else "at least"
        raise InvalidInput(f"{name} must be {bound} {minimum}: {amount}")
    if amount > maximum:
        raise InvalidInput(f"{name} is too large: {amount}")
    return amount


def identifier(name: str, value: object) -> uuid.UUID:
    """Return a UUID (raises InvalidInput for anything that is not one)."""
    try:
        return ids.as_uuid(value)
    except InvalidInput:
        raise InvalidInput(f"{name} is not an id: {_shown(value)}") from None


def optional_identifier(name: str, value: object) -> uuid.UUID | None:
    return None if value is None else identifier(name, value)


def flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidInput(f"{name} must be True or False: {_shown(value)}")
    return value


def url(name: str, value: object, *, required: bool = True, max_length: int = 500) -> str | None:
    """Return an http(s) URL."""
    cleaned = text(name, value, max_length=max_length, required=required)
    if cleaned is None:
        return None
    # The tables' CHECK is "~ '^https?://'": the scheme in lower case, as written.
    if not HTTP_URL.match(cleaned) or any(c.isspace() for c in cleaned):
        raise InvalidInput(f"{name} must be an http(s) URL: {_shown(value)}")
    return cleaned


@cache
def _currency_codes() -> frozenset[str]:
    return frozenset(c.alpha_3 for c in pycountry.currencies)


def currency(name: str, value: object) -> str:
    """Return an ISO 4217 currency code (three ASCII letters, any case given; upper case out).

    Non-ASCII letters are refused before case mapping (``"uß".upper()`` is ``"USS"``).
    """
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, not {type(value).__name__}")
    cleaned = value.strip()
    if not cleaned.isascii() or not CURRENCY.fullmatch(cleaned.upper()):
        raise InvalidInput(f"{name} must be a 3-letter ISO 4217 code: {_shown(value)}")
    code = cleaned.upper()
    if code not in _currency_codes():
        raise InvalidInput(f"{name} is not an ISO 4217 currency: {_shown(value)}")
    return code


def phone(name: str, value: object) -> str | None:
    """Return a phone number: 3 to 32 of ``0-9 + ( ) . x -`` and spaces (the table's CHECK)."""
    cleaned = text(name, value, max_length=32, required=False)
    if cleaned is None:
        return None
    if not PHONE.fullmatch(cleaned):
        raise InvalidInput(
            f"{name} must have 3 to 32 ASCII digits, spaces or +().-x: {_shown(value)}"
        )
    return cleaned


def date_of_birth(name: str, value: object, *, today: date | None = None) -> date | None:
    """Return a plausible date of birth: a date (not a datetime) in the past, after 1900."""
    if value is None:
        return None
    if isinstance(value, datetime) or not isinstance(value, date):
        raise InvalidInput(f"{name} must be a date: {_shown(value)}")
    now = today or datetime.now(UTC).date()
    if value >= now:
        raise InvalidInput(f"{name} must be in the past: {value.isoformat()}")
    if value.year < OLDEST_BIRTH_YEAR:
        raise InvalidInput(f"{name} is before {OLDEST_BIRTH_YEAR}: {value.isoformat()}")
    return value


def timezone(name: str, value: object) -> str | None:
    """Return an IANA time zone name that ``zoneinfo`` knows (e.g. ``Europe/Paris``)."""
    cleaned = text(name, value, max_length=64, required=False)
    if cleaned is None:
        return None
    # ZoneInfo also opens relative paths: refuse anything that is not a zone key.
    if not re.fullmatch(r"[A-Za-z0-9_+-]+(/[A-Za-z0-9_+-]+)*", cleaned, re.ASCII):
        raise InvalidInput(f"{name} is not a time zone: {_shown(value)}")
    try:
        ZoneInfo(cleaned)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise InvalidInput(f"{name} is not a time zone: {_shown(value)}") from None
    return cleaned


def language(name: str, value: object) -> str | None:
    """Return a language tag: an ISO 639 code with an optional script and region (``pt-BR``)."""
    cleaned = text(name, value, max_length=35, required=False)
    if cleaned is None:
        return None
    match = LANGUAGE_TAG.fullmatch(cleaned)
    if match is None:
        raise InvalidInput(f"{name} must be a language code such as en or pt-BR: {_shown(value)}")
    code = match.group(1)
    known = (
        pycountry.languages.get(alpha_2=code)
        if len(code) == 2
        else pycountry.languages.get(alpha_3=code)
    )
    if known is None:
        raise InvalidInput(f"{name} is not a known language code: {_shown(value)}")
    return cleaned


def no_extra(name: str, given: dict[str, Any], allowed: Collection[str]) -> None:
    """Refuse keyword arguments outside ``allowed``."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"unknown {name} field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
