"""create_user_with_profile, get_user_by_email, update_user_login, deactivate_user."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from elearn_data import ids
from elearn_data.database import Database
from elearn_data.errors import Duplicate, InvalidInput, NotFound
from elearn_data.regions import Region
from tests.integration.db_logic.helpers import EU, make_user, one, rows, scalar, sqlstate, unique

CREATE = (
    "SELECT create_user_with_profile(:id, :email, 'hash', :first, 'Hopper', :region, :role,"
    " 'Kenya', 'Nairobi', :phone)"
)


def _create(db: Database, **overrides: object) -> object:
    params: dict[str, object] = {
        "id": None,
        "email": f"{unique('grace')}@example.org",
        "first": "Grace",
        "region": "africa",
        "role": "student",
        "phone": "+254 700 000",
    }
    params.update(overrides)
    return scalar(db, EU, CREATE, **params)


def test_create_user_with_profile_normalises_the_email_and_makes_an_id_of_the_region(
    db: Database,
) -> None:
    name = unique("Grace.Hopper")
    user_id = _create(db, email=f"  {name}@Example.ORG ", role="Instructor")
    assert ids.owner_region(user_id) is Region.AFRICA
    user = one(db, EU, "SELECT * FROM users WHERE id = :id", id=user_id)
    assert user.email == f"{name.lower()}@example.org"
    assert (user.role, user.region, user.status) == ("instructor", "africa", "active")
    profile = one(db, EU, "SELECT * FROM user_profiles WHERE user_id = :id", id=user_id)
    assert (profile.country, profile.city, profile.phone) == ("Kenya", "Nairobi", "+254 700 000")


def test_create_user_with_profile_keeps_a_given_id_of_the_region(db: Database) -> None:
    wanted = ids.new_id(Region.AFRICA)
    assert _create(db, id=wanted) == wanted


def test_create_user_with_profile_refuses_an_id_of_another_region(db: Database) -> None:
    wrong = ids.new_id(Region.ASIA)
    with sqlstate("EL400", InvalidInput, match=f"{wrong} does not carry the region africa"):
        _create(db, id=wrong)
    assert rows(db, EU, "SELECT 1 FROM users WHERE id = :id", id=wrong) == []


def test_a_duplicate_email_on_the_shard_is_a_unique_violation_of_uq_users_email(
    db: Database,
) -> None:
    email = f"{unique('dup')}@example.org"
    _create(db, email=email)
    with sqlstate("23505", Duplicate) as raised:
        _create(db, email=email.upper())
    assert raised.constraint == "uq_users_email"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("region", "mars", "unknown region 'mars'"),
        ("role", "superuser", "invalid role 'superuser'"),
        ("email", "not-an-email", "invalid email address 'not-an-email'"),
        ("email", "two@@example.org", "invalid email address"),
        ("email", None, "invalid email address"),
        ("first", "   ", "first name must have 1 to 100 characters"),
        ("phone", "call me maybe", "invalid phone number 'call me maybe'"),
    ],
)
def test_create_user_with_profile_rejects_bad_input_by_name(
    db: Database, field: str, value: object, message: str
) -> None:
    with sqlstate("EL400", InvalidInput, match=message):
        _create(db, **{field: value})


def test_get_user_by_email_is_case_insensitive_and_returns_profile_columns(db: Database) -> None:
    email = f"{unique('ada')}@example.org"
    user_id = _create(db, email=email)
    found = one(db, EU, "SELECT * FROM get_user_by_email(:e)", e=f" {email.upper()} ")
    assert found.user_id == user_id
    assert (found.email, found.first_name, found.region) == (email, "Grace", "africa")
    assert (found.country, found.city, found.phone) == ("Kenya", "Nairobi", "+254 700 000")
    assert found.password_hash == "hash"
    assert found.last_login is None


def test_get_user_by_email_of_an_unknown_email_returns_no_row(db: Database) -> None:
    assert rows(db, EU, "SELECT * FROM get_user_by_email('nobody@example.org')") == []


def test_update_user_login_returns_and_stores_the_login_time(db: Database) -> None:
    user_id = make_user(db)
    at = scalar(db, EU, "SELECT update_user_login(:id)", id=user_id)
    assert abs(at - datetime.now(UTC)) < timedelta(seconds=30)
    assert scalar(db, EU, "SELECT last_login FROM users WHERE id = :id", id=user_id) == at


def test_update_user_login_of_a_missing_user_is_not_found(db: Database) -> None:
    missing = ids.new_id(Region.EUROPE)
    with sqlstate("EL404", NotFound, match=f"user {missing} not found"):
        scalar(db, EU, "SELECT update_user_login(:id)", id=missing)


def test_deactivate_user_makes_the_user_inactive_and_is_idempotent(db: Database) -> None:
    user_id = make_user(db)
    rows(db, EU, "SELECT deactivate_user(:id)", id=user_id)
    rows(db, EU, "SELECT deactivate_user(:id)", id=user_id)
    assert scalar(db, EU, "SELECT status FROM users WHERE id = :id", id=user_id) == "inactive"


def test_deactivate_user_of_a_missing_user_is_not_found(db: Database) -> None:
    with sqlstate("EL404", NotFound):
        rows(db, EU, "SELECT deactivate_user(:id)", id=ids.new_id(Region.EUROPE))
