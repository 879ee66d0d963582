"""db.users: the contract of API.md, on the real cluster."""

from __future__ import annotations

import hashlib
import hmac
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
from sqlalchemy import func, select

from elearn_data import ids
from elearn_data.cluster.local import LocalCluster
from elearn_data.database import Database
from elearn_data.errors import DuplicateEmail, InvalidInput, NotFound, UnknownRegion
from elearn_data.models import EmailDirectoryEntry, User
from elearn_data.regions import Region
from elearn_data.sharding.merge import sum_over_shards
from tests.integration.api.helpers import PASSWORD, register


def count(db: Database, model: type) -> int:
    with db.writer() as uow:
        return int(sum_over_shards(uow, select(func.count()).select_from(model)))


def test_register_then_get_returns_the_user_from_its_home_shard(clean: Database) -> None:
    user_id = clean.users.register(
        email="  Grace.Hopper@Example.ORG ",
        password=PASSWORD,
        first_name="Grace",
        last_name="Hopper",
        region="north_america",
        role="instructor",
        country="United States",
        city="New York",
        phone="+1 212 555 0100",
    )
    assert ids.owner_region(user_id) is Region.NORTH_AMERICA
    user = clean.users.get(user_id)
    assert user.email == "grace.hopper@example.org"
    assert (user.first_name, user.role, user.region, user.status) == (
        "Grace",
        "instructor",
        "north_america",
        "active",
    )
    assert (user.country, user.city, user.phone) == ("United States", "New York", "+1 212 555 0100")
    assert user.created_at.tzinfo is not None
    assert user.last_login is None
    with pytest.raises(AttributeError):
        user.email = "x"  # type: ignore[misc]


def test_find_by_email_and_authenticate_need_no_region(clean: Database) -> None:
    user_id = register(clean, "oceania", email="kiwi@example.org")
    found = clean.users.find_by_email("KIWI@example.org")
    assert found is not None and found.id == user_id
    assert clean.users.find_by_email("nobody@example.org") is None
    assert clean.users.find_by_email("not an email") is None

    assert clean.users.authenticate("kiwi@example.org", "wrong password") is None
    assert clean.users.authenticate("nobody@example.org", PASSWORD) is None
    user = clean.users.authenticate("Kiwi@Example.org", PASSWORD)
    assert user is not None and user.id == user_id
    assert user.last_login is not None


def test_authenticate_refuses_an_inactive_user(clean: Database) -> None:
    register(clean, "africa", email="gone@example.org")
    user = clean.users.find_by_email("gone@example.org")
    assert user is not None
    clean.users.deactivate(user.id)
    assert clean.users.get(user.id).status == "inactive"
    assert clean.users.authenticate("gone@example.org", PASSWORD) is None


def test_password_is_stored_as_argon2id_and_rehashed_when_parameters_change(
    clean: Database,
) -> None:
    user_id = register(clean, "asia", email="hash@example.org")
    with clean.writer("asia") as uow:
        stored = uow.session.scalar(select(User.password_hash).where(User.id == user_id))
    assert stored is not None and stored.startswith("$argon2id$")
    assert PASSWORD not in stored
    stronger = Database(
        clean.settings.model_copy(update={"argon2_time_cost": 2, "recover_on_connect": False})
    )
    # A second connect() object reads its own writes only; hand it ours.
    stronger.observe(clean.token)
    try:
        assert stronger.users.authenticate("hash@example.org", PASSWORD) is not None
    finally:
        stronger.close()
    with clean.writer("asia") as uow:
        upgraded = uow.session.scalar(select(User.password_hash).where(User.id == user_id))
    assert upgraded != stored and upgraded is not None and ",t=2," in upgraded


def test_the_directory_holds_a_keyed_hash_never_the_email(clean: Database) -> None:
    register(clean, "europe", email="secret.person@example.org")
    with clean.writer() as uow:
        rows = []
        for shard in clean.router.shards:
            rows += uow.execute(select(EmailDirectoryEntry.email_hash), shard=shard).scalars().all()
    key = clean.settings.email_hash_key
    assert key is not None
    expected = hmac.new(
        key.get_secret_value().encode(), b"secret.person@example.org", hashlib.sha256
    ).digest()
    assert rows == [expected]
    assert all(b"secret" not in row for row in rows)


