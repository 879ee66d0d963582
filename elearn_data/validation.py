"""Argument checks shared by every public method: bad input never reaches the database.

Each helper returns the cleaned value or raises :class:`~elearn_data.errors.InvalidInput`
naming the argument and the offending value (truncated; never a secret).
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from decimal import Decimal, InvalidOperation
from typing import Any

from elearn_data import ids
from elearn_data.errors import InvalidInput

MAX_SHOWN = 80


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
    cleaned = value.strip() if strip else value
    if required and not cleaned:
        raise InvalidInput(f"{name} must not be blank")
    if len(cleaned) > max_length:
        raise InvalidInput(f"{name} is longer than {max_length} characters: {_shown(value)}")
    return cleaned if cleaned or required else None


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
    if not cleaned.lower().startswith(("http://", "https://")) or " " in cleaned:
        raise InvalidInput(f"{name} must be an http(s) URL: {_shown(value)}")
    return cleaned


def no_extra(name: str, given: dict[str, Any], allowed: Collection[str]) -> None:
    """Refuse keyword arguments outside ``allowed``."""
    unknown = sorted(set(given) - set(allowed))
    if unknown:
        raise InvalidInput(
            f"unknown {name} field(s): {', '.join(unknown)}; allowed: {', '.join(sorted(allowed))}"
        )
