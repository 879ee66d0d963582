"""Input hygiene: Unicode emails, hostile characters, ISO codes, and Python checks = DB CHECKs.

Every refusal is an ``InvalidInput`` raised before anything is written (never a
``UnicodeEncodeError`` or a database error carrying the user's values); every
value the Python checks accept is accepted by the tables' CHECK constraints.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from elearn_data import validation
from elearn_data.database import Database
from elearn_data.errors import DuplicateEmail, InvalidInput
from elearn_data.security import mixed_scripts, normalise_email
from tests.integration.api.helpers import PASSWORD, published_course, register

SURROGATE = "\ud800"
HOSTILE = {
    "a lone surrogate": f"Ada{SURROGATE}",
    "a control character": "Ada\x07",
    "an escape sequence": "Ada\x1b[31m",
    "a right-to-left override": "Ada\u202eecilA",
    "a bidi isolate": "Ada\u2066x\u2069",
}


def test_emails_are_normalised_with_nfkc_and_case_folding() -> None:
    assert normalise_email("\uff41\uff44\uff41@example.org") == "ada@example.org"
    assert normalise_email("  ADA@Example.ORG ") == "ada@example.org"
    assert normalise_email("Stra\u00dfe@example.org") == "strasse@example.org"
    assert normalise_email("\u0430\u0434\u0430@example.org") == "\u0430\u0434\u0430@example.org"


@pytest.mark.parametrize(
    "email",
    [
        "p\u0430ypal@example.org",  # Cyrillic a among Latin letters
        "\u03bfmega-o@example.org",  # Greek omicron
        f"ada{SURROGATE}@example.org",
        "ada\u202e@example.org",
        "ada\x00@example.org",
        "ada\n@example.org",
    ],
)
def test_hostile_emails_are_invalid_input(email: str) -> None:
    with pytest.raises(InvalidInput):
        normalise_email(email)


def test_scripts_that_belong_together_are_not_mixed() -> None:
    assert mixed_scripts("\u3072\u3089\u304c\u306a\u6f22\u5b57") == set()  # Japanese
    assert mixed_scripts("john.doe42") == set()
    assert mixed_scripts("j\u043ehn") == {"LATIN", "CYRILLIC"}


def test_a_fullwidth_email_is_the_same_account(clean: Database) -> None:
    user = register(clean, "europe", email="ada.fw@example.org")
    with pytest.raises(DuplicateEmail):
        register(clean, "asia", email="\uff41\uff44\uff41.\uff46\uff57@EXAMPLE.org")
    found = clean.users.find_by_email("\uff41\uff44\uff41.fw@example.org")
    assert found is not None and found.id == user
    assert clean.users.authenticate("ADA.FW@example.org", PASSWORD) is not None


@pytest.mark.parametrize("what", sorted(HOSTILE))
def test_hostile_characters_are_refused_in_every_text_field(clean: Database, what: str) -> None:
    value = HOSTILE[what]
    user = register(clean, "europe")
    for field in ("first_name", "last_name"):
        with pytest.raises(InvalidInput):
            register(clean, "europe", **{field: value})
        with pytest.raises(InvalidInput):
            clean.users.update_profile(user, **{field: value})
    for field in ("city", "country", "bio", "timezone", "language"):
        with pytest.raises(InvalidInput):
            clean.users.update_profile(user, **{field: value})
    with pytest.raises(InvalidInput):
        register(clean, "europe", password=f"long enough {SURROGATE}")
    assert clean.users.authenticate(clean.users.get(user).email, f"x{SURROGATE}") is None
    course, _ = published_course(clean)
    enrollment = clean.enrollments.enroll(user, course)
    with pytest.raises(InvalidInput):
        clean.reviews.add(enrollment, 5, value)
    instructor = register(clean, "europe", role="instructor")
    with pytest.raises(InvalidInput):
        clean.catalog.create_course(code="HOSTILE-1", title=value, instructor_id=instructor)
    view = clean.users.get(user)
    assert (view.first_name, view.city, view.bio) == ("Ada", None, None)


@pytest.mark.parametrize(
    ("given", "expected"),
    [("USD", "USD"), ("eur", "EUR"), (" jpy ", "JPY")],
)
def test_currencies_are_iso_4217(given: str, expected: str) -> None:
    assert validation.currency("currency", given) == expected


@pytest.mark.parametrize("given", ["u\u00df", "US", "USDX", "XQZ", "\uff35\uff33\uff24", "12A", ""])
def test_other_currencies_are_refused(given: str) -> None:
    with pytest.raises(InvalidInput):
        validation.currency("currency", given)


def test_a_non_ascii_currency_is_refused_by_the_api(clean: Database) -> None:
    user = register(clean, "europe")
    course, _ = published_course(clean)
    with pytest.raises(InvalidInput):
        clean.payments.create_transaction(user, course, amount=Decimal("5"), currency="u\u00df")
    assert clean.payments.history(user) == []
    instructor = register(clean, "europe", role="instructor")
    with pytest.raises(InvalidInput):
        clean.catalog.create_course(
            code="STRASSE-1", title="t", instructor_id=instructor, currency="u\u00df"
        )
    with pytest.raises(InvalidInput):
        clean.catalog.create_course(code="stra\u00dfe", title="t", instructor_id=instructor)


TODAY = datetime.now(UTC).date()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("date_of_birth", TODAY),
        ("date_of_birth", TODAY + timedelta(days=400)),
        ("date_of_birth", date(1850, 1, 1)),
        ("date_of_birth", datetime(1990, 1, 1, tzinfo=UTC)),
        ("date_of_birth", "1990-01-01"),
        ("timezone", "Mars/Olympus_Mons"),
        ("timezone", "../../etc/passwd"),
        ("timezone", "Europe/"),
        ("language", "xx"),
        ("language", "english"),
        ("language", "en-"),
        ("phone", "\u0661\u0662\u0663\u0664"),  # Arabic-Indic digits: not [0-9]
        ("phone", "12"),
        ("phone", "+1 555 0100;"),
        ("avatar_url", "HTTP://example.org/a.png"),
        ("avatar_url", "ftp://example.org/a.png"),
        ("avatar_url", "https://example.org/a b.png"),
    ],
)
def test_implausible_profile_values_are_refused_before_the_database(
    clean: Database, field: str, value: Any
) -> None:
    user = register(clean, "europe")
    with pytest.raises(InvalidInput):
        clean.users.update_profile(user, **{field: value})


@pytest.mark.parametrize(
    "fields",
    [
        {"date_of_birth": date(1990, 5, 17), "timezone": "Europe/Paris", "language": "fr"},
        {"date_of_birth": date(1901, 1, 1), "timezone": "America/Argentina/Buenos_Aires"},
        {"language": "pt-BR", "timezone": "UTC"},
        {"language": "zh-Hant-TW", "timezone": "Asia/Tokyo"},
        {"language": "yue"},
        {"phone": "+1 (555) 010-0199 x12", "avatar_url": "https://cdn.example.org/a.png"},
        {"phone": "555", "bio": "Line one\nline two\ttabbed"},
        {"city": "S\u00e3o Paulo", "country": "Brasil"},
    ],
)
def test_values_python_accepts_are_accepted_by_the_database(
    clean: Database, fields: dict[str, Any]
) -> None:
    user = register(clean, "europe")
    clean.users.update_profile(user, **fields)
    view = clean.users.get(user)
    for name, value in fields.items():
        if hasattr(view, name):  # UserView has no date_of_birth or avatar_url
            assert getattr(view, name) == value, name


def test_a_random_id_is_still_not_found_not_a_unicode_error(clean: Database) -> None:
    with pytest.raises(InvalidInput):
        clean.users.update_profile(f"{uuid.uuid4()}{SURROGATE}", city="x")  # type: ignore[arg-type]