@pytest.mark.parametrize("other_region", ["europe", "asia"])
def test_an_email_registered_in_any_region_is_a_duplicate(
    clean: Database, other_region: str
) -> None:
    register(clean, "europe", email="twice@example.org")
    with pytest.raises(DuplicateEmail, match=r"twice@example\.org"):
        register(clean, other_region, email="Twice@example.org")
    assert count(clean, User) == 1


def test_nine_concurrent_registrations_of_one_email_from_three_regions_make_one_user(
    clean: Database,
) -> None:
    regions = ["north_america", "europe", "asia"] * 3
    barrier = threading.Barrier(len(regions))

    def attempt(region: str) -> str:
        barrier.wait()
        try:
            register(clean, region, email="race@example.org")
            return "ok"
        except DuplicateEmail:
            return "duplicate"

    with ThreadPoolExecutor(len(regions)) as pool:
        results = list(pool.map(attempt, regions))
    assert results.count("ok") == 1
    assert results.count("duplicate") == 8
    assert count(clean, User) == 1
    assert count(clean, EmailDirectoryEntry) == 1


@pytest.mark.parametrize(
    ("overrides", "error"),
    [
        ({"region": "atlantis"}, UnknownRegion),
        ({"email": "no-at-sign"}, InvalidInput),
        ({"email": "a@b"}, InvalidInput),
        ({"email": "x'; DROP TABLE users; --@example.org"}, InvalidInput),
        ({"password": "short"}, InvalidInput),
        ({"role": "superuser"}, InvalidInput),
        ({"first_name": "   "}, InvalidInput),
        ({"phone": "call me maybe"}, InvalidInput),
    ],
)
def test_bad_registrations_raise_and_write_nothing(
    clean: Database, overrides: dict[str, object], error: type[Exception]
) -> None:
    with pytest.raises(error):
        register(clean, **overrides)  # type: ignore[arg-type]
    assert count(clean, User) == 0
    assert count(clean, EmailDirectoryEntry) == 0


def test_error_messages_never_contain_the_password(clean: Database) -> None:
    with pytest.raises(InvalidInput) as info:
        register(clean, password="sh0rt!")
    assert "sh0rt!" not in str(info.value)


def test_update_profile_changes_only_the_given_fields(clean: Database) -> None:
    user_id = register(clean, "south_america", country="Brazil", city="Recife")
    clean.users.update_profile(user_id, bio="Passionate learner", timezone="America/Recife")
    clean.users.update_profile(user_id, first_name="Ana")
    user = clean.users.get(user_id)
    assert (user.first_name, user.bio, user.timezone) == (
        "Ana",
        "Passionate learner",
        "America/Recife",
    )
    assert (user.country, user.city) == ("Brazil", "Recife")
    with pytest.raises(InvalidInput, match="unknown profile field"):
        clean.users.update_profile(user_id, password_hash="x")
    with pytest.raises(NotFound):
        clean.users.update_profile(ids.new_id(Region.EUROPE), bio="x")


def test_ids_never_issued_are_not_found(clean: Database) -> None:
    with pytest.raises(NotFound):
        clean.users.get(uuid.uuid4())
    with pytest.raises(NotFound):
        clean.users.get(ids.new_id(Region.EUROPE))
    with pytest.raises(NotFound):
        clean.users.deactivate(uuid.uuid4())
    with pytest.raises(InvalidInput):
        clean.users.get("not-a-uuid")  # type: ignore[arg-type]


def test_registration_does_not_log_or_repr_the_password(
    clean: Database, caplog: pytest.LogCaptureFixture, cluster: LocalCluster
) -> None:
    caplog.set_level("DEBUG")
    register(clean, password="Pa55word-never-logged")
    assert "Pa55word-never-logged" not in caplog.text
    assert "Pa55word" not in repr(clean.settings)
